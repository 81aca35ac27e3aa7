/**
 * Round-trip estimation, RFC 9002 §5 (which keeps RFC 6298 §2's smoothing):
 * `latest` (§5.1), `minRtt` (§5.2), `srtt` and `rttvar` (§5.3). The first
 * sample sets SRTT = R and RTTVAR = R/2; later ones use alpha 1/8 and beta
 * 1/4 on the sample less the peer's acknowledgement delay (capped at its
 * max_ack_delay, and never taken below min_rtt).
 *
 * Two timeouts come from it:
 * - `pto(maxAckDelayMs, count)`: RFC 9002 §6.2.1's probe timeout,
 *   SRTT + max(4·RTTVAR, kGranularity) + max_ack_delay, doubled per
 *   consecutive expiry; what the transport arms.
 * - `rto()`: RFC 6298's retransmission timeout, SRTT + max(G, 4·RTTVAR),
 *   doubled on each `timedOut()` until a new sample (§5.5); kept for callers.
 * Both are bounded to [min, max]; before the first sample both are the
 * initial value (RFC 9002's 3 × kInitialRtt = 999 ms is the 1000 ms default).
 */

/** kGranularity, RFC 9002 §6.1.2: the timer granularity in ms. */
export const GRANULARITY_MS = 1;

export class RttEstimator {
  /** smoothed_rtt, undefined before the first sample. */
  srtt: number | undefined;
  rttvar = 0;
  /** latest_rtt of the last sample. */
  latest: number | undefined;
  /** min_rtt over the path's life (reset with the path). */
  minRtt: number | undefined;
  private backoff = 0;
  private readonly initial: number;
  private readonly min: number;
  private readonly max: number;

  constructor(initialRtoMs: number, minRtoMs: number, maxRtoMs: number) {
    this.initial = initialRtoMs;
    this.min = minRtoMs;
    this.max = maxRtoMs;
  }

  /**
   * One RTT sample `r` (ms) for a newly acknowledged packet, and the delay the
   * peer reported holding its acknowledgement (§5.3).
   */
  sample(r: number, ackDelayMs = 0, maxAckDelayMs = Infinity): void {
    const latest = Math.max(0, r);
    this.latest = latest;
    this.backoff = 0;
    if (this.srtt === undefined || this.minRtt === undefined) {
      this.minRtt = latest;
      this.srtt = latest;
      this.rttvar = latest / 2;
      return;
    }
    this.minRtt = Math.min(this.minRtt, latest);
    const delay = Math.min(Math.max(0, ackDelayMs), maxAckDelayMs);
    const adjusted = latest >= this.minRtt + delay ? latest - delay : latest;
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - adjusted);
    this.srtt = 0.875 * this.srtt + 0.125 * adjusted;
  }

  /** The RTT loss detection uses before a sample: RFC 9002's kInitialRtt, as a third of the initial timeout. */
  initialRtt(): number {
    return this.initial / 3;
  }

  /** RFC 9002 §6.1.2: max(latest_rtt, smoothed_rtt), or the initial RTT before a sample. */
  lossRtt(): number {
    if (this.srtt === undefined) return this.initialRtt();
    return Math.max(this.srtt, this.latest ?? this.srtt);
  }

  /** RFC 9002 §6.2.1 probe timeout without backoff, bounded to [min, max]. */
  basePto(maxAckDelayMs: number): number {
    const pto =
      this.srtt === undefined
        ? this.initial
        : this.srtt + Math.max(4 * this.rttvar, GRANULARITY_MS) + maxAckDelayMs;
    return Math.min(this.max, Math.max(this.min, pto));
  }

  /** The probe timeout after `count` consecutive expiries (doubling, §6.2.1), at most max. */
  pto(maxAckDelayMs: number, count: number): number {
    return Math.min(this.max, this.basePto(maxAckDelayMs) * 2 ** Math.min(count, 16));
  }

  /** RFC 6298 base RTO without backoff. */
  baseRto(): number {
    const rto = this.srtt === undefined ? this.initial : this.srtt + Math.max(1, 4 * this.rttvar);
    return Math.min(this.max, Math.max(this.min, rto));
  }

  /** RFC 6298 RTO with the backoff of `timedOut()`. */
  rto(): number {
    return Math.min(this.max, this.baseRto() * 2 ** this.backoff);
  }

  timedOut(): void {
    this.backoff = Math.min(this.backoff + 1, 16);
  }

  /** Back to the initial values (a new path, RFC 9000 §9.4). */
  reset(): void {
    this.srtt = undefined;
    this.rttvar = 0;
    this.latest = undefined;
    this.minRtt = undefined;
    this.backoff = 0;
  }
}
