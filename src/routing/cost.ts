/**
 * Link cost from what the link layer measures, for every protocol alike:
 * cost = (1 + ⌊RTT / 10 ms⌋) × ETX, where ETX = 1 / (1 − loss)² (De Couto et
 * al.; both directions assumed alike), rounded, 1..65535. RTT counts in
 * 10 ms steps so that scheduling noise on a busy machine (loopback RTTs of
 * 0.1–5 ms) does not move routes, while a 20 ms link (3) and an 80 ms link
 * (9) differ. A link losing 30% of keepalives costs about twice as much.
 */
export const MAX_LINK_COST = 0xffff;

/** RTT step of one cost unit, ms. */
export const RTT_COST_UNIT_MS = 10;

export function linkCost(rttMs: number | undefined, loss: number): number {
  const rtt = rttMs === undefined || !Number.isFinite(rttMs) || rttMs < 0 ? 0 : rttMs;
  const delivery = Math.max(0.01, 1 - Math.min(Math.max(loss, 0), 1));
  const cost = Math.round((1 + Math.floor(rtt / RTT_COST_UNIT_MS)) / (delivery * delivery));
  return Math.min(MAX_LINK_COST, Math.max(1, cost));
}

/**
 * Whether a new cost differs enough from the one last reported to tell the
 * protocols (hysteresis: at least 25% and at least 2 apart), so that noise
 * does not churn routes.
 */
export function costChanged(reported: number, measured: number): boolean {
  return Math.abs(measured - reported) >= 2 && Math.abs(measured - reported) >= 0.25 * reported;
}
