/**
 * Congestion control behind one small interface, `CongestionController`,
 * which the transport calls with each packet it sends, each one acknowledged
 * and each one declared lost. Two implementations:
 *
 * - `fixedWindow(bytes)`: no control, a constant window (tests, baselines).
 * - `newReno(init)`: NewReno-style AIMD as RFC 9002 §7 and Appendix B give it:
 *   - §7.2: initial window min(10·mds, max(14720, 2·mds)), minimum 2·mds
 *     (mds = the largest payload, "max_datagram_size").
 *   - §7.3.1 slow start: the window grows by every acknowledged byte until a
 *     loss or `ssthresh`.
 *   - §7.3.2 recovery: a loss of a packet sent after the current recovery
 *     period began halves the window (kLossReductionFactor 0.5) and starts a
 *     new period; losses of packets sent before that start do not reduce it
 *     again, and acknowledgements of them do not grow it. The period is keyed
 *     on packet numbers (`recoveryStart` = the first packet number sent after
 *     the reduction), which orders packets exactly as RFC 9002's send times do.
 *   - §7.3.3 congestion avoidance: one mds per window of acknowledged bytes.
 *   - §7.6 persistent congestion: the window falls to the minimum (the loss
 *     detector decides it, see loss-detector.ts); unlike B.8, which ends the
 *     recovery period, packets sent before it still start no new reduction,
 *     so the rest of the lost flight cannot pull ssthresh down to the minimum.
 *   - §7.8 underutilising the window: acknowledgements of packets that were not
 *     sent while the window was the limit (`cwndLimited`) do not grow it, so an
 *     application- or flow-control-limited sender's window stays bounded.
 *   - RFC 9000 §9.4: `reset()` on a path change.
 * Left out: ECN (§7.1; vmesh links carry no ECN marks), undoing a reduction
 * after a spurious loss, and sending a packet at once on entering recovery
 * (B.6, optional).
 */

/** What the transport tells the controller about one packet. */
export interface SentPacketInfo {
  /** Packet number (strictly increasing per direction). */
  packetNumber: number;
  /** Time it was sent (ms, the caller's clock). */
  sentAt: number;
  /** Bytes it counts in flight (stream bytes). */
  bytes: number;
  /**
   * The window was the limit when it was sent: bytes in flight, counting it,
   * reached half the window (as Linux's tcp_is_cwnd_limited does for slow start).
   */
  cwndLimited: boolean;
}

/** A snapshot of a controller's state, for stats. */
export interface CongestionSnapshot {
  windowBytes: number;
  /** Slow-start threshold; undefined while it is infinite. */
  ssthreshBytes: number | undefined;
  /** Times the window was reduced for a loss. */
  congestionEvents: number;
}

/** The congestion window behind one small interface. Only `window`, `onAck` and `onLoss` are required. */
export interface CongestionController {
  /** Bytes that may be in flight now. */
  window(): number;
  /** A packet was acknowledged; `packet` is given by the transport (optional for other callers). */
  onAck(bytes: number, now: number, packet?: SentPacketInfo): void;
  /** A packet was declared lost. */
  onLoss(bytes: number, now: number, packet?: SentPacketInfo): void;
  /** A packet counted in flight was sent. */
  onSent?(packet: SentPacketInfo, now: number): void;
  /** RFC 9002 §7.6: every packet over a long period was lost. */
  onPersistentCongestion?(now: number): void;
  /** Back to the initial state (a path change, RFC 9000 §9.4). */
  reset?(now: number): void;
  snapshot?(): CongestionSnapshot;
}

/** A fixed window (no congestion control). */
export function fixedWindow(bytes: number): CongestionController {
  return {
    window: () => bytes,
    onAck: () => undefined,
    onLoss: () => undefined,
    snapshot: () => ({ windowBytes: bytes, ssthreshBytes: undefined, congestionEvents: 0 }),
  };
}

