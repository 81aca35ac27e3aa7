// A deterministic simulated network for the vconn transport: transports
// joined by one-way paths on a virtual clock, with a seeded RNG for loss,
// duplication, jitter and reordering, and optional shared bottlenecks (a
// service rate and a drop-tail queue of finite capacity, in packets).
//
//   const net = createTestnet({ seed: 1 });
//   const { client, server } = net.connect({ forward: { delayMs: 10 }, backward: { delayMs: 10 } });
//   client.send(4_000_000, { end: true });
//   net.run({ until: () => server.ended, maxMs: 60_000 });
//
// Nothing here reads a wall clock; the same seed gives the same run.
import { seeded } from '../../helpers/rng.ts';
import { createTransport } from '../../../src/transport/index.ts';
import type {
  CongestionController,
  StreamTransport,
  TransportEvent,
  TransportOptions,
} from '../../../src/transport/index.ts';

/** Header bytes a packet costs on the wire besides its payload (for the bottleneck's rate). */
export const WIRE_OVERHEAD = 48;

/** One direction of a path: impairments after any bottleneck. */
export interface PathSpec {
  /** One-way propagation delay, ms. */
  delayMs: number;
  /** Uniform extra delay in [0, jitterMs) on every packet, ms. */
  jitterMs?: number;
  /** Probability that a packet is held back by `reorderDelayMs` (later packets overtake it). */
  reorder?: number;
  /** @default 3 · delayMs */
  reorderDelayMs?: number;
  /** Probability that a packet is lost (before the bottleneck). */
  loss?: number;
  /** Probability that a packet arrives twice. */
  duplicate?: number;
  /** Everything sent is dropped, and so is whatever is still travelling on it (a dead next hop). */
  down?: boolean;
  /** Shared bottleneck the packets queue in before the propagation delay. */
  bottleneck?: Bottleneck;
}

/** A link with a service rate and a drop-tail queue of `queuePackets` (waiting and in service). */
export class Bottleneck {
  readonly rateBytesPerMs: number;
  readonly queuePackets: number;
  private departures: number[] = [];
  private head = 0;
  private lastDeparture = 0;
  arrivals = 0;
  drops = 0;
  maxOccupancy = 0;
  private occupancySum = 0;
  /** Bytes served per flow label (for utilisation). */
  readonly served = new Map<string, number>();

  constructor(rateBytesPerMs: number, queuePackets: number) {
    this.rateBytesPerMs = rateBytesPerMs;
    this.queuePackets = queuePackets;
  }

  /** Packets queued or in service at `now`. */
  occupancy(now: number): number {
    while (this.head < this.departures.length && (this.departures[this.head] as number) <= now)
      this.head++;
    if (this.head > 1024) {
      this.departures = this.departures.slice(this.head);
      this.head = 0;
    }
    return this.departures.length - this.head;
  }

  /** Mean occupancy seen by arriving packets. */
  meanOccupancy(): number {
    return this.arrivals === 0 ? 0 : this.occupancySum / this.arrivals;
  }

  /** Departure time of a packet of `bytes` arriving now, or undefined when the queue is full. */
  admit(now: number, bytes: number, label: string): number | undefined {
    const occupancy = this.occupancy(now);
    this.arrivals++;
    this.occupancySum += occupancy;
    if (occupancy >= this.queuePackets) {
      this.drops++;
      return undefined;
    }
    const departure = Math.max(now, this.lastDeparture) + bytes / this.rateBytesPerMs;
    this.lastDeparture = departure;
    this.departures.push(departure);
    this.maxOccupancy = Math.max(this.maxOccupancy, occupancy + 1);
    this.served.set(label, (this.served.get(label) ?? 0) + bytes);
    return departure;
  }
}

/** The byte at `offset` of a test stream: a hash, so a shifted, repeated or reordered block never matches. */
export function patternByte(seed: number, offset: number): number {
  let x = (offset ^ Math.imul(seed + 1, 0x9e3779b9)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) & 0xff;
}

export function patternBytes(seed: number, offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = patternByte(seed, offset + i);
  return out;
}

interface Scheduled {
  at: number;
  seq: number;
  run: () => void;
}

/** A binary min-heap on (at, seq). */
class Agenda {
  private items: Scheduled[] = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  peek(): number | undefined {
    return this.items[0]?.at;
  }

  push(at: number, run: () => void): void {
    const item = { at, seq: this.seq++, run };
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(item, a[parent] as Scheduled)) break;
      a[i] = a[parent] as Scheduled;
      i = parent;
    }
    a[i] = item;
  }

  pop(): Scheduled | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = last;
      if (l < a.length && this.less(a[l] as Scheduled, best)) {
        m = l;
        best = a[l] as Scheduled;
      }
      if (r < a.length && this.less(a[r] as Scheduled, best)) m = r;
      if (m === i) break;
      a[i] = a[m] as Scheduled;
      i = m;
    }
    a[i] = last;
    return top;
  }

  private less(x: Scheduled, y: Scheduled): boolean {
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }
}

