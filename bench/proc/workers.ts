// The floor under a VM, measured in a process of its own: N bare
// worker_threads Workers (an eval'd script that answers one message and then
// idles). Prints, as one JSON line, each Worker's spawn-to-first-message
// time and the process RSS before and after the N Workers are up, then ends
// them. Usage: workers.ts COUNT
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

const count = Math.max(1, Math.min(200, Number(process.argv[2] ?? 10)));
const rss = (): number => {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
};
const code =
  "const { parentPort } = require('node:worker_threads'); parentPort.on('message', () => undefined); parentPort.postMessage('up');";

await new Promise((r) => setTimeout(r, 300));
const rssBeforeMb = rss();
const workers: Worker[] = [];
const spawnMs: number[] = [];
for (let i = 0; i < count; i++) {
  const t = performance.now();
  const w = new Worker(code, { eval: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('a bare Worker did not start in 10 s')), 10000);
    w.once('message', () => {
      clearTimeout(timer);
      resolve();
    });
    w.once('error', reject);
  });
  spawnMs.push(performance.now() - t);
  workers.push(w);
}
await new Promise((r) => setTimeout(r, 500));
const rssAfterMb = rss();
await Promise.all(workers.map((w) => w.terminate()));
console.log(JSON.stringify({ count, spawnMs, rssBeforeMb, rssAfterMb }));
