/**
 * Per-link fair queueing of data packets (deficit round robin, Shreedhar &
 * Varghese): while a link's socket has room (`queuedBytes` under a low-water
 * mark) packets go straight out; beyond it, each connection gets its own
 * queue and the queues take turns, a quantum of bytes per turn, as the link
 * drains. So one bulk connection cannot starve another's small messages on a
 * shared link, and a connection's own backlog is bounded (`maxQueuedBytes`
 * per connection; beyond it packets are dropped and counted — its transport
 * resends and its congestion control backs off). Control frames never queue
 * here. Sans timers: the link's drain event and each new packet drive it.
 */
import type { Counters } from '../observe/index.ts';
import { FrameType } from '../wire/index.ts';

/** What the scheduler needs of a link. */
export interface SchedulableLink {
  readonly closed: boolean;
  /** Bytes written to the link but not yet to the socket. */
  readonly queuedBytes: number;
  send(type: number, body: Uint8Array): boolean;
  onDrain(listener: () => void): void;
}

export interface FairQueueOptions {
  /**
   * Below this many bytes queued on the link, packets are written at once.
   * @default 262144
   */
  lowWaterBytes?: number;
  /**
   * Bytes a connection may send per turn.
   * @default 16384
   */
  quantumBytes?: number;
  /**
   * Most bytes waiting per connection; beyond it packets are dropped and counted.
   * @default 2097152
   */
  maxQueuedBytes?: number;
}

interface Flow {
  packets: Uint8Array[];
  bytes: number;
  deficit: number;
}

export class FairQueue {
  private readonly flows = new Map<string, Flow>();
  /** Connections with packets waiting, in turn order. */
  private readonly active: string[] = [];
  private readonly o: Required<FairQueueOptions>;
  private draining = false;

  constructor(
    private readonly link: SchedulableLink,
    private readonly counters: Counters,
    options: FairQueueOptions = {},
  ) {
    this.o = {
      lowWaterBytes: options.lowWaterBytes ?? 256 * 1024,
      quantumBytes: options.quantumBytes ?? 16 * 1024,
      maxQueuedBytes: options.maxQueuedBytes ?? 2 * 1024 * 1024,
    };
    link.onDrain(() => this.drain());
  }

  /** Packets waiting, over all connections. */
  get waiting(): number {
    let n = 0;
    for (const f of this.flows.values()) n += f.packets.length;
    return n;
  }

  /** Sends `packet` of connection `flow` now or when its turn comes. Returns false if dropped. */
  send(flow: string, packet: Uint8Array): boolean {
    if (this.link.closed) return false;
    if (this.active.length === 0 && this.link.queuedBytes < this.o.lowWaterBytes)
      return this.write(packet);
    let f = this.flows.get(flow);
    if (f === undefined) {
      f = { packets: [], bytes: 0, deficit: 0 };
      this.flows.set(flow, f);
    }
    if (f.bytes + packet.length > this.o.maxQueuedBytes) {
      this.counters.inc('switch.dropped', { reason: 'fair-queue-full' });
      return false;
    }
    if (f.packets.length === 0) this.active.push(flow);
    f.packets.push(packet);
    f.bytes += packet.length;
    this.drain();
    return true;
  }

  private write(packet: Uint8Array): boolean {
    if (this.link.send(FrameType.PACKET, packet)) return true;
    this.counters.inc('switch.dropped', { reason: 'link-refused' });
    return false;
  }

  /** Sends waiting packets, connections taking turns, while the link has room. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.active.length > 0 && this.link.queuedBytes < this.o.lowWaterBytes) {
        if (this.link.closed) {
          this.flows.clear();
          this.active.length = 0;
          return;
        }
        const id = this.active[0] as string;
        const f = this.flows.get(id) as Flow;
        f.deficit += this.o.quantumBytes;
        while (f.packets.length > 0 && (f.packets[0] as Uint8Array).length <= f.deficit) {
          const p = f.packets.shift() as Uint8Array;
          f.bytes -= p.length;
          f.deficit -= p.length;
          this.write(p);
        }
        this.active.shift();
        if (f.packets.length > 0) this.active.push(id);
        else {
          f.deficit = 0;
          this.flows.delete(id);
        }
      }
    } finally {
      this.draining = false;
    }
  }
}
