/**
 * Helper processes of the benches (sink, plain TCP relay, client, bare
 * Workers): each is a TypeScript entry in bench/proc/ run through tsx, which
 * prints one JSON line when it is ready; and what the benches read about
 * processes (RSS) and the machine (available memory) from /proc.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmeshError } from '../../src/errors/index.ts';
import { trackChild } from './cleanup.ts';
import { REPO_ROOT } from './report.ts';

export interface Helper {
  pid: number;
  /** The JSON line the helper printed when it was ready. */
  info: Record<string, unknown>;
  process: ChildProcess;
  /** Everything it printed (bounded). */
  output(): string;
  /** Resolves with the exit code (or signal) once it exited. */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface HelperOptions {
  /** Command words before node, e.g. ['ip', 'netns', 'exec', 'NS']. */
  prefix?: string[];
  /** How long to wait for the ready line. @default 20000 */
  readyTimeoutMs?: number;
}

/** Resolved once: the tsx loader, so helpers start whatever the current folder is. */
const TSX = import.meta.resolve('tsx');

/** The command words that run a bench/proc/ entry with node and tsx. */
export function helperCommand(entry: string, args: string[]): string[] {
  return [process.execPath, '--import', TSX, join(REPO_ROOT, 'bench', 'proc', entry), ...args];
}

/** Starts bench/proc/<entry> and waits for its ready line (a JSON object). */
export async function startHelper(
  entry: string,
  args: string[],
  options: HelperOptions = {},
): Promise<Helper> {
  const words = [...(options.prefix ?? []), ...helperCommand(entry, args)];
  const child = spawn(words[0] as string, words.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  trackChild(child);
  let out = '';
  let stdout = '';
  const keep = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  child.once('error', () => undefined);
  const stop = async (graceMs = 3000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const timeoutMs = options.readyTimeoutMs ?? 20000;
  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new VmeshError(
          'VMESH_ERR_TIMEOUT',
          `${entry} did not report ready within ${timeoutMs} ms:\n${out.slice(-2000)}`,
        ),
      );
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString('utf8');
      const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
      for (const line of complete.split('\n')) {
        if (!line.startsWith('{')) continue;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        try {
          resolve(JSON.parse(line) as Record<string, unknown>);
        } catch {
          reject(new VmeshError('VMESH_ERR_INTERNAL', `${entry} printed a bad ready line`));
        }
        return;
      }
    };
    child.stdout?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new VmeshError(
          'VMESH_ERR_INTERNAL',
          `${entry} exited (${code}) before it was ready:\n${out.slice(-2000)}`,
        ),
      );
    });
  }).catch(async (err: unknown) => {
    await stop(500);
    throw err;
  });
  return {
    pid: child.pid as number,
    info,
    process: child,
    output: () => out,
    exited,
    stop,
  };
}

/** Runs a helper to completion and returns the last JSON line it printed. */
export async function runHelper(
  entry: string,
  args: string[],
  options: HelperOptions & { timeoutMs: number },
): Promise<Record<string, unknown>> {
  const words = [...(options.prefix ?? []), ...helperCommand(entry, args)];
  const child = spawn(words[0] as string, words.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  trackChild(child);
  let out = '';
  let stdout = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
    out += c.toString('utf8');
  });
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const code = await new Promise<number | string>((resolve) => {
    child.once('error', (err) => resolve(err.message));
    child.once('exit', (c, s) => resolve(c ?? s ?? 'unknown'));
  });
  clearTimeout(timer);
  const line = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .at(-1);
  if (code !== 0 || line === undefined) {
    throw new VmeshError(
      'VMESH_ERR_INTERNAL',
      `${entry} ${args.join(' ')} failed (${code}):\n${out.slice(-2000)}`,
    );
  }
  return JSON.parse(line) as Record<string, unknown>;
}

/** Resident set size of a process, MiB (from /proc/PID/status); NaN if it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? Number.NaN : Number(m[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU time a process has used so far (user + system, all its threads), seconds,
 * from /proc/PID/stat (clock ticks of 1/100 s); NaN if it is gone.
 */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Threads of a process (from /proc/PID/status); NaN if it is gone. */
export function threadCount(pid: number): number {
  try {
    const m = /Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? Number.NaN : Number(m[1]);
  } catch {
    return Number.NaN;
  }
}

/** Memory the kernel says is available to new work, MiB (MemAvailable). */
export function memAvailableMb(): number {
  const m = /MemAvailable:\s+(\d+)\s+kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
