/**
 * Observability primitives shared by every component: a counter registry and
 * the logger contract.
 *
 * Owns: `Counters` (named monotonic counters with optional labels, one
 * registry per device, snapshotted by the control API), `Logger` (the subset of
 * pino the components use) and `silentLogger` for tests. Components take both
 * as constructor options; nothing logs with `console` outside src/cli/.
 */

/** Labels on a counter, e.g. { reason: 'malformed', neighbour: 'B' }. */
export type Labels = Readonly<Record<string, string>>;

/** A named counter registry. Names are dotted: `link.frames.dropped`. */
export class Counters {
  private readonly values = new Map<string, number>();

  /** Adds `by` (default 1) to the counter `name` with `labels`. */
  inc(name: string, labels?: Labels, by = 1): void {
    const key = counterKey(name, labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  /** Current value of one counter (0 if never incremented). */
  get(name: string, labels?: Labels): number {
    return this.values.get(counterKey(name, labels)) ?? 0;
  }

  /** Sum of a counter over all its label sets. */
  total(name: string): number {
    let sum = 0;
    for (const [key, value] of this.values) {
      if (key === name || key.startsWith(`${name}{`)) sum += value;
    }
    return sum;
  }

  /** Plain snapshot: key (`name{label="v",...}`) -> value, sorted by key. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

function counterKey(name: string, labels: Labels | undefined): string {
  if (labels === undefined) return name;
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
}

/** The logging surface components use (pino-compatible). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
