/**
 * Loss detection, RFC 9002 §6 and Appendix A, for one packet number space.
 *
 * Data: `sent` (outstanding ack-eliciting packets in packet-number order; a
 * Map keeps insertion order and numbers only grow), `lost` (packets declared
 * lost or abandoned, in packet-number order, kept a while so a late
 * acknowledgement still counts their bytes as delivered), `acked` (packet
 * numbers the peer acknowledged, for §7.6), and the current run of
 * consecutive losses (`runStart`, `runLast`) for persistent congestion.
 * Every loss batch is a prefix of `sent` (both thresholds are monotone in
 * packet number), so `lost` stays sorted and runs extend incrementally.
 *
 * - §6.1.1 packet threshold: unacknowledged and kPacketThreshold (3) below the
 *   largest acknowledged packet.
 * - §6.1.2 time threshold: sent before the largest acknowledged and more than
 *   9/8 · max(smoothed_rtt, latest_rtt) (at least kGranularity) ago; a packet
 *   not yet that old arms the loss timer for when it will be.
 * - §6.2 probe timeout: with ack-eliciting packets outstanding and no loss
 *   timer, PTO after the last ack-eliciting packet; each expiry doubles it
 *   (pto_count), an acknowledgement resets it. An expiry declares nothing
 *   lost: the caller sends probes (§6.2.4).
 * - §7.6 persistent congestion: ack-eliciting packets lost over more than
 *   3 · (smoothed_rtt + max(4·rttvar, kGranularity) + max_ack_delay), with no
 *   packet sent between them acknowledged, all sent after the first RTT sample.
 * - §5: RTT samples from the largest newly acknowledged packet, less the
 *   reported ack delay.
 * Left out: packet number spaces (one space here), ECN, and the anti-
 * amplification limit (no handshake in this layer).
 */
import { GRANULARITY_MS } from './rtt.ts';
import type { RttEstimator } from './rtt.ts';
import { RangeSet } from './ranges.ts';
import type { SentPacketInfo } from './congestion.ts';

/** kPacketThreshold, RFC 9002 §6.1.1. */
export const PACKET_THRESHOLD = 3;
/** kTimeThreshold, RFC 9002 §6.1.2. */
export const TIME_THRESHOLD = 9 / 8;
/** kPersistentCongestionThreshold, RFC 9002 §7.6.1. */
export const PERSISTENT_CONGESTION_THRESHOLD = 3;
/** Declared-lost packets remembered at most (late acknowledgements, persistent congestion). */
const MAX_REMEMBERED_LOST = 4096;

/** What one sent packet carried (the transport's record). */
export interface SentPacket extends SentPacketInfo {
  ackEliciting: boolean;
  /** Stream byte ranges [start, end) it carried. */
  streamRanges: [number, number][];
  fin: boolean;
  open: boolean;
  accept: boolean;
  maxData: boolean;
  /** Given up on a path change rather than lost: not a congestion signal. */
  abandoned?: boolean;
  /** Declared lost, then acknowledged after all. */
  lateAcked?: boolean;
}

export interface AckOutcome {
  /** Outstanding packets newly acknowledged, in packet-number order. */
  acked: SentPacket[];
  /** Packets acknowledged after they were declared lost or abandoned (their bytes did arrive). */
  lateAcked: SentPacket[];
  /** Packets declared lost now, in packet-number order. */
  lost: SentPacket[];
  persistentCongestion: boolean;
}

export type TimeoutOutcome =
  { kind: 'loss'; lost: SentPacket[]; persistentCongestion: boolean } | { kind: 'pto' };

export class LossDetector {
  private readonly sent = new Map<number, SentPacket>();
  private lost: SentPacket[] = [];
  private lostHead = 0;
  private runStart: SentPacket | undefined;
  private runLast: SentPacket | undefined;
  private readonly acked = new RangeSet();
  private readonly rtt: RttEstimator;
  private readonly maxAckDelayMs: number;
  largestAcked = -1;
  private largestSent = -1;
  bytesInFlight = 0;
  /** Consecutive PTO expiries (pto_count). */
  ptoCount = 0;
  private lossTime: number | undefined;
  private lastAckElicitingAt: number | undefined;
  private firstSampleAt: number | undefined;

  /** `maxAckDelayMs` is the peer's max_ack_delay (added to PTO). */
  constructor(rtt: RttEstimator, maxAckDelayMs: number) {
    this.rtt = rtt;
    this.maxAckDelayMs = maxAckDelayMs;
  }

