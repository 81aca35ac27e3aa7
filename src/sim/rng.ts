/**
 * Seeded random numbers for the simulator and tests (xorshift32): the same
 * seed gives the same run on every machine. Not for anything secret.
 */
export type Rng = () => number;

/** A uniform generator in [0, 1) from a 32-bit seed (0 is mapped to 1). */
export function seeded(seed: number): Rng {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

/** An integer in [0, n). */
export function randomInt(random: Rng, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/** A new generator derived from `random` (for an independent stream, e.g. per protocol run). */
export function fork(random: Rng): Rng {
  return seeded(Math.floor(random() * 0x100000000));
}
