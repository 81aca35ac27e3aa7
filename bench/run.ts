/**
 * `npm run bench`: runs the benches one after the other; each prints its
 * table and writes bench/results/<name>.json, every figure beside a baseline
 * measured in the same run. See docs/performance.md.
 *
 * Usage: node --import tsx bench/run.ts [options]
 *   --quick            small sizes, few iterations (the whole run under a minute)
 *   --only NAME[,NAME] run only these benches (see --list)
 *   --source           run the devices from the TypeScript sources (tsx) instead of dist/
 *   --bulk-mb N        MiB per bulk transfer (datapath, peers)
 *   --protocol NAME    routing protocol of every bench connection (default link-state;
 *                      `policy`: let the device's policy choose)
 *   --list             list the benches and exit
 *
 * Without --quick the run is moderate (a few minutes). The benches in
 * separate scripts (link-seal, peers) run as child processes; peers needs
 * root and the Debian yggdrasil package and is skipped (with the reason)
 * without them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import os from 'node:os';
import type { BenchOptions } from './lib/report.ts';
import { REPO_ROOT } from './lib/report.ts';
import { trackChild } from './lib/cleanup.ts';
import { checkDist } from './lib/vmesh.ts';

interface ModuleBench {
  name: string;
  description: string;
  kind: 'module';
  load: () => Promise<{ run: (o: BenchOptions) => Promise<Record<string, unknown>> }>;
  /** Why it does not run now (undefined: it runs), given the options. */
  skip?: (o: BenchOptions, only: boolean) => string | undefined;
}
interface ScriptBench {
  name: string;
  description: string;
  kind: 'script';
  file: string;
  /** Why it does not run now (undefined: it runs), given the options. */
  skip: (o: BenchOptions, only: boolean) => string | undefined;
  /** Flags passed on to it. */
  flags: (o: BenchOptions) => string[];
  timeBoundMs: number;
}
type Bench = ModuleBench | ScriptBench;

function canRunPeers(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  const found = spawnSync('sh', ['-c', 'command -v yggdrasil'], { encoding: 'utf8' });
  if (found.status !== 0)
    return 'the Debian yggdrasil package is missing: apt-get install -y yggdrasil';
  return undefined;
}

const BENCHES: Bench[] = [
  {
    name: 'datapath',
    description:
      'one connection through 1 and 2 relays: bulk, 32-byte round trip, setup; vs a plain Node TCP relay chain',
    kind: 'module',
    load: () => import('./datapath.ts'),
  },
  {
    name: 'vm',
    description:
      'VM spawn (warm pool / cold), idle memory per VM, concurrent connections through one relay; vs bare Workers and the plain chain',
    kind: 'module',
    load: () => import('./vm.ts'),
  },
  {
    name: 'failover',
    description:
      'outage of one connection when its relay dies, vs a plain relay and an app that redials',
    kind: 'module',
    load: () => import('./failover.ts'),
    skip: (o, only) => (o.quick && !only ? 'not part of --quick (run --only failover)' : undefined),
  },
  {
    name: 'link-seal',
    description: 'cost of sealing a packet on a link (crypto calls), vs framing without crypto',
    kind: 'script',
    file: 'link-seal.ts',
    skip: (o, only) => (o.quick && !only ? 'takes ~50 s: not part of --quick' : undefined),
    flags: () => [],
    timeBoundMs: 300_000,
  },
  {
    name: 'peers',
    description:
      'yggdrasil in three network namespaces A–B–C, bulk A->C, beside vmesh through 1 relay',
    kind: 'script',
    file: 'peers.ts',
    skip: (o, only) => {
      if (o.quick && !only) return 'not part of --quick (run --only peers)';
      return canRunPeers();
    },
    flags: (o) => [
      ...(o.quick ? ['--quick'] : []),
      ...(o.build === 'source' ? ['--source'] : []),
      ...(o.bulkBytes === undefined ? [] : ['--bulk-mb', String(o.bulkBytes / 2 ** 20)]),
      '--protocol',
      o.protocol ?? 'policy',
    ],
    timeBoundMs: 600_000,
  },
];

