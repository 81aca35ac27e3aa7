// The simulator's seeded RNG, for deterministic tests.
export { seeded } from '../../src/sim/index.ts';
