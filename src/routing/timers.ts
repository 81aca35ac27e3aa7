/** Timer helpers shared by the protocols (babeld style: each timer carries its own jitter). */

/** `interval` scaled by a factor drawn uniformly from [1 - jitter/2, 1 + jitter/2). */
export function jittered(interval: number, jitter: number, random: () => number): number {
  return interval * (1 - jitter / 2 + jitter * random());
}