  /** Are ack-eliciting packets outstanding? */
  get ackElicitingInFlight(): boolean {
    return this.sent.size > 0;
  }

  /** Records a sent packet; only ack-eliciting ones are tracked (ACK-only packets are never lost). */
  onSent(p: SentPacket): void {
    if (p.packetNumber > this.largestSent) this.largestSent = p.packetNumber;
    if (!p.ackEliciting) return;
    this.sent.set(p.packetNumber, p);
    this.bytesInFlight += p.bytes;
    this.lastAckElicitingAt = p.sentAt;
  }

  /** The oldest outstanding packet (what a probe resends, §6.2.4). */
  oldest(): SentPacket | undefined {
    for (const p of this.sent.values()) return p;
    return undefined;
  }

  /** An ACK frame: `ranges` inclusive, highest first; `ackDelayMs` as the peer reported it. */
  onAck(
    ranges: readonly (readonly [number, number])[],
    ackDelayMs: number,
    now: number,
  ): AckOutcome {
    const out: AckOutcome = { acked: [], lateAcked: [], lost: [], persistentCongestion: false };
    // Ranges above anything sent are ignored (a confused or lying peer must not declare losses).
    const asc: [number, number][] = [];
    for (let i = ranges.length - 1; i >= 0; i--) {
      const [first, last] = ranges[i] as readonly [number, number];
      if (first > this.largestSent) continue;
      asc.push([first, Math.min(last, this.largestSent)]);
    }
    if (asc.length === 0) return out;
    const largest = (asc[asc.length - 1] as [number, number])[1];
    for (const [first, last] of asc) this.acked.add(first, last + 1);
    this.acked.trim(256);

    let i = 0;
    for (const [pn, p] of this.sent) {
      if (pn > largest) break;
      while (i < asc.length && (asc[i] as [number, number])[1] < pn) i++;
      if (i >= asc.length) break;
      if (pn >= (asc[i] as [number, number])[0]) {
        this.sent.delete(pn);
        this.bytesInFlight -= p.bytes;
        out.acked.push(p);
      }
    }
    this.findLateAcked(asc, largest, out.lateAcked);
    const largestAdvanced = largest > this.largestAcked;
    if (largestAdvanced) this.largestAcked = largest;
    if (out.acked.length === 0 && !largestAdvanced) return out;

    const newest = out.acked[out.acked.length - 1];
    if (newest !== undefined && newest.packetNumber === largest) {
      this.rtt.sample(now - newest.sentAt, ackDelayMs, this.maxAckDelayMs);
      this.firstSampleAt ??= now;
    }
    if (out.acked.length > 0) this.ptoCount = 0;
    const detected = this.detectLost(now);
    out.lost = detected.lost;
    out.persistentCongestion = detected.persistentCongestion;
    this.prune(now);
    return out;
  }

