/**
 * Pacing, RFC 9002 §7.7: a token bucket in bytes refilled at
 * N · cwnd / smoothed_rtt (N = 1.25, so a window still fits in a round trip
 * when the estimate is a little high) and holding at most `burstBytes`, so a
 * window goes out spread over the round trip instead of in one burst into a
 * bottleneck's queue. A packet may go while the bucket is not empty (it may
 * go one packet into debt). Before the first RTT sample there is no rate and
 * nothing is held back.
 */
const N = 1.25;
/** Smallest RTT used for the rate, in ms (a loopback RTT rounds down to 0). */
const MIN_RTT_MS = 0.01;

export class Pacer {
  private tokens: number;
  private last: number | undefined;
  private readonly burst: number;

  constructor(burstBytes: number) {
    this.burst = burstBytes;
    this.tokens = burstBytes;
  }

  private rate(cwnd: number, srtt: number): number {
    return (N * cwnd) / Math.max(srtt, MIN_RTT_MS);
  }

  private refill(now: number, cwnd: number, srtt: number | undefined): void {
    if (this.last !== undefined && srtt !== undefined && now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.rate(cwnd, srtt));
    }
    if (srtt === undefined) this.tokens = this.burst;
    this.last = now;
  }

  /** May a packet go now? */
  canSend(now: number, cwnd: number, srtt: number | undefined): boolean {
    this.refill(now, cwnd, srtt);
    return this.tokens > -0.5;
  }

  onSent(bytes: number): void {
    this.tokens -= bytes;
  }

  /** When a packet may go next (now if it may already). */
  nextSendTime(now: number, cwnd: number, srtt: number | undefined): number {
    this.refill(now, cwnd, srtt);
    if (this.tokens > -0.5 || srtt === undefined) return now;
    return now + -this.tokens / this.rate(cwnd, srtt);
  }

  reset(): void {
    this.tokens = this.burst;
    this.last = undefined;
  }
}
