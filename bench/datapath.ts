/**
 * Bench `datapath`: one connection through 1 and through 2 relays, devices
 * as separate processes on 127.0.0.1 (lines A–R1–D and A–R1–R2–D; every link
 * and every connection secured, as always), beside a plain Node.js TCP relay
 * chain with as many relay processes (3 and 4), measured in the same run with
 * the same app (this process) and the same sink (bench/proc/sink.ts):
 *
 * - bulk: one-way transfer to the sink's count service, MB/s (10^6 B/s);
 *   rounds alternate baseline and vmesh, the median round is reported;
 * - round trip: 32-byte messages on one connection to the echo service,
 *   p50 and p99 over N;
 * - setup: dial request (connect()) to the first echoed byte, median over N
 *   connections, each closed before the next;
 * - per relay: the round trip added by one more relay (2 relays − 1 relay)
 *   beside the plain chain's per-hop cost (4 relays − 3 relays); each from
 *   the two paths running side by side, measured in interleaved blocks, so
 *   that both see the same load.
 *
 * Prints a table and writes bench/results/datapath.json.
 */
import { rmSync } from 'node:fs';
import { startChain } from './lib/chain.ts';
import type { Chain } from './lib/chain.ts';
import { startLine, startSink, vmeshDial } from './lib/devices.ts';
import type { Opened, Testbed } from './lib/devices.ts';
import type { BulkResult, Dial, RoundTripResult, SetupResult } from './lib/measure.ts';
import {
  bulkOneWay,
  closeStream,
  openChecked,
  roundTrips,
  setupTimes,
  tcpDial,
} from './lib/measure.ts';
import { cpuSeconds } from './lib/procs.ts';
import type { BenchOptions } from './lib/report.ts';
import { fmt, printTable, runContext, writeResult } from './lib/report.ts';
import { median, percentile, ratio, round } from './lib/stats.ts';
import type { Vmesh } from './lib/vmesh.ts';
import { loadVmesh } from './lib/vmesh.ts';

export const name = 'datapath';
export const description =
  'one connection through 1 and 2 relays (bulk, 32-byte round trip, setup) vs a plain Node TCP relay chain';

export interface DatapathParams {
  bulkBytes: number;
  rounds: number;
  rttCount: number;
  setupCount: number;
  bulkBoundMs: number;
  rttBoundMs: number;
  setupBoundMs: number;
}

/** Sizes, counts and time bounds for quick or moderate runs. */
export function datapathParams(options: BenchOptions): DatapathParams {
  const base: DatapathParams = options.quick
    ? {
        bulkBytes: 8 * 2 ** 20,
        rounds: 1,
        rttCount: 100,
        setupCount: 5,
        bulkBoundMs: 8000,
        rttBoundMs: 5000,
        setupBoundMs: 10000,
      }
    : {
        bulkBytes: 64 * 2 ** 20,
        rounds: 3,
        rttCount: 1000,
        setupCount: 30,
        bulkBoundMs: 30000,
        rttBoundMs: 20000,
        setupBoundMs: 60000,
      };
  if (options.bulkBytes !== undefined) base.bulkBytes = options.bulkBytes;
  return base;
}

/** Both sides of one figure. */
interface Pair<T> {
  vmesh: T;
  baseline: T;
}

interface BulkFigure {
  /** Median round, MB/s. */
  mbPerS: number | null;
  runs: BulkResult[];
  /** CPU seconds per GiB moved, per process (median over rounds): who pays for the bytes. */
  cpuSecondsPerGiB?: CpuPerGiB;
}

interface RttFigure {
  p50Us: number | null;
  p99Us: number | null;
  n: number;
  error?: string;
}

interface SetupFigure {
  medianMs: number | null;
  p99Ms: number | null;
  n: number;
  error?: string;
}

/** What the devices recorded about the setup connections. */
interface DeviceRecords {
  /** Median of the source device's own setupMs (request to the destination's accept). */
  deviceSetupMedianMs: number | null;
  /** VMs of those connections on every device: from the warm pool / cold, and spawn-to-ready. */
  vmsPooled: number | null;
  vmsCold: number | null;
  readyMsMedian: number | null;
  /** Forward path of one connection, by device name (from the source's trace). */
  forwardPath: string[];
  /**
   * When each device spawned its VM for a setup connection, ms after the
   * source device took the request (median; device clocks: one machine), the
   * setup then ends at `deviceSetupMedianMs`. Shows where setup time goes.
   */
  spawnAfterRequestMs?: Record<string, number | null>;
  /** Routing protocols of the measured vmesh connections: name -> connections. */
  protocols?: Record<string, number>;
  note?: string;
}