  /** Remembered lost packets within the ascending ranges (both sorted: a merge from the first candidate). */
  private findLateAcked(asc: [number, number][], largest: number, into: SentPacket[]): void {
    const lowest = (asc[0] as [number, number])[0];
    let lo = this.lostHead;
    let hi = this.lost.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.lost[mid] as SentPacket).packetNumber < lowest) lo = mid + 1;
      else hi = mid;
    }
    let j = 0;
    for (let k = lo; k < this.lost.length; k++) {
      const p = this.lost[k] as SentPacket;
      if (p.packetNumber > largest) break;
      if (p.lateAcked === true) continue;
      while (j < asc.length && (asc[j] as [number, number])[1] < p.packetNumber) j++;
      if (j >= asc.length) break;
      if (p.packetNumber < (asc[j] as [number, number])[0]) continue;
      p.lateAcked = true;
      into.push(p);
      // A packet of the current run arrived after all: the run is broken.
      if (this.runStart !== undefined && p.packetNumber >= this.runStart.packetNumber)
        this.endRun();
    }
  }

  /** RFC 9002 §6.1 (DetectAndRemoveLostPackets), and §7.6 over the run the losses extend. */
  private detectLost(now: number): { lost: SentPacket[]; persistentCongestion: boolean } {
    const lost: SentPacket[] = [];
    let persistentCongestion = false;
    this.lossTime = undefined;
    const lossDelay = Math.max(TIME_THRESHOLD * this.rtt.lossRtt(), GRANULARITY_MS);
    for (const [pn, p] of this.sent) {
      if (pn > this.largestAcked) break;
      // sentAt + lossDelay <= now rather than sentAt <= now - lossDelay: the same sum arms the timer.
      if (p.sentAt + lossDelay <= now || this.largestAcked >= pn + PACKET_THRESHOLD) {
        this.sent.delete(pn);
        this.bytesInFlight -= p.bytes;
        this.remember(p);
        lost.push(p);
        if (this.extendRun(p)) persistentCongestion = true;
      } else {
        const at = p.sentAt + lossDelay;
        this.lossTime = this.lossTime === undefined ? at : Math.min(this.lossTime, at);
      }
    }
    return { lost, persistentCongestion };
  }

  private remember(p: SentPacket): void {
    const last = this.lost[this.lost.length - 1];
    if (last === undefined || last.packetNumber < p.packetNumber) this.lost.push(p);
    else {
      // Not expected (loss batches are prefixes of `sent`), but keep the order if it happens.
      let i = this.lost.length;
      while (i > this.lostHead && (this.lost[i - 1] as SentPacket).packetNumber > p.packetNumber)
        i--;
      this.lost.splice(i, 0, p);
    }
    if (this.lost.length - this.lostHead > MAX_REMEMBERED_LOST) this.lostHead++;
    this.compactLost();
  }

  private compactLost(): void {
    if (this.lostHead > 1024 && this.lostHead * 2 > this.lost.length) {
      this.lost = this.lost.slice(this.lostHead);
      this.lostHead = 0;
    }
  }

  /** RFC 9002 §7.6.1 duration. */
  persistentCongestionDuration(): number {
    const srtt = this.rtt.srtt ?? this.rtt.initialRtt();
    return (
      (srtt + Math.max(4 * this.rtt.rttvar, GRANULARITY_MS) + this.maxAckDelayMs) *
      PERSISTENT_CONGESTION_THRESHOLD
    );
  }

  private endRun(): void {
    this.runStart = undefined;
    this.runLast = undefined;
  }

  /**
   * RFC 9002 §7.6.2: one more lost packet; true when the run of losses it
   * extends (ack-eliciting, sent after the first RTT sample, nothing sent
   * between two of them acknowledged) spans more than the duration.
   */
  private extendRun(p: SentPacket): boolean {
    const since = this.firstSampleAt;
    if (since === undefined || p.sentAt <= since || p.abandoned === true || !p.ackEliciting)
      return false;
    const last = this.runLast;
    if (
      this.runStart === undefined ||
      last === undefined ||
      this.acked.intersects(last.packetNumber + 1, p.packetNumber)
    )
      this.runStart = p;
    this.runLast = p;
    if (p.sentAt - this.runStart.sentAt > this.persistentCongestionDuration()) {
      this.endRun();
      return true;
    }
    return false;
  }

  /** Forget lost packets too old to matter. */
  private prune(now: number): void {
    const horizon =
      now - 2 * this.persistentCongestionDuration() - this.rtt.basePto(this.maxAckDelayMs);
    while (
      this.lostHead < this.lost.length &&
      (this.lost[this.lostHead] as SentPacket).sentAt < horizon
    )
      this.lostHead++;
    this.compactLost();
  }

  /** When the loss-detection timer fires (§6.2.1 SetLossDetectionTimer), or undefined. */
  deadline(): number | undefined {
    if (this.lossTime !== undefined) return this.lossTime;
    if (this.sent.size === 0 || this.lastAckElicitingAt === undefined) return undefined;
    return this.lastAckElicitingAt + this.rtt.pto(this.maxAckDelayMs, this.ptoCount);
  }

  /** The current PTO including backoff. */
  pto(): number {
    return this.rtt.pto(this.maxAckDelayMs, this.ptoCount);
  }

  /** The timer fired at `now` (OnLossDetectionTimeout): losses by time, or a PTO (the caller sends probes). */
  onTimeout(now: number): TimeoutOutcome | undefined {
    if (this.lossTime !== undefined) {
      if (now < this.lossTime) return undefined;
      const { lost, persistentCongestion } = this.detectLost(now);
      this.prune(now);
      return { kind: 'loss', lost, persistentCongestion };
    }
    const at = this.deadline();
    if (at === undefined || now < at) return undefined;
    this.ptoCount++;
    return { kind: 'pto' };
  }

  /**
   * A path change: everything outstanding is given up (not as congestion), the
   * timers and the PTO backoff start again. Returns what was outstanding.
   */
  abandonAll(): SentPacket[] {
    const out = [...this.sent.values()];
    for (const p of out) {
      p.abandoned = true;
      this.remember(p);
    }
    this.sent.clear();
    this.bytesInFlight = 0;
    this.lossTime = undefined;
    this.ptoCount = 0;
    this.firstSampleAt = undefined;
    this.endRun();
    return out;
  }
}
