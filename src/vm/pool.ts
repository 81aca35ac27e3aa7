/**
 * The warm pool: Workers that have booted the VM shell (worker.ts, which
 * loads the engine module) but have no spec yet, so that a new connection's
 * VM starts without the ~44 ms (compiled; ~300 ms under tsx) Worker boot.
 *
 * Main structures: `idle` (booted Workers, oldest first) and `booting` (at
 * most one Worker being booted). Decisions: `take()` hands out the oldest
 * idle Worker or nothing (the caller then spawns cold); `refill()` boots one
 * Worker at a time until idle + booting reaches `size`. A Worker that dies in
 * the pool is counted and replaced; one that dies while booting is counted
 * and the next boot waits (doubling, up to 30 s) so a broken build does not
 * spin. Idle Workers are unref()'d: the pool never keeps a process alive
 * longer than one Worker boot.
 */
import type { Worker } from 'node:worker_threads';
import type { Counters, Logger } from '../observe/index.ts';
import type { VmToDevice } from './types.ts';

export interface WarmPoolOptions {
  /**
   * Booted idle Workers kept ready.
   * @default 4
   */
  size?: number;
  /** Creates a Worker running the VM shell (it posts `{ t: 'booted' }` once loaded). */
  create: () => Worker;
  logger: Logger;
  counters: Counters;
}

/** Counts kept by the pool (also in the counters as `vm.pool.*`). */
export interface WarmPoolStats {
  /** Booted Workers waiting for a spec. */
  idle: number;
  /** Workers being booted now (0 or 1). */
  booting: number;
  /** Workers the pool has booted successfully. */
  booted: number;
  /** Workers handed out by take(). */
  taken: number;
  /** Idle Workers that died in the pool (each replaced). */
  died: number;
  /** Workers that died before they finished booting. */
  bootFailed: number;
}

interface Pooled {
  worker: Worker;
  onMessage: (msg: VmToDevice) => void;
  onError: (err: Error) => void;
  onExit: () => void;
}

const MAX_BACKOFF_MS = 30000;

export class WarmPool {
  readonly size: number;
  private readonly create: () => Worker;
  private readonly logger: Logger;
  private readonly counters: Counters;
  private readonly idle: Pooled[] = [];
  private booting: Pooled | undefined;
  private closed = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];
  private readonly counts = { booted: 0, taken: 0, died: 0, bootFailed: 0 };

  constructor(options: WarmPoolOptions) {
    this.size = options.size ?? 4;
    this.create = options.create;
    this.logger = options.logger;
    this.counters = options.counters;
  }

  /** Booted idle Workers now. */
  get available(): number {
    return this.idle.length;
  }

  stats(): WarmPoolStats {
    return { idle: this.idle.length, booting: this.booting === undefined ? 0 : 1, ...this.counts };
  }

  /** Takes a booted idle Worker (ref()'d, no pool listeners left on it), or undefined if none. */
  take(): Worker | undefined {
    const entry = this.idle.shift();
    if (entry === undefined) return undefined;
    detach(entry);
    entry.worker.ref();
    this.counts.taken++;
    this.refill();
    return entry.worker;
  }

  /** Resolves once the pool holds `size` booted Workers (at once if it does, or if closed). */
  full(): Promise<void> {
    if (this.closed || this.idle.length >= this.size) return Promise.resolve();
    this.refill();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Boots Workers, one at a time, until idle + booting reaches `size`. */
  refill(): void {
    if (this.closed || this.booting !== undefined || this.retryTimer !== undefined) return;
    if (this.idle.length >= this.size) {
      this.wakeWaiters();
      return;
    }
    const worker = this.create();
    const entry: Pooled = {
      worker,
      onMessage: (msg) => {
        if (msg.t !== 'booted' || this.booting !== entry) return;
        this.booting = undefined;
        this.failures = 0;
        this.counts.booted++;
        worker.unref();
        this.idle.push(entry);
        this.refill();
      },
      onError: (err) => {
        this.logger.warn({ thread: worker.threadId, err: err.message }, 'pooled vm failed');
      },
      onExit: () => {
        detach(entry);
        if (this.closed) return;
        if (this.booting === entry) {
          this.booting = undefined;
          this.counts.bootFailed++;
          this.counters.inc('vm.pool.boot-failed');
          this.failures++;
          const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** (this.failures - 1));
          this.logger.warn({ retryInMs: delay }, 'a pooled vm died while booting');
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.refill();
          }, delay);
          this.retryTimer.unref();
          return;
        }
        const i = this.idle.indexOf(entry);
        if (i >= 0) {
          this.idle.splice(i, 1);
          this.counts.died++;
          this.counters.inc('vm.pool.died');
          this.logger.warn({ thread: worker.threadId }, 'a pooled idle vm died; replacing it');
          this.refill();
        }
      },
    };
    worker.on('message', entry.onMessage);
    worker.on('error', entry.onError);
    worker.on('exit', entry.onExit);
    this.booting = entry;
  }

  /** Terminates every pooled Worker and stops refilling. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const all = [...this.idle, ...(this.booting === undefined ? [] : [this.booting])];
    this.idle.length = 0;
    this.booting = undefined;
    this.wakeWaiters();
    await Promise.all(
      all.map(async (entry) => {
        await entry.worker.terminate();
        detach(entry);
      }),
    );
  }

  private wakeWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function detach(entry: Pooled): void {
  entry.worker.off('message', entry.onMessage);
  entry.worker.off('error', entry.onError);
  entry.worker.off('exit', entry.onExit);
}