export interface PathResult {
  relays: number;
  devices: string[];
  bulk: Pair<BulkFigure> & { ratio: number | null };
  rtt: Pair<RttFigure> & { ratioP50: number | null; ratioP99: number | null };
  setup: Pair<SetupFigure> & { ratio: number | null };
  records: DeviceRecords;
  error?: string;
  /** The first attempt failed (testbed start or convergence) with this error; this is the second. */
  firstAttemptError?: string;
}

function bulkFigure(runs: BulkResult[]): BulkFigure {
  const ok = runs.map((r) => r.mbPerS).filter((x): x is number => x !== null);
  return { mbPerS: ok.length === 0 ? null : round(median(ok), 2), runs };
}

function rttFigure(r: RoundTripResult): RttFigure {
  const f: RttFigure = {
    p50Us: round(percentile(r.us, 50), 1),
    p99Us: round(percentile(r.us, 99), 1),
    n: r.us.length,
  };
  if (r.error !== undefined) f.error = r.error;
  return f;
}

function setupFigure(r: SetupResult): SetupFigure {
  const f: SetupFigure = {
    medianMs: round(median(r.ms), 2),
    p99Ms: round(percentile(r.ms, 99), 2),
    n: r.ms.length,
  };
  if (r.error !== undefined) f.error = r.error;
  return f;
}

/** Processes whose CPU time a bulk round records, by label. */
export type CpuWatch = Pair<Record<string, number>>;

/** CPU seconds per GiB moved, per process, of one bulk run. */
export type CpuPerGiB = Record<string, number | null>;

/**
 * Bulk rounds alternating which side goes first; returns both sides' runs
 * and, when `watch` names processes, each one's CPU seconds per GiB moved.
 */
export async function bulkRounds(
  dials: Pair<Dial>,
  p: Pick<DatapathParams, 'bulkBytes' | 'rounds' | 'bulkBoundMs'>,
  watch?: CpuWatch,
): Promise<Pair<BulkResult[]> & { cpu: Pair<CpuPerGiB[]> }> {
  const out = {
    vmesh: [] as BulkResult[],
    baseline: [] as BulkResult[],
    cpu: { vmesh: [] as CpuPerGiB[], baseline: [] as CpuPerGiB[] },
  };
  for (let r = 0; r < p.rounds; r++) {
    const order: (keyof Pair<Dial>)[] = r % 2 === 0 ? ['baseline', 'vmesh'] : ['vmesh', 'baseline'];
    for (const side of order) {
      const pids = Object.entries(watch?.[side] ?? {});
      const before = pids.map(([, pid]) => cpuSeconds(pid));
      const run = await bulkOneWay(dials[side], p.bulkBytes, p.bulkBoundMs);
      out[side].push(run);
      if (pids.length > 0) {
        const gib = run.bytes / 2 ** 30;
        out.cpu[side].push(
          Object.fromEntries(
            pids.map(([label, pid], i) => [
              label,
              gib > 0 ? round((cpuSeconds(pid) - (before[i] as number)) / gib, 2) : null,
            ]),
          ),
        );
      }
    }
  }
  return out;
}

/** Per process, the median over runs of CPU seconds per GiB. */
function medianCpu(runs: CpuPerGiB[]): CpuPerGiB {
  const labels = Object.keys(runs[0] ?? {});
  return Object.fromEntries(
    labels.map((l) => [
      l,
      round(median(runs.map((r) => r[l]).filter((x): x is number => typeof x === 'number')), 2),
    ]),
  );
}

