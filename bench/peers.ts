/**
 * Bench `peers` (root only): a peer mesh beside vmesh. Builds three network
 * namespaces A–B–C joined by veth pairs (A and C not linked), runs the Debian
 * package's yggdrasil in each (A and C peer with B), and measures the same
 * one-way bulk transfer and 32-byte round trip from A to a sink in C over
 * yggdrasil, beside two baselines in the same namespaces (TCP forwarded by
 * B's kernel; a plain Node relay process in B) and beside vmesh through one
 * relay on 127.0.0.1 with its plain chain (bench `datapath`, 1 relay),
 * all measured in this run. Prints a table and writes bench/results/peers.json.
 *
 * Everything it makes is named vmbench-* (namespaces) / vmb-* (veths) and
 * is removed on the way out, also on failure or Ctrl-C; leftovers of an
 * earlier run that died are removed first.
 *
 * Usage: node --import tsx bench/peers.ts [--quick] [--source] [--bulk-mb N] [--protocol NAME|policy]
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { datapathParams, measurePath } from './datapath.ts';
import { startSink } from './lib/devices.ts';
import type { PathResult } from './datapath.ts';
import { onInterrupt, trackChild } from './lib/cleanup.ts';
import { helperCommand } from './lib/procs.ts';
import type { BenchOptions } from './lib/report.ts';
import { fmt, printTable, runContext, writeResult } from './lib/report.ts';
import { median, percentile, ratio, round } from './lib/stats.ts';
import { loadVmesh } from './lib/vmesh.ts';

const NAMESPACES = ['vmbench-a', 'vmbench-b', 'vmbench-c'] as const;
const [NS_A, NS_B, NS_C] = NAMESPACES;
/** The two veth pairs: A–B and B–C, with addresses only inside the namespaces. */
const VETHS = [
  { ns: [NS_A, NS_B], dev: ['vmb-ab-a', 'vmb-ab-b'], ip: ['10.213.1.1', '10.213.1.2'] },
  { ns: [NS_B, NS_C], dev: ['vmb-bc-b', 'vmb-bc-c'], ip: ['10.213.2.2', '10.213.2.3'] },
] as const;
const B_TO_A = '10.213.1.2';
const B_TO_C = '10.213.2.2';
const C_ADDR = '10.213.2.3';
const YGG_PORT = 14540;
const TMP_PREFIX = 'vmesh-peers-';

function say(line: string): void {
  console.log(`  [peers] ${line}`);
}