export interface EndpointOptions {
  /** Label for the bottleneck's per-flow counters. */
  label: string;
  /** Seed of the byte pattern this endpoint sends. */
  patternSeed: number;
  /** Seed of the pattern it expects to receive (the peer's). */
  expectSeed: number;
  /** Call consumed() as soon as data arrives. @default true */
  autoConsume?: boolean;
}

/** One transport, its application and its outgoing path. */
export class Endpoint {
  readonly t: StreamTransport;
  readonly net: TestNet;
  readonly label: string;
  path: PathSpec;
  peer: Endpoint | undefined;
  readonly patternSeed: number;
  readonly expectSeed: number;
  autoConsume: boolean;
  /** Non-data events with the time they were seen. */
  readonly log: { at: number; event: TransportEvent }[] = [];
  /** Bytes delivered in order, each checked against the expected pattern. */
  received = 0;
  /** Offset of the first byte that did not match the pattern, if any. */
  firstMismatch: number | undefined;
  /** Size of every 'data' event, in order. */
  readonly chunks: number[] = [];
  /** Delivered-bytes samples (at, total) for throughput over time. */
  readonly progress: { at: number; bytes: number }[] = [];
  /** Bytes the application wrote (pattern offset). */
  written = 0;
  private target = 0;
  private endWhenWritten = false;
  private blocked = false;
  /** Extra hook on every event. */
  onEvent: ((e: TransportEvent, at: number) => void) | undefined;
  /** Sees every packet this endpoint emits, with the time. */
  tap: ((pn: number, payload: Uint8Array, at: number) => void) | undefined;
  /** Packets this endpoint emitted (count) and payload bytes. */
  packetsOut = 0;
  payloadBytesOut = 0;

  constructor(net: TestNet, t: StreamTransport, path: PathSpec, o: EndpointOptions) {
    this.net = net;
    this.t = t;
    this.path = path;
    this.label = o.label;
    this.patternSeed = o.patternSeed;
    this.expectSeed = o.expectSeed;
    this.autoConsume = o.autoConsume ?? true;
  }

  /** Queue `bytes` more pattern bytes (Infinity: a bulk sender that never stops); `end` after them. */
  send(bytes: number, opts: { end?: boolean } = {}): void {
    this.target += bytes;
    if (opts.end === true) this.endWhenWritten = true;
    this.fill();
  }

  /** Write raw bytes (not the pattern). */
  writeRaw(data: Uint8Array): boolean {
    return this.t.write(data, this.net.now);
  }

  private fill(): void {
    if (this.t.finished) return;
    while (!this.blocked && this.written < this.target) {
      const n = Math.min(16384, this.target - this.written);
      const ok = this.t.write(patternBytes(this.patternSeed, this.written, n), this.net.now);
      this.written += n;
      if (!ok) this.blocked = true;
    }
    if (this.endWhenWritten && this.written >= this.target) {
      this.endWhenWritten = false;
      this.t.end(this.net.now);
    }
  }

  has(type: TransportEvent['type']): boolean {
    return this.log.some((l) => l.event.type === type);
  }

  timeOf(type: TransportEvent['type']): number | undefined {
    return this.log.find((l) => l.event.type === type)?.at;
  }

  get ended(): boolean {
    return this.has('end');
  }

  get failed(): boolean {
    return this.has('error');
  }

  /** Polls the transport until it has nothing more now; sends what it emits. */
  pump(): boolean {
    let any = false;
    for (let round = 0; round < 64; round++) {
      const now = this.net.now;
      const packets = this.t.poll(now);
      for (const p of packets) {
        this.packetsOut++;
        this.payloadBytesOut += p.payload.length;
        this.tap?.(p.packetNumber, p.payload, now);
        if (this.peer !== undefined) this.net.transmit(this, this.peer, p.packetNumber, p.payload);
      }
      const events = this.t.events();
      for (const e of events) this.handle(e, now);
      if (packets.length === 0 && events.length === 0) break;
      any = true;
    }
    return any;
  }

  private handle(e: TransportEvent, now: number): void {
    if (e.type === 'data') {
      this.chunks.push(e.data.length);
      for (let i = 0; i < e.data.length; i++) {
        if (e.data[i] !== patternByte(this.expectSeed, this.received + i)) {
          this.firstMismatch ??= this.received + i;
          break;
        }
      }
      this.received += e.data.length;
      this.progress.push({ at: now, bytes: this.received });
      if (this.autoConsume) this.t.consumed(e.data.length, now);
    } else {
      this.log.push({ at: now, event: e });
    }
    if (e.type === 'openRequest') this.t.accept(now);
    if (e.type === 'drain') {
      this.blocked = false;
      this.fill();
    }
    if (e.type === 'open') this.fill();
    this.onEvent?.(e, now);
  }