/** One line of devices with `relays` relays beside a chain of as many plain relays. */
export async function measurePath(
  vmesh: Vmesh,
  sink: { echo: string; count: string; pid: number },
  relays: number,
  p: DatapathParams,
  say: (line: string) => void,
  protocol: string | undefined,
): Promise<PathResult> {
  say(
    `${relays} relay(s): starting ${relays + 2} devices and a chain of ${relays + 2} plain relays`,
  );
  const { testbed, names, dir } = await startLine(vmesh, relays, sink);
  let chain: Chain | undefined;
  try {
    chain = await startChain(names.length, [sink.echo, sink.count]);
    const control = testbed.device('A').control;
    const [chainEcho, chainCount] = chain.entry as [number, number];
    const opened: Opened[] = [];
    const setups: Opened[] = [];
    const dials = {
      echo: {
        vmesh: vmeshDial(vmesh, control, 'echo', protocol, opened),
        baseline: tcpDial('127.0.0.1', chainEcho),
      },
      count: {
        vmesh: vmeshDial(vmesh, control, 'count', protocol, opened),
        baseline: tcpDial('127.0.0.1', chainCount),
      },
      setup: vmeshDial(vmesh, control, 'echo', protocol, setups),
    };
    // Warm-up: one connection each way, so that neither side pays first-use costs.
    for (const d of [dials.echo.baseline, dials.echo.vmesh]) {
      try {
        await closeStream(await openChecked(d));
      } catch {
        // Reported by the measurements below.
      }
    }
    // Bulk warm-up (JIT, socket buffers, VM pools), not recorded.
    const warm = Math.min(4 * 2 ** 20, Math.ceil(p.bulkBytes / 4));
    await bulkRounds(dials.count, { bulkBytes: warm, rounds: 1, bulkBoundMs: p.bulkBoundMs });
    say(`${relays} relay(s): bulk, ${p.rounds} round(s) of ${p.bulkBytes / 2 ** 20} MiB each side`);
    const watch: CpuWatch = {
      vmesh: {
        ...Object.fromEntries(names.map((n) => [n, testbed.device(n).process.pid as number])),
        app: process.pid,
        sink: sink.pid,
      },
      baseline: {
        ...Object.fromEntries(chain.relays.map((r, i) => [`relay${i + 1}`, r.pid])),
        app: process.pid,
        sink: sink.pid,
      },
    };
    const bulk = await bulkRounds(dials.count, p, watch);
    say(`${relays} relay(s): ${p.rttCount} round trips each side`);
    const rttBase = await roundTrips(dials.echo.baseline, p.rttCount, 32, p.rttBoundMs);
    const rttVmesh = await roundTrips(dials.echo.vmesh, p.rttCount, 32, p.rttBoundMs);
    say(`${relays} relay(s): ${p.setupCount} connection setups each side`);
    const setupBase = await setupTimes(dials.echo.baseline, p.setupCount, p.setupBoundMs);
    const setupVmesh = await setupTimes(dials.setup, p.setupCount, p.setupBoundMs);
    const records = await readRecords(
      testbed,
      names,
      setups.map((o) => o.connection),
    );
    records.protocols = countProtocols([...opened, ...setups]);
    const bulkPair = {
      vmesh: { ...bulkFigure(bulk.vmesh), cpuSecondsPerGiB: medianCpu(bulk.cpu.vmesh) },
      baseline: { ...bulkFigure(bulk.baseline), cpuSecondsPerGiB: medianCpu(bulk.cpu.baseline) },
    };
    const rttPair = { vmesh: rttFigure(rttVmesh), baseline: rttFigure(rttBase) };
    const setupPair = { vmesh: setupFigure(setupVmesh), baseline: setupFigure(setupBase) };
    return {
      relays,
      devices: names,
      bulk: { ...bulkPair, ratio: round(ratio(bulkPair.vmesh.mbPerS, bulkPair.baseline.mbPerS)) },
      rtt: {
        ...rttPair,
        ratioP50: round(ratio(rttPair.vmesh.p50Us, rttPair.baseline.p50Us), 2),
        ratioP99: round(ratio(rttPair.vmesh.p99Us, rttPair.baseline.p99Us), 2),
      },
      setup: {
        ...setupPair,
        ratio: round(ratio(setupPair.vmesh.medianMs, setupPair.baseline.medianMs), 1),
      },
      records,
    };
  } finally {
    await chain?.stop();
    await testbed.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function countProtocols(opened: Opened[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of opened) out[o.protocol] = (out[o.protocol] ?? 0) + 1;
  return out;
}

/** Reads the devices' own records of the setup connections (best effort). */
async function readRecords(
  testbed: Testbed,
  names: string[],
  connections: string[],
): Promise<DeviceRecords> {
  const wanted = new Set(connections);
  const out: DeviceRecords = {
    deviceSetupMedianMs: null,
    vmsPooled: null,
    vmsCold: null,
    readyMsMedian: null,
    forwardPath: [],
  };
  try {
    const a = await testbed.status('A');
    const mine = a.vconns.filter((v) => wanted.has(v.connection));
    const setups = mine.map((v) => v.setupMs).filter((x): x is number => typeof x === 'number');
    out.deviceSetupMedianMs = round(median(setups), 1);
    out.forwardPath = ['A', ...(mine[0]?.forwardPathNames ?? [])];
    const ready: number[] = [];
    let pooled = 0;
    let cold = 0;
    let recorded = false;
    // Fields the testbed's DeviceStatus type leaves out, read as the device wrote them.
    const openedAt = new Map(
      mine.map((v) => [
        v.connection,
        Date.parse(String((v as unknown as Record<string, unknown>).openedAt)),
      ]),
    );
    const spawnOffsets: Record<string, number[]> = {};
    for (const n of names) {
      const s = await testbed.status(n);
      for (const vm of s.vms as unknown as (Record<string, unknown> & {
        connection: string;
        spawnedAt: string;
      })[]) {
        if (!wanted.has(vm.connection)) continue;
        const t0 = openedAt.get(vm.connection);
        if (t0 !== undefined) (spawnOffsets[n] ??= []).push(Date.parse(vm.spawnedAt) - t0);
        if (typeof vm.pooled === 'boolean') {
          recorded = true;
          if (vm.pooled) pooled++;
          else cold++;
        }
        if (typeof vm.readyMs === 'number') ready.push(vm.readyMs);
      }
    }
    if (recorded) {
      out.vmsPooled = pooled;
      out.vmsCold = cold;
    } else {
      out.note = "this build's VM records say nothing of a warm pool (no `pooled` field)";
    }
    out.readyMsMedian = round(median(ready), 2);
    out.spawnAfterRequestMs = Object.fromEntries(
      names.map((n) => [n, round(median(spawnOffsets[n] ?? []), 1)]),
    );
  } catch (err) {
    out.note = `could not read the devices' records: ${(err as Error).message}`;
  }
  return out;
}

/**
 * vmesh's per-relay round trip: lines A–R1–D and A–R1–R2–D running side by
 * side (two testbeds), measured in 5 interleaved blocks each; p50(2) − p50(1).
 */
async function vmeshPerRelay(
  vmesh: Vmesh,
  sink: { echo: string; count: string },
  count: number,
  boundMs: number,
  protocol: string | undefined,
): Promise<ChainHop> {
  const one = await startLine(vmesh, 1, sink);
  try {
    const two = await startLine(vmesh, 2, sink);
    try {
      const dials = {
        short: vmeshDial(vmesh, one.testbed.device('A').control, 'echo', protocol),
        long: vmeshDial(vmesh, two.testbed.device('A').control, 'echo', protocol),
      };
      return await interleavedHop(dials, count, boundMs);
    } finally {
      await two.testbed.stop();
      rmSync(two.dir, { recursive: true, force: true });
    }
  } finally {
    await one.testbed.stop();
    rmSync(one.dir, { recursive: true, force: true });
  }
}

/** Round trips on a shorter and a longer path in 5 interleaved blocks; the p50 difference. */
async function interleavedHop(
  dials: { short: Dial; long: Dial },
  count: number,
  boundMs: number,
): Promise<ChainHop> {
  const samples = { short: [] as number[], long: [] as number[] };
  const blocks = 5;
  const per = Math.max(10, Math.ceil(count / blocks));
  let error: string | undefined;
  for (let b = 0; b < blocks; b++) {
    for (const side of ['short', 'long'] as const) {
      const r = await roundTrips(dials[side], per, 32, boundMs / blocks / 2);
      samples[side].push(...r.us);
      error ??= r.error;
    }
  }
  const s = percentile(samples.short, 50);
  const l = percentile(samples.long, 50);
  const out: ChainHop = {
    shortP50Us: round(s, 1),
    longP50Us: round(l, 1),
    perHopUs: round(l - s, 1),
    n: Math.min(samples.short.length, samples.long.length),
  };
  if (error !== undefined) out.error = error;
  return out;
}

interface ChainHop {
  /** Round trip p50 through chains of 3 and 4 relays, µs, and the difference. */
  shortP50Us: number | null;
  longP50Us: number | null;
  perHopUs: number | null;
  n: number;
  error?: string;
}

/**
 * The plain chain's per-hop round trip: chains of 3 and 4 relays running side
 * by side, measured in 5 interleaved blocks each (so that both see the same
 * load); p50(4) − p50(3).
 */
async function chainPerHop(echo: string, count: number, boundMs: number): Promise<ChainHop> {
  const short = await startChain(3, [echo]);
  try {
    const long = await startChain(4, [echo]);
    try {
      return await interleavedHop(
        {
          short: tcpDial('127.0.0.1', short.entry[0] as number),
          long: tcpDial('127.0.0.1', long.entry[0] as number),
        },
        count,
        boundMs,
      );
    } finally {
      await long.stop();
    }
  } finally {
    await short.stop();
  }
}

/** Runs the bench: prints its table, writes bench/results/datapath.json, returns the result. */
export async function run(options: BenchOptions): Promise<Record<string, unknown>> {
  const context = runContext(options);
  const p = datapathParams(options);
  const vmesh = await loadVmesh(options.build);
  const t0 = performance.now();
  const say = (line: string): void =>
    console.log(`  [datapath +${((performance.now() - t0) / 1000).toFixed(1)} s] ${line}`);
  const sink = await startSink();
  const paths: PathResult[] = [];
  let direct: { bulk: BulkFigure; rtt: RttFigure; setup: SetupFigure } | undefined;
  let chainHopFigure: ChainHop | undefined;
  let vmeshHopFigure: ChainHop | undefined;
  try {
    for (const relays of [1, 2]) {
      // A testbed that fails to start or converge is tried once more (and the failure kept).
      let firstFailure: string | undefined;
      for (let attempt = 1; attempt <= 2; attempt++) {
        try {
          const path = await measurePath(vmesh, sink, relays, p, say, options.protocol);
          if (firstFailure !== undefined) path.firstAttemptError = firstFailure;
          paths.push(path);
          break;
        } catch (err) {
          const message = (err as Error).message;
          say(`${relays} relay(s), attempt ${attempt}, failed: ${message}`);
          if (attempt === 2) paths.push({ relays, error: message } as PathResult);
          firstFailure = message;
        }
      }
    }
    say('per relay: lines of 1 and 2 relays side by side, round trips interleaved');
    try {
      vmeshHopFigure = await vmeshPerRelay(vmesh, sink, p.rttCount, p.rttBoundMs, options.protocol);
    } catch (err) {
      say(`per relay (vmesh) failed: ${(err as Error).message}`);
    }
    say('per relay: plain chains of 3 and 4 relays side by side, round trips interleaved');
    chainHopFigure = await chainPerHop(sink.echo, p.rttCount, p.rttBoundMs);
    say('direct (app to sink, no relay): the reference');
    const echo = tcpDial('127.0.0.1', sink.helper.info.echo as number);
    const count = tcpDial('127.0.0.1', sink.helper.info.count as number);
    const runs: BulkResult[] = [];
    for (let r = 0; r < p.rounds; r++)
      runs.push(await bulkOneWay(count, p.bulkBytes, p.bulkBoundMs));
    direct = {
      bulk: bulkFigure(runs),
      rtt: rttFigure(await roundTrips(echo, p.rttCount, 32, p.rttBoundMs)),
      setup: setupFigure(await setupTimes(echo, p.setupCount, p.setupBoundMs)),
    };
  } finally {
    await sink.helper.stop();
  }

  const one = paths.find((x) => x.relays === 1 && x.error === undefined);
  const two = paths.find((x) => x.relays === 2 && x.error === undefined);
  const diff = (a: number | null | undefined, b: number | null | undefined): number | null =>
    a === null || a === undefined || b === null || b === undefined ? null : a - b;
  // Both from paths measured side by side in interleaved blocks (the two separate runs'
  // difference is kept in the JSON as `separateRuns`).
  const vmeshAdded = vmeshHopFigure?.perHopUs ?? null;
  // The chain's per-hop cost is small beside the noise between the two paths' windows:
  // taken from the interleaved measurement of chains of 3 and 4 relays.
  const chainHop = chainHopFigure?.perHopUs ?? null;
  const perRelay = {
    vmeshAddedRttP50Us: round(vmeshAdded, 1),
    chainPerHopRttP50Us: round(chainHop, 1),
    vmeshInterleaved: vmeshHopFigure ?? null,
    chainInterleaved: chainHopFigure ?? null,
    separateRuns: {
      vmeshAddedRttP50Us: round(diff(two?.rtt.vmesh.p50Us, one?.rtt.vmesh.p50Us), 1),
      chainPerHopRttP50Us: round(diff(two?.rtt.baseline.p50Us, one?.rtt.baseline.p50Us), 1),
    },
    // A negative difference is noise (the longer path measured faster): no ratio then.
    ratio:
      vmeshAdded !== null && chainHop !== null && vmeshAdded > 0 && chainHop > 0
        ? round(ratio(vmeshAdded, chainHop), 2)
        : null,
  };

  const rows: string[][] = [];
  for (const x of paths) {
    const label = `${x.relays} relay${x.relays === 1 ? '' : 's'}`;
    if (x.error !== undefined) {
      rows.push([label, 'FAILED (see below)', '—', '—', '—']);
      continue;
    }
    const err = (e: string | undefined): string => (e === undefined ? '' : ` (${e})`);
    const bulkErr = x.bulk.vmesh.runs.find((r) => r.error !== undefined)?.error;
    rows.push([
      label,
      'bulk MB/s',
      fmt(x.bulk.vmesh.mbPerS) + err(bulkErr),
      fmt(x.bulk.baseline.mbPerS),
      fmt(x.bulk.ratio, 2),
    ]);
    rows.push([
      label,
      'round trip p50 µs',
      fmt(x.rtt.vmesh.p50Us, 0) + err(x.rtt.vmesh.error),
      fmt(x.rtt.baseline.p50Us, 0),
      fmt(x.rtt.ratioP50, 2),
    ]);
    rows.push([
      label,
      'round trip p99 µs',
      fmt(x.rtt.vmesh.p99Us, 0),
      fmt(x.rtt.baseline.p99Us, 0),
      fmt(x.rtt.ratioP99, 2),
    ]);
    rows.push([
      label,
      'setup median ms',
      fmt(x.setup.vmesh.medianMs, 2) + err(x.setup.vmesh.error),
      fmt(x.setup.baseline.medianMs, 2),
      fmt(x.setup.ratio, 1),
    ]);
  }
  rows.push([
    'per relay',
    'added round trip p50 µs',
    fmt(perRelay.vmeshAddedRttP50Us, 0),
    fmt(perRelay.chainPerHopRttP50Us, 0),
    fmt(perRelay.ratio, 2),
  ]);
  if (direct !== undefined) {
    rows.push(['direct', 'bulk MB/s (no relay)', '', fmt(direct.bulk.mbPerS), '']);
    rows.push(['direct', 'round trip p50 µs', '', fmt(direct.rtt.p50Us, 0), '']);
    rows.push(['direct', 'setup median ms', '', fmt(direct.setup.medianMs, 2), '']);
  }
  printTable(
    `datapath: one connection, devices as processes on 127.0.0.1 (build: ${options.build}); baseline: plain Node TCP relay chain with as many processes`,
    [
      { title: 'path', right: false },
      { title: 'figure', right: false },
      { title: 'vmesh' },
      { title: 'baseline' },
      { title: 'vmesh/baseline' },
    ],
    rows,
  );
  for (const x of paths) {
    if (x.error !== undefined) {
      console.log(`  ${x.relays} relay(s) FAILED twice: ${x.error}`);
      continue;
    }
    if (x.firstAttemptError !== undefined) {
      console.log(`  ${x.relays} relay(s): the first attempt failed: ${x.firstAttemptError}`);
    }
    const r = x.records;
    const cpu = (c: CpuPerGiB | undefined): string =>
      Object.entries(c ?? {})
        .map(([k, v]) => `${k} ${fmt(v, 1)}`)
        .join(', ');
    console.log(
      `  ${x.relays} relay(s): CPU-s per GiB during bulk: vmesh ${cpu(x.bulk.vmesh.cpuSecondsPerGiB)}; baseline ${cpu(x.bulk.baseline.cpuSecondsPerGiB)}`,
    );
    console.log(
      `  ${x.relays} relay(s): path ${r.forwardPath.join('→')}; protocols ${JSON.stringify(r.protocols ?? {})}; device-recorded setup median ${fmt(r.deviceSetupMedianMs, 1)} ms; ` +
        `VMs of the setup connections: ${r.vmsPooled ?? '?'} from the warm pool, ${r.vmsCold ?? '?'} cold, spawn-to-ready median ${fmt(r.readyMsMedian, 1)} ms; ` +
        `VM spawned after the request (ms): ${Object.entries(r.spawnAfterRequestMs ?? {})
          .map(([d, ms]) => `${d} ${fmt(ms, 0)}`)
          .join(', ')}, open at ${fmt(r.deviceSetupMedianMs, 0)}` +
        (r.note === undefined ? '' : ` (${r.note})`),
    );
  }
  const result = {
    bench: name,
    ...context,
    params: p,
    paths,
    perRelay,
    direct,
  };
  console.log(`written: ${writeResult(name, result)}`);
  return result;
}
