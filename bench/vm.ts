/**
 * Bench `vm`: the VMs of a line A–R1–D of devices as processes on 127.0.0.1,
 * read from the devices' own records where they have them:
 *
 * - spawn time: `readyMs` (spawn() to the VM's ready) of VMs that came from
 *   the warm pool (`pooled`) and of cold ones, from the devices' VM records:
 *   connections opened one by one (the pool keeps up), then in a burst
 *   larger than the pool (cold spawns on a busy machine), and one by one on
 *   a second line with the pool off (`limits.vmPool: 0`: cold spawns alone).
 *   Without those record fields the spawn figures are reported as not
 *   recorded. Baseline: a bare Worker's spawn to its first message
 *   (bench/proc/workers.ts, a process of its own).
 * - idle memory per VM: RSS of each device process with N idle connections
 *   open minus with none, divided by its live VMs. Baselines: a bare idle
 *   Worker's RSS, and a plain Node relay process's RSS per idle connection.
 * - concurrent connections through one relay device: opened in parallel
 *   batches until the first failure or a bound (count, time, free memory);
 *   how many succeeded and the first error. Baseline: the plain chain.
 *
 * The devices run with `vm.relayIdleMs` raised to 10 minutes so that relay
 * VMs of idle connections do not end while the bench still counts them
 * (every other setting is the default: `limits.maxVms` 256, the default pool).
 * Prints a table and writes bench/results/vm.json.
 */
import { rmSync } from 'node:fs';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import { startChain } from './lib/chain.ts';
import type { Dial } from './lib/measure.ts';
import { closeStream, codeOf, openChecked, setupTimes, tcpDial } from './lib/measure.ts';
import { memAvailableMb, rssMb, runHelper, sleep } from './lib/procs.ts';
import type { BenchOptions } from './lib/report.ts';
import { fmt, printTable, runContext, writeResult } from './lib/report.ts';
import { median, percentile, ratio, round } from './lib/stats.ts';
import { startLine, startSink, vmeshDial } from './lib/devices.ts';
import type { Opened, Sink, Testbed } from './lib/devices.ts';
import type { Vmesh } from './lib/vmesh.ts';
import { loadVmesh } from './lib/vmesh.ts';

export const name = 'vm';

interface Params {
  /** Bare Workers in the baseline process. */
  workers: number;
  /** Connections opened one by one (warm pool spawns). */
  warmSpawns: number;
  /** Connections opened at once (more than the pool holds: cold spawns under load). */
  burst: number;
  /** Connections opened one by one with the pool off (`limits.vmPool: 0`): cold spawns alone. */
  coldSpawns: number;
  /** Idle connections held for the memory figure. */
  idleConns: number;
  /** Connections opened in parallel per batch. */
  parallel: number;
  /** Bound on concurrent connections. */
  maxBound: number;
  /** Time bound on opening them, ms. */
  maxTimeMs: number;
  /** Stop opening when the machine has less memory available than this, MiB. */
  memFloorMb: number;
  /** Wait after opening before reading RSS, ms. */
  settleMs: number;
  /** Wait for the warm pools to fill, ms. */
  poolFillMs: number;
}

function params(options: BenchOptions): Params {
  const memFloorMb = Math.max(3072, (os.totalmem() / 2 ** 20) * 0.15);
  return options.quick
    ? {
        workers: 5,
        warmSpawns: 3,
        burst: 6,
        coldSpawns: 3,
        idleConns: 8,
        parallel: 4,
        maxBound: 24,
        maxTimeMs: 8000,
        memFloorMb,
        settleMs: 800,
        poolFillMs: 500,
      }
    : {
        workers: 20,
        warmSpawns: 20,
        burst: 12,
        coldSpawns: 10,
        idleConns: 50,
        parallel: 8,
        maxBound: 1200,
        maxTimeMs: 120_000,
        memFloorMb,
        settleMs: 1500,
        poolFillMs: 1000,
      };
}

const DEVICES = ['A', 'R1', 'D'] as const;
const ROLE_OF: Record<string, string> = { A: 'source', R1: 'relay', D: 'destination' };

/** Median of three RSS samples 200 ms apart, MiB. */
async function steadyRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(200);
    samples.push(rssMb(pid));
  }
  return median(samples);
}

async function liveVms(testbed: Testbed, device: string): Promise<number> {
  const s = await testbed.status(device);
  return s.vms.filter((v) => v.endedAt === undefined).length;
}

