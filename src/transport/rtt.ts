/**
 * Round-trip estimator and retransmission timeout, RFC 6298 §2: the first
 * sample sets SRTT = R and RTTVAR = R/2; later ones use alpha 1/8, beta 1/4;
 * RTO = SRTT + max(G, 4 RTTVAR), bounded to [min, max]; each consecutive
 * timeout doubles it (§5.5) until a new sample arrives.
 */
export class RttEstimator {
  srtt: number | undefined;
  rttvar = 0;
  private backoff = 0;
  private readonly initial: number;
  private readonly min: number;
  private readonly max: number;

  constructor(initialRtoMs: number, minRtoMs: number, maxRtoMs: number) {
    this.initial = initialRtoMs;
    this.min = minRtoMs;
    this.max = maxRtoMs;
  }

  sample(r: number): void {
    if (this.srtt === undefined) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.backoff = 0;
  }

  /** The base RTO without backoff. */
  baseRto(): number {
    const rto = this.srtt === undefined ? this.initial : this.srtt + Math.max(1, 4 * this.rttvar);
    return Math.min(this.max, Math.max(this.min, rto));
  }

  rto(): number {
    return Math.min(this.max, this.baseRto() * 2 ** this.backoff);
  }

  timedOut(): void {
    this.backoff = Math.min(this.backoff + 1, 16);
  }
}
