/**
 * What a bench leaves behind if it is interrupted: on SIGINT or SIGTERM,
 * every tracked child process (helpers, device processes, child benches) is
 * sent SIGTERM, every registered hook runs (e.g. removing network
 * namespaces), every tracked temp folder is removed, and the process exits
 * with 130. The normal path stops and removes these itself (try/finally).
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
const hooks = new Set<() => void>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  const onSignal = (signal: NodeJS.Signals): void => {
    console.error(`\nbench: ${signal}: stopping what this bench started`);
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
    for (const hook of hooks) {
      try {
        hook();
      } catch (err) {
        console.error(`bench: cleanup failed: ${(err as Error).message}`);
      }
    }
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** Stops `child` if the bench is interrupted; forgotten once it exited. */
export function trackChild(child: ChildProcess): void {
  install();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** Removes `dir` if the bench is interrupted; returns a function that forgets it. */
export function trackDir(dir: string): () => void {
  install();
  dirs.add(dir);
  return () => dirs.delete(dir);
}

/** Runs `hook` (synchronous) if the bench is interrupted; returns a function that forgets it. */
export function onInterrupt(hook: () => void): () => void {
  install();
  hooks.add(hook);
  return () => hooks.delete(hook);
}