/** Waits (bounded) until no device has a live VM. */
async function drained(testbed: Testbed, ms: number): Promise<boolean> {
  const stopAt = Date.now() + ms;
  while (Date.now() < stopAt) {
    let live = 0;
    for (const d of DEVICES) live += await liveVms(testbed, d);
    if (live === 0) return true;
    await sleep(250);
  }
  return false;
}

interface OpenOutcome {
  held: Duplex[];
  succeeded: number;
  stoppedBy: 'count' | 'time' | 'memory' | 'error';
  firstError?: { code: string; message: string };
  seconds: number;
}

/**
 * Opens checked connections in parallel batches, appending to `held`, until
 * `held` holds `bound`, a failure, the time bound or the memory floor.
 */
async function openMany(
  dial: Dial,
  held: Duplex[],
  bound: number,
  parallel: number,
  timeMs: number,
  memFloorMb: number,
): Promise<OpenOutcome> {
  const t0 = performance.now();
  const stopAt = t0 + timeMs;
  let stoppedBy: OpenOutcome['stoppedBy'] = 'count';
  let firstError: OpenOutcome['firstError'];
  while (held.length < bound) {
    if (performance.now() > stopAt) {
      stoppedBy = 'time';
      break;
    }
    if (memAvailableMb() < memFloorMb) {
      stoppedBy = 'memory';
      break;
    }
    const n = Math.min(parallel, bound - held.length);
    const batch = await Promise.allSettled(Array.from({ length: n }, () => openChecked(dial)));
    for (const r of batch) {
      if (r.status === 'fulfilled') held.push(r.value);
      else if (firstError === undefined) {
        const e = r.reason as { message?: string };
        firstError = { code: codeOf(r.reason), message: String(e.message ?? r.reason) };
      }
    }
    if (firstError !== undefined) {
      stoppedBy = 'error';
      break;
    }
  }
  const out: OpenOutcome = {
    held,
    succeeded: held.length,
    stoppedBy,
    seconds: (performance.now() - t0) / 1000,
  };
  if (firstError !== undefined) out.firstError = firstError;
  return out;
}

async function closeAll(streams: Duplex[]): Promise<void> {
  for (let i = 0; i < streams.length; i += 64) {
    await Promise.all(streams.slice(i, i + 64).map((s) => closeStream(s, 3000)));
  }
}

interface SpawnFigure {
  n: number;
  medianMs: number | null;
  p99Ms: number | null;
}

function spawnFigure(ms: number[]): SpawnFigure {
  return { n: ms.length, medianMs: round(median(ms), 2), p99Ms: round(percentile(ms, 99), 2) };
}

/** Spawn-to-ready of the VMs of these connections on every device, split by pool / cold. */
async function spawnRecords(
  testbed: Testbed,
  connections: Set<string>,
): Promise<{
  recorded: boolean;
  warm: number[];
  cold: number[];
  byRole: Record<string, number[]>;
}> {
  const warm: number[] = [];
  const cold: number[] = [];
  const byRole: Record<string, number[]> = {};
  let recorded = false;
  for (const d of DEVICES) {
    const s = await testbed.status(d);
    for (const vm of s.vms as (Record<string, unknown> & { connection: string; role: string })[]) {
      if (!connections.has(vm.connection)) continue;
      if (typeof vm.pooled !== 'boolean' || typeof vm.readyMs !== 'number') continue;
      recorded = true;
      (vm.pooled ? warm : cold).push(vm.readyMs);
      (byRole[`${vm.role} ${vm.pooled ? 'pool' : 'cold'}`] ??= []).push(vm.readyMs);
    }
  }
  return { recorded, warm, cold, byRole };
}

/**
 * Cold spawns one at a time: a line with `limits.vmPool: 0` (no warm pool),
 * `count` connections opened one after the other; spawn-to-ready of all their VMs.
 */