export interface NewRenoInit {
  /**
   * max_datagram_size: the largest payload in bytes.
   * @default 1200
   */
  maxDatagramBytes?: number;
  /**
   * Initial window in bytes (RFC 9002 §7.2).
   * @default min(10 · maxDatagramBytes, max(14720, 2 · maxDatagramBytes))
   */
  initialWindowBytes?: number;
  /**
   * Smallest window in bytes (RFC 9002 §7.2).
   * @default 2 · maxDatagramBytes
   */
  minimumWindowBytes?: number;
  /**
   * Largest window in bytes (a resource limit).
   * @default Infinity
   */
  maxWindowBytes?: number;
  /**
   * Factor the window is multiplied by on a congestion event (kLossReductionFactor).
   * @default 0.5
   */
  lossReductionFactor?: number;
}

/** RFC 9002 §7.2 initial window for a maximum datagram size. */
export function initialWindowFor(maxDatagramBytes: number): number {
  return Math.min(10 * maxDatagramBytes, Math.max(14720, 2 * maxDatagramBytes));
}

export class NewReno implements CongestionController {
  private readonly mds: number;
  private readonly initial: number;
  private readonly minimum: number;
  private readonly maximum: number;
  private readonly factor: number;
  private cwnd: number;
  private ssthresh = Infinity;
  /** First packet number sent after the last reduction; packets below it belong to that recovery period. */
  private recoveryStart: number | undefined;
  private largestSent = -1;
  private events = 0;

  constructor(init: NewRenoInit = {}) {
    this.mds = init.maxDatagramBytes ?? 1200;
    this.minimum = init.minimumWindowBytes ?? 2 * this.mds;
    this.maximum = Math.max(this.minimum, init.maxWindowBytes ?? Infinity);
    this.initial = Math.min(
      this.maximum,
      Math.max(this.minimum, init.initialWindowBytes ?? initialWindowFor(this.mds)),
    );
    this.factor = init.lossReductionFactor ?? 0.5;
    this.cwnd = this.initial;
  }

  window(): number {
    return this.cwnd;
  }

  /** True while acknowledgements are for packets sent before the last reduction. */
  inRecovery(packetNumber: number): boolean {
    return this.recoveryStart !== undefined && packetNumber < this.recoveryStart;
  }

  onSent(packet: SentPacketInfo): void {
    if (packet.packetNumber > this.largestSent) this.largestSent = packet.packetNumber;
  }

  onAck(bytes: number, _now: number, packet?: SentPacketInfo): void {
    if (packet !== undefined) {
      if (this.inRecovery(packet.packetNumber)) return;
      if (!packet.cwndLimited) return;
    }
    if (this.cwnd < this.ssthresh) this.cwnd += bytes;
    else this.cwnd += (this.mds * bytes) / this.cwnd;
    this.cwnd = Math.min(this.cwnd, this.maximum);
  }

  onLoss(_bytes: number, _now: number, packet?: SentPacketInfo): void {
    if (packet !== undefined && this.inRecovery(packet.packetNumber)) return;
    if (packet === undefined && this.recoveryStart !== undefined) {
      // Without a packet number, one reduction per packet sent since the last.
      if (this.largestSent < this.recoveryStart) return;
    }
    this.events++;
    this.recoveryStart = this.largestSent + 1;
    this.ssthresh = Math.max(this.cwnd * this.factor, this.minimum);
    this.cwnd = this.ssthresh;
  }

  onPersistentCongestion(): void {
    // Slow start again from the minimum up to the halved ssthresh; packets sent
    // before now (the rest of the lost flight) start no further reduction.
    this.cwnd = this.minimum;
    this.recoveryStart = this.largestSent + 1;
  }

  reset(): void {
    this.cwnd = this.initial;
    this.ssthresh = Infinity;
    this.recoveryStart = undefined;
  }

  snapshot(): CongestionSnapshot {
    return {
      windowBytes: this.cwnd,
      ssthreshBytes: Number.isFinite(this.ssthresh) ? this.ssthresh : undefined,
      congestionEvents: this.events,
    };
  }
}

/** NewReno congestion control (RFC 9002 §7). */
export function newReno(init: NewRenoInit = {}): NewReno {
  return new NewReno(init);
}