function usage(message?: string): never {
  if (message !== undefined) console.error(`bench: ${message}`);
  console.error(
    'usage: node --import tsx bench/run.ts [--quick] [--only NAME[,NAME]] [--source] [--bulk-mb N] [--protocol NAME|policy] [--list]',
  );
  process.exit(2);
}

function parse(argv: string[]): { options: BenchOptions; only?: string[]; list: boolean } {
  const options: BenchOptions = { quick: false, build: 'dist', protocol: 'link-state' };
  let only: string[] | undefined;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') options.quick = true;
    else if (a === '--source') options.build = 'source';
    else if (a === '--list') list = true;
    else if (a === '--only') {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) usage('--only needs a bench name');
      only = v.split(',').filter((x) => x !== '');
    } else if (a === '--bulk-mb') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0 || v > 4096)
        usage('--bulk-mb needs a number of MiB (0–4096]');
      options.bulkBytes = Math.round(v * 2 ** 20);
    } else if (a === '--protocol') {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--'))
        usage('--protocol needs a protocol name or `policy`');
      if (v === 'policy') delete options.protocol;
      else options.protocol = v;
    } else if (a === '--help' || a === '-h') usage();
    else usage(`unknown option ${a}`);
  }
  for (const n of only ?? []) {
    if (!BENCHES.some((b) => b.name === n))
      usage(`no bench named ${n} (${BENCHES.map((b) => b.name).join(', ')})`);
  }
  return only === undefined ? { options, list } : { options, only, list };
}

function runScript(b: ScriptBench, options: BenchOptions): Promise<number | string> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'bench', b.file), ...b.flags(options)],
      { cwd: REPO_ROOT, stdio: 'inherit' },
    );
    trackChild(child);
    const timer = setTimeout(() => {
      console.error(`bench: ${b.name} ran past ${b.timeBoundMs / 1000} s; stopping it`);
      child.kill('SIGTERM');
    }, b.timeBoundMs);
    child.once('error', (err) => resolve(err.message));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? 'unknown');
    });
  });
}

const { options, only, list } = parse(process.argv.slice(2));
if (list) {
  for (const b of BENCHES) console.log(`${b.name.padEnd(10)} ${b.description}`);
  process.exit(0);
}
const needsDevices = ['datapath', 'vm', 'failover', 'peers'].some(
  (n) => only === undefined || only.includes(n),
);
if (options.build === 'dist' && needsDevices) {
  try {
    checkDist();
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    process.exit(2);
  }
}
const load = os.loadavg()[0] as number;
if (load > os.cpus().length) {
  console.log(
    `warning: load average ${load.toFixed(1)} on ${os.cpus().length} cores: other work is running, figures will be noisy (ratios less so)`,
  );
}
console.log(
  `vmesh benches (${options.quick ? 'quick' : 'moderate'}; devices from ${options.build === 'dist' ? 'dist/' : 'src/ through tsx'}); ${new Date().toISOString()}`,
);
const summary: string[] = [];
let failed = false;
for (const b of BENCHES) {
  const selected = only === undefined || only.includes(b.name);
  if (!selected) continue;
  const t0 = performance.now();
  const took = (): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  console.log(`\n=== ${b.name}: ${b.description}`);
  if (b.kind === 'module') {
    const why = b.skip?.(options, only !== undefined);
    if (why !== undefined) {
      console.log(`skipped: ${why}`);
      summary.push(`${b.name}: skipped (${why})`);
      continue;
    }
    try {
      const mod = await b.load();
      await mod.run(options);
      summary.push(`${b.name}: done in ${took()}`);
    } catch (err) {
      failed = true;
      console.error(`bench ${b.name} failed: ${(err as Error).message}`);
      summary.push(`${b.name}: FAILED (${(err as Error).message.split('\n')[0]})`);
    }
  } else {
    const why = b.skip(options, only !== undefined);
    if (why !== undefined) {
      console.log(`skipped: ${why}`);
      summary.push(`${b.name}: skipped (${why})`);
      continue;
    }
    const code = await runScript(b, options);
    if (code === 0) summary.push(`${b.name}: done in ${took()}`);
    else {
      failed = true;
      summary.push(`${b.name}: FAILED (exit ${code})`);
    }
  }
}
console.log(`\nsummary:\n  ${summary.join('\n  ')}`);
process.exit(failed ? 1 : 0);