async function coldOneByOne(
  vmesh: Vmesh,
  sink: Sink,
  count: number,
  protocol: string | undefined,
): Promise<{ ms: number[]; note?: string }> {
  let line;
  try {
    line = await startLine(vmesh, 1, sink, { limits: { vmPool: 0 } });
  } catch (err) {
    return {
      ms: [],
      note: `cold spawns one by one not measured: a line with limits.vmPool 0 did not start (${(err as Error).message.split('\n')[0]})`,
    };
  }
  try {
    const opened: Opened[] = [];
    const dial = vmeshDial(vmesh, line.testbed.device('A').control, 'echo', protocol, opened);
    const r = await setupTimes(dial, count, 60_000, 100);
    const records = await spawnRecords(line.testbed, new Set(opened.map((o) => o.connection)));
    const out: { ms: number[]; note?: string } = { ms: records.cold };
    if (r.error !== undefined) out.note = `cold spawns one by one: ${r.error}`;
    if (records.warm.length > 0) {
      out.ms = [];
      out.note = `cold spawns one by one not measured: with limits.vmPool 0, ${records.warm.length} of ${records.warm.length + records.cold.length} VMs still came from a warm pool (does the device pass limits.vmPool to its hypervisor?)`;
    }
    return out;
  } finally {
    await line.testbed.stop();
    rmSync(line.dir, { recursive: true, force: true });
  }
}