/** Runs a command; throws with its output when it fails (unless `mayFail`). */
function sh(words: string[], mayFail = false): string {
  const r = spawnSync(words[0] as string, words.slice(1), { encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0 && !mayFail) {
    throw new Error(
      `${words.join(' ')} failed: ${(r.stderr || r.stdout || r.error?.message) ?? ''}`,
    );
  }
  return r.stdout ?? '';
}

function inNs(ns: string, words: string[], mayFail = false): string {
  return sh(['ip', 'netns', 'exec', ns, ...words], mayFail);
}

// ---- what this script made, and how it is removed ---------------------------------------

const children = new Set<ChildProcess>();
let tmp: string | undefined;

/** Removes every namespace, veth, process and temp folder of this bench (this run's or an earlier one's). */
function cleanup(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
  const existing = sh(['ip', 'netns', 'list'], true);
  for (const ns of NAMESPACES) {
    if (!new RegExp(`^${ns}(\\s|$)`, 'm').test(existing)) continue;
    // Processes left in our namespaces were started by this bench (an earlier run that died).
    for (const pid of sh(['ip', 'netns', 'pids', ns], true).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    sh(['ip', 'netns', 'del', ns], true);
  }
  // Deleting a namespace deletes its veths; a veth left in the root namespace is removed here.
  for (const pair of VETHS) {
    for (const dev of pair.dev) {
      if (sh(['ip', 'link', 'show', dev], true) !== '') sh(['ip', 'link', 'del', dev], true);
    }
  }
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
  for (const name of readdirSync(tmpdir())) {
    if (name.startsWith(TMP_PREFIX)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

function build(): void {
  for (const ns of NAMESPACES) {
    sh(['ip', 'netns', 'add', ns]);
    inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  }
  for (const v of VETHS) {
    sh([
      'ip',
      'link',
      'add',
      v.dev[0],
      'netns',
      v.ns[0],
      'type',
      'veth',
      'peer',
      'name',
      v.dev[1],
      'netns',
      v.ns[1],
    ]);
    for (const i of [0, 1] as const) {
      inNs(v.ns[i], ['ip', 'addr', 'add', `${v.ip[i]}/24`, 'dev', v.dev[i]]);
      inNs(v.ns[i], ['ip', 'link', 'set', v.dev[i], 'up']);
    }
  }
  // The kernel baseline: B forwards between A and C.
  inNs(NS_B, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  inNs(NS_A, ['ip', 'route', 'add', '10.213.2.0/24', 'via', B_TO_A]);
  inNs(NS_C, ['ip', 'route', 'add', '10.213.1.0/24', 'via', B_TO_C]);
}

/** Starts a long-running process in a namespace; resolves with its first JSON line if `ready`. */
async function startIn(
  ns: string,
  words: string[],
  ready: boolean,
): Promise<{ child: ChildProcess; info: Record<string, unknown>; output: () => string }> {
  const child = spawn('ip', ['netns', 'exec', ns, ...words], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  trackChild(child);
  let out = '';
  let stdout = '';
  child.stderr?.on('data', (c: Buffer) => {
    out = (out + c.toString('utf8')).slice(-50_000);
  });
  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${words[0]} in ${ns}: no ready line`)), 20000);
    child.stdout?.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      out = (out + text).slice(-50_000);
      if (!ready) return;
      stdout += text;
      for (const line of stdout.slice(0, stdout.lastIndexOf('\n') + 1).split('\n')) {
        if (!line.startsWith('{')) continue;
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
        return;
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${words[0]} in ${ns} exited (${code}):\n${out.slice(-1500)}`));
    });
    if (!ready) {
      clearTimeout(timer);
      resolve({});
    }
  });
  return { child, info, output: () => out };
}

/** Runs bench/proc/client.ts in namespace A and returns its JSON result (killed after `timeoutMs`). */
async function clientInA(args: string[], timeoutMs: number): Promise<Record<string, unknown>> {
  const child = spawn('ip', ['netns', 'exec', NS_A, ...helperCommand('client.ts', args)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  trackChild(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-5000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await new Promise<void>((resolve) => {
    child.once('error', () => resolve());
    child.once('exit', () => resolve());
  });
  clearTimeout(timer);
  children.delete(child);
  const line = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .at(-1);
  if (line === undefined) throw new Error(`client ${args.join(' ')} failed: ${stderr}`);
  return JSON.parse(line) as Record<string, unknown>;
}

interface Figures {
  bulkMbPerS: number | null;
  bulkRuns: Record<string, unknown>[];
  rttP50Us: number | null;
  rttP99Us: number | null;
  error?: string;
}

async function measureFromA(
  host: string,
  ports: { echo: number; count: number },
  p: {
    bulkBytes: number;
    rounds: number;
    bulkBoundMs: number;
    rttCount: number;
    rttBoundMs: number;
  },
): Promise<Figures> {
  const runs: Record<string, unknown>[] = [];
  for (let r = 0; r < p.rounds; r++) {
    runs.push(
      await clientInA(
        ['bulk', host, String(ports.count), String(p.bulkBytes), String(p.bulkBoundMs)],
        p.bulkBoundMs + 90_000,
      ),
    );
  }
  const rtt = await clientInA(
    ['rtt', host, String(ports.echo), String(p.rttCount), String(p.rttBoundMs)],
    p.rttBoundMs + 30_000,
  );
  const ok = runs.map((r) => r.mbPerS).filter((x): x is number => typeof x === 'number');
  const us = (rtt.us as number[] | undefined) ?? [];
  const f: Figures = {
    bulkMbPerS: round(median(ok), 2),
    bulkRuns: runs,
    rttP50Us: round(percentile(us, 50), 1),
    rttP99Us: round(percentile(us, 99), 1),
  };
  const err = runs.find((r) => r.error !== undefined)?.error ?? rtt.error;
  if (typeof err === 'string') f.error = err;
  return f;
}

function yggConfig(dir: string, name: string, listen: string[], peers: string[]): string {
  const generated = JSON.parse(sh(['yggdrasil', '-genconf', '-json'])) as Record<string, unknown>;
  const config = {
    ...generated,
    Listen: listen,
    Peers: peers,
    AdminListen: 'none',
    MulticastInterfaces: [],
    IfName: 'vmbygg',
    NodeInfoPrivacy: true,
  };
  const file = join(dir, `${name}.conf`);
  // The config holds the node's private key: readable by root only, removed at cleanup.
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

function parse(argv: string[]): BenchOptions {
  const options: BenchOptions = { quick: false, build: 'dist', protocol: 'link-state' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') options.quick = true;
    else if (a === '--source') options.build = 'source';
    else if (a === '--bulk-mb') options.bulkBytes = Math.round(Number(argv[++i]) * 2 ** 20);
    else if (a === '--protocol') {
      const v = argv[++i] ?? 'policy';
      if (v === 'policy') delete options.protocol;
      else options.protocol = v;
    } else {
      console.error(
        'usage: node --import tsx bench/peers.ts [--quick] [--source] [--bulk-mb N] [--protocol NAME|policy]',
      );
      process.exit(2);
    }
  }
  if (options.bulkBytes !== undefined && !(options.bulkBytes > 0)) {
    console.error('peers: --bulk-mb needs a positive number');
    process.exit(2);
  }
  return options;
}

async function main(): Promise<number> {
  const options = parse(process.argv.slice(2));
  if (process.getuid?.() !== 0) {
    console.error(
      'peers: needs root (it builds network namespaces and veth pairs): run it as root, e.g. sudo node --import tsx bench/peers.ts',
    );
    return 2;
  }
  if (spawnSync('sh', ['-c', 'command -v yggdrasil'], { encoding: 'utf8' }).status !== 0) {
    console.error(
      'peers: the Debian yggdrasil package is missing: install it with `apt-get install -y yggdrasil` (as root)',
    );
    return 2;
  }
  if (spawnSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).status !== 0) {
    console.error('peers: the `ip` command (iproute2) is missing: apt-get install -y iproute2');
    return 2;
  }
  const context = runContext(options);
  const p = datapathParams(options);
  const vmesh = await loadVmesh(options.build);
  const yggVersion = sh(['dpkg-query', '-W', '-f=${Version}', 'yggdrasil'], true).trim();

  onInterrupt(cleanup);
  say('removing leftovers of earlier runs');
  cleanup();
  let ns: { kernel: Figures; nodeRelay: Figures; yggdrasil: Figures } | undefined;
  let yggError: string | undefined;
  try {
    say('building namespaces vmbench-a, -b, -c with veth pairs A–B and B–C');
    build();
    tmp = mkdtempSync(join(tmpdir(), TMP_PREFIX));
    const sink = await startIn(NS_C, helperCommand('sink.ts', ['--host', '::']), true);
    const ports = { echo: sink.info.echo as number, count: sink.info.count as number };
    const reach = await clientInA(['wait', C_ADDR, String(ports.echo), '10000'], 30000);
    if (reach.ok !== true) throw new Error(`A cannot reach the sink in C: ${String(reach.error)}`);
    say('baseline: TCP forwarded by B’s kernel');
    const kernel = await measureFromA(C_ADDR, ports, p);
    say('baseline: a plain Node relay process in B');
    const relay = await startIn(
      NS_B,
      helperCommand('relay.ts', [
        '--host',
        B_TO_A,
        `${C_ADDR}:${ports.echo}`,
        `${C_ADDR}:${ports.count}`,
      ]),
      true,
    );
    const [relayEcho, relayCount] = relay.info.ports as [number, number];
    const nodeRelay = await measureFromA(B_TO_A, { echo: relayEcho, count: relayCount }, p);

    say(`yggdrasil ${yggVersion} in each namespace (A and C peer with B)`);
    const dir = tmp;
    const confA = yggConfig(dir, 'a', [], [`tcp://${B_TO_A}:${YGG_PORT}`]);
    const confB = yggConfig(
      dir,
      'b',
      [`tcp://${B_TO_A}:${YGG_PORT}`, `tcp://${B_TO_C}:${YGG_PORT}`],
      [],
    );
    const confC = yggConfig(dir, 'c', [], [`tcp://${B_TO_C}:${YGG_PORT}`]);
    const cAddress = sh(['yggdrasil', '-useconffile', confC, '-address']).trim();
    // Logs go to files (the measurements block this process's event loop: no pipes to fill).
    for (const [space, conf, log] of [
      [NS_B, confB, 'b.log'],
      [NS_A, confA, 'a.log'],
      [NS_C, confC, 'c.log'],
    ] as const) {
      await startIn(space, ['yggdrasil', '-useconffile', conf, '-logto', join(dir, log)], false);
    }
    const yggReach = await clientInA(['wait', cAddress, String(ports.echo), '45000'], 60000);
    let yggdrasil: Figures;
    if (yggReach.ok === true) {
      say(`yggdrasil: A reaches C at ${cAddress} after ${String(yggReach.tries)} tries`);
      yggdrasil = await measureFromA(cAddress, ports, p);
    } else {
      yggError = `A could not reach C over yggdrasil within 45 s: ${String(yggReach.error)}`;
      yggdrasil = {
        bulkMbPerS: null,
        bulkRuns: [],
        rttP50Us: null,
        rttP99Us: null,
        error: yggError,
      };
    }
    ns = { kernel, nodeRelay, yggdrasil };
  } finally {
    say('removing the namespaces, veths, processes and temp files');
    cleanup();
  }

  say('vmesh through 1 relay on 127.0.0.1, beside its plain chain (as bench datapath)');
  const sink = await startSink();
  let vm: PathResult | undefined;
  try {
    vm = await measurePath(vmesh, sink, 1, p, say, options.protocol);
  } finally {
    await sink.helper.stop();
  }

  const rows: string[][] = [
    [
      'bulk A→C over yggdrasil, MB/s',
      fmt(ns.yggdrasil.bulkMbPerS),
      `${fmt(ns.kernel.bulkMbPerS)} (kernel)`,
      fmt(ratio(ns.yggdrasil.bulkMbPerS, ns.kernel.bulkMbPerS), 2),
    ],
    [
      'bulk A→C over yggdrasil, MB/s',
      fmt(ns.yggdrasil.bulkMbPerS),
      `${fmt(ns.nodeRelay.bulkMbPerS)} (Node relay in B)`,
      fmt(ratio(ns.yggdrasil.bulkMbPerS, ns.nodeRelay.bulkMbPerS), 2),
    ],
    [
      'round trip A→C over yggdrasil, p50 µs',
      fmt(ns.yggdrasil.rttP50Us, 0),
      `${fmt(ns.kernel.rttP50Us, 0)} (kernel)`,
      fmt(ratio(ns.yggdrasil.rttP50Us, ns.kernel.rttP50Us), 2),
    ],
    [
      'bulk vmesh A–R1–D (127.0.0.1), MB/s',
      fmt(vm.bulk.vmesh.mbPerS),
      `${fmt(vm.bulk.baseline.mbPerS)} (chain of 3)`,
      fmt(vm.bulk.ratio, 2),
    ],
    [
      'round trip vmesh A–R1–D, p50 µs',
      fmt(vm.rtt.vmesh.p50Us, 0),
      `${fmt(vm.rtt.baseline.p50Us, 0)} (chain of 3)`,
      fmt(vm.rtt.ratioP50, 2),
    ],
    [
      'bulk: vmesh 1 relay vs yggdrasil 1 relay',
      fmt(vm.bulk.vmesh.mbPerS),
      `${fmt(ns.yggdrasil.bulkMbPerS)} (yggdrasil)`,
      fmt(ratio(vm.bulk.vmesh.mbPerS, ns.yggdrasil.bulkMbPerS), 2),
    ],
  ];
  printTable(
    `peers: yggdrasil ${yggVersion} in namespaces A–B–C beside vmesh through 1 relay (build: ${options.build})`,
    [
      { title: 'figure', right: false },
      { title: 'value' },
      { title: 'baseline' },
      { title: 'value/baseline' },
    ],
    rows,
  );
  if (yggError !== undefined) console.log(`  note: ${yggError}`);
  const result = {
    bench: 'peers',
    ...context,
    yggdrasilVersion: yggVersion,
    params: p,
    namespaces: ns,
    vmesh: vm,
    vmeshVsYggdrasilBulk: round(ratio(vm.bulk.vmesh.mbPerS, ns.yggdrasil.bulkMbPerS), 3),
  };
  console.log(`written: ${writeResult('peers', result)}`);
  return yggError === undefined ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`peers failed: ${(err as Error).message}`);
  cleanup();
}
process.exit(code);
