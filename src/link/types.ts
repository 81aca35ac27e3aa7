/**
 * Link contracts. A `Transport` moves bytes to a neighbour (TCP, or in-memory
 * for tests); a `Link` is an established, handshaken connection to one
 * neighbouring device that carries frames (src/wire/frame.ts).
 */
import type { Duplex } from 'node:stream';
import type { DeviceId } from '../wire/index.ts';

/** A bound listener. */
export interface Listener {
  /** The address actually bound ("host:port"; the real port when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

/** How bytes reach a neighbour. */
export interface Transport {
  /** Accepts connections on `address`; each becomes a Duplex handed to `onConnection`. */
  listen(address: string, onConnection: (stream: Duplex) => void): Promise<Listener>;
  /** Opens a connection to `address`. Rejects with VmeshError VMESH_ERR_LINK_DOWN if it cannot. */
  dial(address: string, timeoutMs: number): Promise<Duplex>;
}

/** Per-link counters. */
export interface LinkStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Dropped outgoing frames by reason (e.g. queue-full, closed). */
  dropped: Record<string, number>;
}

/** An established link to a neighbour. */
export interface Link {
  readonly remote: DeviceId;
  readonly remoteName: string;
  /** Who dialled: 'outbound' = this device. */
  readonly direction: 'inbound' | 'outbound';
  /** Smoothed keepalive round trip, ms (undefined until the first PONG). */
  readonly rttMs: number | undefined;
  /** Share of keepalives lost (0..1, smoothed); TCP links lose none unless impaired. */
  readonly lossRate: number;
  readonly closed: boolean;
  /** Bytes written to the link and not yet handed to the socket. */
  readonly queuedBytes: number;
  /** Called when the link's queue has emptied below its buffer size again (after it was full). */
  onDrain(listener: () => void): void;
  /**
   * Queues one frame. Returns false (and counts a drop) when the link is
   * closed or more than `maxQueuedBytes` are already waiting to be written.
   */
  send(type: number, body: Uint8Array): boolean;
  /** Frames other than HELLO/PING/PONG (those are the link's own). */
  onFrame(listener: (type: number, body: Uint8Array) => void): void;
  onClose(listener: (reason: string) => void): void;
  close(reason?: string): void;
  stats(): LinkStats;
}

export interface LinkOptions {
  /**
   * Handshake must finish within this time.
   * @default 5000
   */
  handshakeTimeoutMs?: number;
  /**
   * Interval between keepalive PINGs.
   * @default 1000
   */
  keepaliveIntervalMs?: number;
  /**
   * A link on which nothing arrived for this long is closed as dead.
   * @default 4000
   */
  deadAfterMs?: number;
  /**
   * Largest accepted frame (type + body).
   * @default 262144
   */
  maxFrameBytes?: number;
  /**
   * Bytes waiting to be written before further frames are dropped and counted.
   * @default 8388608
   */
  maxQueuedBytes?: number;
  /**
   * First redial delay after a failure; doubles up to redialMaxMs (with jitter).
   * @default 200
   */
  redialMinMs?: number;
  /** @default 5000 */
  redialMaxMs?: number;
  /**
   * TCP connect timeout.
   * @default 5000
   */
  dialTimeoutMs?: number;
}

export const DEFAULT_LINK_OPTIONS: Required<LinkOptions> = {
  handshakeTimeoutMs: 5000,
  keepaliveIntervalMs: 1000,
  deadAfterMs: 4000,
  maxFrameBytes: 256 * 1024,
  maxQueuedBytes: 8 * 1024 * 1024,
  redialMinMs: 200,
  redialMaxMs: 5000,
  dialTimeoutMs: 5000,
};