/** Runs the bench: prints its table, writes bench/results/vm.json, returns the result. */
export async function run(options: BenchOptions): Promise<Record<string, unknown>> {
  const context = runContext(options);
  const p = params(options);
  const t0 = performance.now();
  const say = (line: string): void =>
    console.log(`  [vm +${((performance.now() - t0) / 1000).toFixed(1)} s] ${line}`);
  const vmesh = await loadVmesh(options.build);

  say(`baseline: ${p.workers} bare Workers in a process of their own`);
  const bare = await runHelper('workers.ts', [String(p.workers)], { timeoutMs: 120_000 });
  const bareSpawn = spawnFigure(bare.spawnMs as number[]);
  const bareRssPerWorkerMb = round(
    ((bare.rssAfterMb as number) - (bare.rssBeforeMb as number)) / p.workers,
    2,
  );

  const sink = await startSink();
  const notes: string[] = [];
  const result: Record<string, unknown> = { bench: name, ...context, params: p };
  try {
    say(`cold spawns alone: A–R1–D with the warm pool off, ${p.coldSpawns} connections one by one`);
    const coldAlone = await coldOneByOne(vmesh, sink, p.coldSpawns, options.protocol).catch(
      (err: unknown) => ({ ms: [] as number[], note: `cold spawns one by one: ${codeOf(err)}` }),
    );
    if (coldAlone.note !== undefined) notes.push(coldAlone.note);

    say('starting A–R1–D (3 device processes) and a chain of 3 plain relays');
    const extra = { vm: { relayIdleMs: 600_000 } };
    const { testbed, dir } = await startLine(vmesh, 1, sink, extra);
    const chain = await startChain(3, [sink.echo]).catch(async (err: unknown) => {
      await testbed.stop();
      throw err;
    });
    try {
      const control = testbed.device('A').control;
      const pids = Object.fromEntries(
        DEVICES.map((d) => [d, testbed.device(d).process.pid as number]),
      );
      const chainDial = tcpDial('127.0.0.1', chain.entry[0] as number);
      await sleep(p.poolFillMs); // the warm pools fill

      // --- spawn times, from the devices' records -------------------------------------
      say(`spawn: ${p.warmSpawns} connections one by one, then a burst of ${p.burst} at once`);
      const spawnIds: Opened[] = [];
      const idDial = vmeshDial(vmesh, control, 'echo', options.protocol, spawnIds);
      const warmRun = await setupTimes(idDial, p.warmSpawns, 60_000, p.poolFillMs / 4);
      if (warmRun.error !== undefined) notes.push(`one-by-one connections: ${warmRun.error}`);
      const burst = await Promise.allSettled(
        Array.from({ length: p.burst }, () => openChecked(idDial)),
      );
      const burstHeld = burst.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const burstFailed = burst.find((r) => r.status === 'rejected');
      if (burstFailed !== undefined)
        notes.push(`burst: ${codeOf((burstFailed as PromiseRejectedResult).reason)}`);
      await closeAll(burstHeld);
      const spawn = await spawnRecords(testbed, new Set(spawnIds.map((o) => o.connection)));
      if (!spawn.recorded) {
        notes.push(
          "this build's VM records carry no `pooled` / `readyMs`: spawn times are not available from the devices (no warm pool figures)",
        );
      }
      if (!(await drained(testbed, 15_000))) notes.push('VMs were still live 15 s after closing');
      await sleep(p.poolFillMs); // the pools refill

      // --- idle memory, then on to the most concurrent connections ------------------------
      // The first `idleConns` connections give the memory figure; opening goes on (same
      // connections held) up to the bound for the concurrency figure.
      say(`memory: ${p.idleConns} idle connections through vmesh`);
      const rss0: Record<string, number> = {};
      for (const d of DEVICES) rss0[d] = await steadyRss(pids[d] as number);
      const vmeshHeld: Duplex[] = [];
      const tOpen = performance.now();
      const dial = vmeshDial(vmesh, control, 'echo', options.protocol);
      const idle = await openMany(
        dial,
        vmeshHeld,
        p.idleConns,
        p.parallel,
        p.maxTimeMs,
        p.memFloorMb,
      );
      await sleep(p.settleMs);
      const memory: Record<string, unknown>[] = [];
      for (const d of DEVICES) {
        const rss1 = await steadyRss(pids[d] as number);
        const live = await liveVms(testbed, d);
        memory.push({
          device: d,
          role: ROLE_OF[d],
          liveVms: live,
          rssNoneMb: round(rss0[d], 1),
          rssIdleMb: round(rss1, 1),
          perVmMb: round(live > 0 ? (rss1 - (rss0[d] as number)) / live : Number.NaN, 2),
        });
      }
      if (idle.firstError !== undefined)
        notes.push(`idle connections: ${idle.succeeded} opened, then ${idle.firstError.code}`);
      say(
        `concurrent connections through R1: on up to ${p.maxBound}, ${p.parallel} at a time, within ${p.maxTimeMs / 1000} s`,
      );
      const many =
        idle.firstError === undefined
          ? await openMany(
              dial,
              vmeshHeld,
              p.maxBound,
              p.parallel,
              Math.max(0, p.maxTimeMs - (performance.now() - tOpen)),
              p.memFloorMb,
            )
          : idle;
      many.seconds = (performance.now() - tOpen) / 1000;
      const relayLive = await liveVms(testbed, 'R1');
      const relayRss = rssMb(pids.R1 as number);
      const stillOpen = vmeshHeld.filter((s) => !s.destroyed).length;
      await closeAll(vmeshHeld);

      say(`the same through the chain: ${p.idleConns} idle, then on up to ${p.maxBound}`);
      const chainPids = chain.relays.map((r) => r.pid);
      const chainRss0 = await Promise.all(chainPids.map(steadyRss));
      const chainHeld: Duplex[] = [];
      const tChain = performance.now();
      const chainIdle = await openMany(
        chainDial,
        chainHeld,
        p.idleConns,
        p.parallel,
        p.maxTimeMs,
        p.memFloorMb,
      );
      await sleep(p.settleMs);
      const chainRss1 = await Promise.all(chainPids.map(steadyRss));
      const perConn = chainRss1.map(
        (r, i) => (r - (chainRss0[i] as number)) / Math.max(1, chainIdle.succeeded),
      );
      const plainPerConnMb = round(median(perConn), 4);
      const chainMany = await openMany(
        chainDial,
        chainHeld,
        p.maxBound,
        p.parallel,
        Math.max(0, p.maxTimeMs - (performance.now() - tChain)),
        p.memFloorMb,
      );
      chainMany.seconds = (performance.now() - tChain) / 1000;
      const chainStillOpen = chainHeld.filter((s) => !s.destroyed).length;
      await closeAll(chainHeld);
      say('reading the counters, stopping the devices');
      const counters = (await testbed.status('A')).counters;

      Object.assign(result, {
        spawn: {
          recorded: spawn.recorded,
          warmPool: spawnFigure(spawn.warm),
          cold: spawnFigure(spawn.cold),
          coldAlone: spawnFigure(coldAlone.ms),
          byRole: Object.fromEntries(
            Object.entries(spawn.byRole).map(([k, v]) => [k, spawnFigure(v)]),
          ),
          bareWorker: bareSpawn,
          ratioWarm: round(ratio(median(spawn.warm), bareSpawn.medianMs), 2),
          ratioCold: round(ratio(median(spawn.cold), bareSpawn.medianMs), 2),
          ratioColdAlone: round(ratio(median(coldAlone.ms), bareSpawn.medianMs), 2),
        },
        memory: {
          idleConnections: idle.succeeded,
          devices: memory,
          bareWorkerMb: bareRssPerWorkerMb,
          plainRelayPerConnectionMb: plainPerConnMb,
          chainConnections: chainIdle.succeeded,
        },
        concurrent: {
          bound: p.maxBound,
          vmesh: {
            succeeded: many.succeeded,
            stoppedBy: many.stoppedBy,
            firstError: many.firstError ?? null,
            seconds: round(many.seconds, 1),
            relayLiveVms: relayLive,
            relayRssMb: round(relayRss, 0),
            stillOpenAtEnd: stillOpen,
          },
          baseline: {
            succeeded: chainMany.succeeded,
            stoppedBy: chainMany.stoppedBy,
            firstError: chainMany.firstError ?? null,
            seconds: round(chainMany.seconds, 1),
            stillOpenAtEnd: chainStillOpen,
          },
          ratio: round(ratio(many.succeeded, chainMany.succeeded), 3),
        },
        counters: Object.fromEntries(Object.entries(counters).filter(([k]) => k.startsWith('vm.'))),
        notes,
      });
    } finally {
      await chain.stop();
      await testbed.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await sink.helper.stop();
  }
  print(result);
  console.log(`written: ${writeResult(name, result)}`);
  return result;
}

function print(r: Record<string, unknown>): void {
  const spawn = r.spawn as {
    recorded: boolean;
    warmPool: SpawnFigure;
    cold: SpawnFigure;
    coldAlone: SpawnFigure;
    bareWorker: SpawnFigure;
    ratioWarm: number | null;
    ratioCold: number | null;
    ratioColdAlone: number | null;
  };
  const memory = r.memory as {
    idleConnections: number;
    devices: { device: string; role: string; liveVms: number; perVmMb: number | null }[];
    bareWorkerMb: number | null;
    plainRelayPerConnectionMb: number | null;
  };
  const conc = r.concurrent as {
    bound: number;
    vmesh: {
      succeeded: number;
      stoppedBy: string;
      firstError: { code: string } | null;
      relayLiveVms: number;
    };
    baseline: { succeeded: number; stoppedBy: string; firstError: { code: string } | null };
    ratio: number | null;
  };
  const rows: string[][] = [];
  const spawnRow = (label: string, f: SpawnFigure, k: number | null): string[] => [
    label,
    spawn.recorded && f.n > 0 ? `${fmt(f.medianMs, 1)} (n=${f.n})` : 'not recorded',
    fmt(spawn.bareWorker.medianMs, 1),
    fmt(k, 2),
  ];
  rows.push(
    spawnRow('VM spawn→ready from the warm pool, median ms', spawn.warmPool, spawn.ratioWarm),
  );
  rows.push(
    spawnRow(
      'VM spawn→ready cold, one at a time, median ms',
      spawn.coldAlone,
      spawn.ratioColdAlone,
    ),
  );
  rows.push(
    spawnRow('VM spawn→ready cold, in a burst past the pool, ms', spawn.cold, spawn.ratioCold),
  );
  for (const d of memory.devices) {
    rows.push([
      `idle memory per VM on ${d.device} (${d.role}), MB`,
      `${fmt(d.perVmMb, 1)} (${d.liveVms} VMs)`,
      fmt(memory.bareWorkerMb, 1),
      fmt(ratio(d.perVmMb, memory.bareWorkerMb), 2),
    ]);
  }
  const relay = memory.devices.find((d) => d.device === 'R1');
  rows.push([
    'relay process per idle connection, MB',
    fmt(relay?.perVmMb, 2),
    fmt(memory.plainRelayPerConnectionMb, 3),
    fmt(ratio(relay?.perVmMb, memory.plainRelayPerConnectionMb), 0),
  ]);
  const stop = (x: { stoppedBy: string; firstError: { code: string } | null }): string =>
    x.firstError !== null ? x.firstError.code : `bound: ${x.stoppedBy}`;
  rows.push([
    `concurrent connections through R1 (bound ${conc.bound})`,
    `${conc.vmesh.succeeded} (${stop(conc.vmesh)})`,
    `${conc.baseline.succeeded} (${stop(conc.baseline)})`,
    fmt(conc.ratio, 2),
  ]);
  printTable(
    `vm: VMs of a line A–R1–D of device processes (build: ${String(r.build)}); baselines: bare Workers, the plain Node TCP relay chain`,
    [
      { title: 'figure', right: false },
      { title: 'vmesh' },
      { title: 'baseline' },
      { title: 'vmesh/baseline' },
    ],
    rows,
  );
  console.log(
    `  baselines: spawn and memory: a bare worker_threads Worker; relay per connection and concurrency: a plain Node relay process. R1 live VMs at the peak: ${conc.vmesh.relayLiveVms}`,
  );
  for (const n of r.notes as string[]) console.log(`  note: ${n}`);
}