  /** Bytes delivered by time `at` (from the progress samples). */
  receivedBy(at: number): number {
    let lo = 0;
    let hi = this.progress.length - 1;
    let best = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const p = this.progress[mid] as { at: number; bytes: number };
      if (p.at <= at) {
        best = p.bytes;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  }
}

export interface ConnectOptions {
  forward: PathSpec;
  backward: PathSpec;
  client?: Partial<TransportOptions>;
  server?: Partial<TransportOptions>;
  clientCc?: CongestionController;
  serverCc?: CongestionController;
  label?: string;
  /** The open request; `false` leaves opening to the test. @default 'x' */
  open?: string | false;
}

export class TestNet {
  now = 0;
  readonly random: () => number;
  private readonly agenda = new Agenda();
  readonly endpoints: Endpoint[] = [];
  private flows = 0;
  /** Called after every step (for sampling). */
  onStep: ((now: number) => void) | undefined;

  constructor(seed: number) {
    this.random = seeded(seed);
  }

  /** A client and a server joined by two one-way paths; the client opens at once. */
  connect(o: ConnectOptions): { client: Endpoint; server: Endpoint } {
    const n = this.flows++;
    const label = o.label ?? `flow${n}`;
    const client = new Endpoint(
      this,
      createTransport({ role: 'client', ...o.client }, o.clientCc),
      o.forward,
      { label, patternSeed: 2 * n + 1, expectSeed: 2 * n + 2 },
    );
    const server = new Endpoint(
      this,
      createTransport({ role: 'server', ...o.server }, o.serverCc),
      o.backward,
      { label: `${label}-back`, patternSeed: 2 * n + 2, expectSeed: 2 * n + 1 },
    );
    client.peer = server;
    server.peer = client;
    this.endpoints.push(client, server);
    if (o.open !== false) client.t.open(Buffer.from(o.open ?? 'x'), this.now);
    return { client, server };
  }

  /** Runs `fn` at virtual time `at`. */
  at(at: number, fn: () => void): void {
    this.agenda.push(at, fn);
  }

  /** Puts one packet on `from`'s path to `to`. */
  transmit(from: Endpoint, to: Endpoint, pn: number, payload: Uint8Array): void {
    const path = from.path;
    if (path.down === true) return;
    const copies = path.duplicate !== undefined && this.random() < path.duplicate ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      if (path.loss !== undefined && this.random() < path.loss) continue;
      let leave = this.now;
      if (path.bottleneck !== undefined) {
        const d = path.bottleneck.admit(this.now, payload.length + WIRE_OVERHEAD, from.label);
        if (d === undefined) continue;
        leave = d;
      }
      let arrive = leave + path.delayMs;
      if (path.jitterMs !== undefined) arrive += this.random() * path.jitterMs;
      if (path.reorder !== undefined && this.random() < path.reorder)
        arrive += path.reorderDelayMs ?? 3 * path.delayMs;
      this.agenda.push(arrive, () => {
        if (path.down !== true) to.t.receive(pn, payload, this.now);
      });
    }
  }

  /** Runs until `until()` holds after a step, or `maxMs` of virtual time; returns the time. */
  run(o: { until?: () => boolean; maxMs: number }): number {
    let sameTime = 0;
    for (;;) {
      let any = false;
      for (const e of this.endpoints) if (e.pump()) any = true;
      this.onStep?.(this.now);
      if (o.until?.() === true) return this.now;
      let next = this.agenda.peek();
      for (const e of this.endpoints) {
        const d = e.t.nextDeadline();
        if (d !== undefined && (next === undefined || d < next)) next = d;
      }
      if (next === undefined) return this.now;
      if (next > o.maxMs) {
        this.now = o.maxMs;
        return this.now;
      }
      if (next <= this.now) {
        // A deadline that is due: poll again at the same time, but never forever.
        if (!any && this.agenda.peek() !== next && ++sameTime > 100)
          throw new Error(
            `no progress at ${this.now} ms (a deadline in the past that poll does not clear)`,
          );
      } else sameTime = 0;
      this.now = Math.max(this.now, next);
      while ((this.agenda.peek() ?? Infinity) <= this.now) this.agenda.pop()?.run();
    }
  }
}

export function createTestnet(o: { seed: number }): TestNet {
  return new TestNet(o.seed);
}

/** Jain's fairness index of a set of throughputs. */
export function jain(xs: number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (xs.length * squares);
}
