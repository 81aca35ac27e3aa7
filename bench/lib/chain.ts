/**
 * The baseline: a plain Node.js TCP relay chain, each relay a process with a
 * net.Server piping to the next (bench/proc/relay.ts), the last one to the
 * sink. One chain carries several services side by side (one listening port
 * per service on every relay), so the same processes serve the bulk and the
 * echo measurements.
 */
import type { Helper } from './procs.ts';
import { startHelper } from './procs.ts';

export interface Chain {
  relays: Helper[];
  /** Port on the first relay for each service, by the targets' order. */
  entry: number[];
  stop(): Promise<void>;
}

/** Starts `length` relays in a line ending at `targets` (host:port of each service). */
export async function startChain(length: number, targets: string[]): Promise<Chain> {
  const relays: Helper[] = [];
  let next = targets;
  try {
    // From the last relay to the first: each needs its successor's ports.
    for (let i = length - 1; i >= 0; i--) {
      const relay = await startHelper('relay.ts', next);
      relays.unshift(relay);
      next = (relay.info.ports as number[]).map((p) => `127.0.0.1:${p}`);
    }
  } catch (err) {
    await Promise.all(relays.map((r) => r.stop()));
    throw err;
  }
  return {
    relays,
    entry: (relays[0]?.info.ports as number[] | undefined) ?? [],
    stop: async () => {
      await Promise.all(relays.map((r) => r.stop()));
    },
  };
}
