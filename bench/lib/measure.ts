/**
 * The three measurements of the data path, over any way of opening a stream
 * (a `Dial`): vmesh's connect() through a device, a plain TCP connection to
 * the head of a relay chain, or straight to the sink. Every loop is bounded
 * in count and in time; a failure is returned as data (its error code), not
 * thrown, so that one broken figure does not lose the others.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';

/** Opens a stream to a service (echo or count, as the caller chose). */
export type Dial = () => Promise<Duplex>;

/** A TCP dial to host:port (the baseline chain's head, or the sink itself), bounded by `timeoutMs`. */
export function tcpDial(host: string, port: number, timeoutMs = 30000): Dial {
  return () =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, allowHalfOpen: true });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`timeout: no TCP connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(socket);
      });
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
    });
}

/** The error code of anything thrown (VmeshError code, errno code, or the message). */
export function codeOf(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const message = (err as { message?: unknown }).message;
    if (typeof message === 'string') return message.slice(0, 120);
  }
  return String(err).slice(0, 120);
}

/** Rejects when the stream errors or closes, or after `ms`; resolves with `p` otherwise. */
function guarded<T>(stream: Duplex, p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => finish(new Error(`timeout: ${what} after ${ms} ms`)), ms);
    const onError = (err: Error): void => finish(err);
    // A close right after the awaited event must not win over it: look one turn later.
    const onClose = (): void => {
      setImmediate(() => finish(new Error(`closed before ${what}`)));
    };
    const finish = (err: Error | undefined, value?: T): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err === undefined) resolve(value as T);
      else reject(err);
    };
    stream.once('error', onError);
    stream.once('close', onClose);
    p.then(
      (v) => finish(undefined, v),
      (e: unknown) => finish(e instanceof Error ? e : new Error(String(e))),
    );
  });
}

/** Ends a stream and waits (bounded) for the other side to end too, then destroys it. */
export async function closeStream(stream: Duplex, ms = 2000): Promise<void> {
  stream.on('error', () => undefined);
  if (!stream.destroyed) {
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      const fin = (): void => {
        clearTimeout(timer);
        resolve();
      };
      stream.once('end', fin);
      stream.once('close', fin);
    });
    stream.resume();
    stream.end();
    await done;
  }
  stream.destroy();
}

export interface BulkResult {
  /** Bytes the sink counted. */
  bytes: number;
  /** From the first byte written to the sink's count coming back. */
  seconds: number;
  /** 10^6 bytes per second; null if the transfer failed. */
  mbPerS: number | null;
  /** The transfer stopped at the time bound before all bytes were sent. */
  cutShort?: boolean;
  error?: string;
}

/**
 * One-way bulk transfer to a `count` service: writes `bytes` in 64 KiB chunks
 * (one reused buffer), half-closes, and waits for the sink's byte count.
 * Stops writing at `timeBoundMs` (the figure is then over what was sent).
 */
export async function bulkOneWay(
  dial: Dial,
  bytes: number,
  timeBoundMs: number,
): Promise<BulkResult> {
  let stream: Duplex | undefined;
  try {
    stream = await dial();
    const s = stream;
    s.on('error', () => undefined);
    const reply = new Promise<number>((resolve, reject) => {
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      s.once('end', () => {
        const all = Buffer.concat(parts);
        if (all.length !== 8) reject(new Error(`the sink answered ${all.length} bytes, not 8`));
        else resolve(Number(all.readBigUInt64BE(0)));
      });
    });
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    const start = performance.now();
    const stopAt = start + timeBoundMs;
    let sent = 0;
    while (sent < bytes && performance.now() < stopAt) {
      const n = Math.min(chunk.length, bytes - sent);
      const more = s.write(n === chunk.length ? chunk : chunk.subarray(0, n));
      sent += n;
      if (!more) {
        const left = Math.max(1, stopAt - performance.now());
        await guarded(
          s,
          new Promise<void>((r) => s.once('drain', () => r())),
          left + 30000,
          'drain',
        );
      }
    }
    s.end();
    const counted = await guarded(s, reply, 60000, 'the sink count');
    const seconds = (performance.now() - start) / 1000;
    const result: BulkResult = { bytes: counted, seconds, mbPerS: counted / 1e6 / seconds };
    if (sent < bytes) result.cutShort = true;
    if (counted !== sent) result.error = `sent ${sent} bytes, the sink counted ${counted}`;
    return result;
  } catch (err) {
    return { bytes: 0, seconds: 0, mbPerS: null, error: codeOf(err) };
  } finally {
    stream?.destroy();
  }
}

export interface RoundTripResult {
  /** Round trip times in µs (after the warm-up). */
  us: number[];
  error?: string;
}

/**
 * Small-message round trips on one stream to an `echo` service: writes
 * `size` bytes, waits until `size` bytes came back, `count` times (plus a
 * warm-up of a tenth, at least 5, not recorded), within `timeBoundMs`.
 */
export async function roundTrips(
  dial: Dial,
  count: number,
  size: number,
  timeBoundMs: number,
): Promise<RoundTripResult> {
  const us: number[] = [];
  let stream: Duplex | undefined;
  try {
    stream = await dial();
    const s = stream;
    let owed = 0;
    let wake: (() => void) | undefined;
    s.on('data', (c: Buffer) => {
      owed -= c.length;
      if (owed <= 0 && wake !== undefined) {
        const w = wake;
        wake = undefined;
        w();
      }
    });
    const message = Buffer.alloc(size, 0x61);
    const warmup = Math.max(5, Math.ceil(count / 10));
    const stopAt = performance.now() + timeBoundMs;
    for (let i = 0; i < warmup + count && performance.now() < stopAt; i++) {
      owed = size;
      const back = new Promise<void>((r) => (wake = r));
      const t = performance.now();
      s.write(message);
      await guarded(s, back, 10000, 'an echo');
      if (i >= warmup) us.push((performance.now() - t) * 1000);
    }
    await closeStream(s);
    return { us };
  } catch (err) {
    stream?.destroy();
    return { us, error: codeOf(err) };
  }
}

export interface SetupResult {
  /** Dial request to the first echoed byte, ms, one per connection. */
  ms: number[];
  error?: string;
}

/**
 * Connection setup: `count` times (within `timeBoundMs`), dial an `echo`
 * service, write one byte and wait for it to come back; then close the
 * stream gracefully and wait `gapMs` (so that pools can refill between tries).
 */
export async function setupTimes(
  dial: Dial,
  count: number,
  timeBoundMs: number,
  gapMs = 50,
): Promise<SetupResult> {
  const ms: number[] = [];
  const stopAt = performance.now() + timeBoundMs;
  try {
    for (let i = 0; i < count && performance.now() < stopAt; i++) {
      const t = performance.now();
      const s = await dial();
      s.on('error', () => undefined);
      const first = new Promise<void>((r) => s.once('data', () => r()));
      s.write(Buffer.from([0x21]));
      await guarded(s, first, 30000, 'the first echoed byte');
      ms.push(performance.now() - t);
      await closeStream(s);
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
    }
    return { ms };
  } catch (err) {
    return { ms, error: codeOf(err) };
  }
}

/** Opens a stream to an echo service and checks one byte comes back; the stream stays open. */
export async function openChecked(dial: Dial, timeoutMs = 30000): Promise<Duplex> {
  const s = await dial();
  s.on('error', () => undefined);
  try {
    const first = new Promise<void>((r) => s.once('data', () => r()));
    s.write(Buffer.from([0x21]));
    await guarded(s, first, timeoutMs, 'the first echoed byte');
  } catch (err) {
    s.destroy();
    throw err;
  }
  return s;
}
