/**
 * Link cost from what the link layer measures, for every protocol alike:
 * cost = (1 + RTT in ms) × ETX, where ETX = 1 / (1 − loss)² (De Couto et
 * al.; both directions assumed alike), rounded, 1..65535. A loopback link
 * costs 1; a 20 ms link 21; a link losing 30% of keepalives twice its RTT cost.
 */
export const MAX_LINK_COST = 0xffff;

export function linkCost(rttMs: number | undefined, loss: number): number {
  const rtt = rttMs === undefined || !Number.isFinite(rttMs) || rttMs < 0 ? 0 : rttMs;
  const delivery = Math.max(0.01, 1 - Math.min(Math.max(loss, 0), 1));
  const cost = Math.round((1 + rtt) / (delivery * delivery));
  return Math.min(MAX_LINK_COST, Math.max(1, cost));
}

/**
 * Whether a new cost differs enough from the one last reported to tell the
 * protocols (hysteresis: at least 25% and at least 2 apart), so that RTT noise
 * does not churn routes.
 */
export function costChanged(reported: number, measured: number): boolean {
  return Math.abs(measured - reported) >= 2 && Math.abs(measured - reported) >= 0.25 * reported;
}
