/**
 * Bench `failover`: how long one connection stalls when its relay dies.
 * Devices as processes on 127.0.0.1 in a diamond A–B–D, A–C–D (A and D not
 * linked); one connection from A to D's echo service carries a 32-byte
 * message every 10 ms (numbered, sent without waiting for the echoes); the
 * relay on its path is killed (SIGKILL); the outage is the longest gap
 * between two echoes arriving after the kill, and every message must come
 * back once, in order.
 *
 * Baseline, in the same run: the same sender over plain TCP through a plain
 * Node relay process, which redials through a second relay process as soon
 * as its connection drops (the app-level floor: what is in flight is lost).
 *
 * A SIGKILLed process on 127.0.0.1 closes its sockets at once, so both sides
 * learn of the death immediately; a relay that goes silent instead is only
 * declared dead after `link.deadAfterMs` (4 s by default).
 * Prints a table and writes bench/results/failover.json.
 */
import { rmSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { startChain } from './lib/chain.ts';
import type { Chain } from './lib/chain.ts';
import { codeOf, tcpDial } from './lib/measure.ts';
import type { Dial } from './lib/measure.ts';
import { sleep } from './lib/procs.ts';
import type { BenchOptions } from './lib/report.ts';
import { fmt, printTable, runContext, writeResult } from './lib/report.ts';
import { median, ratio, round } from './lib/stats.ts';
import { startDiamond, startSink } from './lib/devices.ts';
import { loadVmesh } from './lib/vmesh.ts';

export const name = 'failover';

const MESSAGE = 32;
const INTERVAL_MS = 10;

interface Trial {
  /** Longest gap between echoes arriving after the kill, ms. */
  outageMs: number | null;
  sent: number;
  received: number;
  /** Echoes that came back twice or out of order. */
  disorder: number;
  killed: string;
  error?: string;
}

/**
 * Sends numbered messages every 10 ms on `first`; `kill` runs after `beforeMs`;
 * when the stream fails, `redial` (if given) opens another one and sending
 * goes on there. Stops `afterMs` after the kill (or when nothing came back for 10 s).
 */
async function pingThrough(
  first: Duplex,
  kill: () => Promise<string>,
  redial: Dial | undefined,
  beforeMs: number,
  afterMs: number,
): Promise<Trial> {
  let stream = first;
  let seq = 0;
  let expected = 0;
  let disorder = 0;
  let failed: string | undefined;
  let redialing = false;
  const arrivals: number[] = [];
  let pending: Buffer = Buffer.alloc(0);
  const attach = (s: Duplex): void => {
    s.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= MESSAGE) {
        const n = pending.readUInt32BE(0);
        pending = pending.subarray(MESSAGE);
        if (n < expected) disorder++;
        expected = Math.max(expected, n + 1);
        arrivals.push(performance.now());
      }
    });
    s.on('error', (err: unknown) => {
      // With a redial, the dead connection's error is expected: the redial carries on.
      if (redial === undefined) failed ??= codeOf(err);
    });
    s.once('close', () => {
      if (redial === undefined || redialing || s !== stream) return;
      redialing = true;
      pending = Buffer.alloc(0);
      void redial().then(
        (next) => {
          stream = next;
          attach(next);
          redialing = false;
        },
        (err: unknown) => {
          failed ??= `redial: ${codeOf(err)}`;
        },
      );
    });
  };
  attach(first);
  const message = Buffer.alloc(MESSAGE);
  const send = (): void => {
    if (redialing || stream.destroyed) return;
    message.writeUInt32BE(seq++, 0);
    stream.write(Buffer.from(message));
  };
  const timer = setInterval(send, INTERVAL_MS);
  await sleep(beforeMs);
  const killedAt = performance.now();
  const killed = await kill();
  const stopAt = killedAt + afterMs;
  while (performance.now() < stopAt) {
    await sleep(50);
    const last = arrivals.at(-1) ?? 0;
    if (performance.now() - Math.max(last, killedAt) > 10_000) break;
  }
  clearInterval(timer);
  await sleep(1000); // the last echoes
  stream.destroy();
  const after = arrivals.filter((t) => t >= killedAt);
  let outage: number | null = null;
  if (after.length > 0) {
    let prev = arrivals.filter((t) => t < killedAt).at(-1) ?? killedAt;
    outage = 0;
    for (const t of after) {
      outage = Math.max(outage, t - prev);
      prev = t;
    }
    if (performance.now() - prev > 1500 && failed === undefined) failed = 'echoes stopped';
  } else if (failed === undefined) failed = 'no echo after the kill';
  const trial: Trial = {
    outageMs: round(outage, 1),
    sent: seq,
    received: arrivals.length,
    disorder,
    killed,
  };
  if (failed !== undefined) trial.error = failed;
  return trial;
}

/** Runs the bench: prints its table, writes bench/results/failover.json, returns the result. */
export async function run(options: BenchOptions): Promise<Record<string, unknown>> {
  const context = runContext(options);
  const trials = options.quick ? 1 : 3;
  const afterMs = options.quick ? 3000 : 5000;
  const t0 = performance.now();
  const say = (line: string): void =>
    console.log(`  [failover +${((performance.now() - t0) / 1000).toFixed(1)} s] ${line}`);
  const vmesh = await loadVmesh(options.build);
  const sink = await startSink();
  const vmeshTrials: Trial[] = [];
  const protocols: string[] = [];
  const baseTrials: Trial[] = [];
  try {
    for (let i = 0; i < trials; i++) {
      say(`trial ${i + 1}/${trials}: diamond A–B–D, A–C–D; the relay of the connection is killed`);
      const { testbed, dir } = await startDiamond(vmesh, sink);
      try {
        const control = testbed.device('A').control;
        const s = await vmesh.front.connect({
          control,
          to: 'D',
          service: 'echo',
          app: 'bench',
          ...(options.protocol === undefined ? {} : { protocol: options.protocol }),
        });
        protocols.push(s.info.protocol);
        s.on('error', () => undefined);
        vmeshTrials.push(
          await pingThrough(
            s,
            async () => {
              const a = await testbed.status('A');
              const path = a.vconns.find(
                (v) => v.connection === s.info.connection,
              )?.forwardPathNames;
              const relay = path?.[0] ?? 'B';
              await testbed.kill(relay);
              return relay;
            },
            undefined,
            1000,
            afterMs,
          ),
        );
      } catch (err) {
        vmeshTrials.push({
          outageMs: null,
          sent: 0,
          received: 0,
          disorder: 0,
          killed: '?',
          error: codeOf(err),
        });
      } finally {
        await testbed.stop();
        rmSync(dir, { recursive: true, force: true });
      }
      say(`trial ${i + 1}/${trials}: baseline, plain relay killed, the app redials via another`);
      let one: Chain | undefined;
      let two: Chain | undefined;
      try {
        one = await startChain(1, [sink.echo]);
        two = await startChain(1, [sink.echo]);
        const first = await tcpDial('127.0.0.1', one.entry[0] as number)();
        const relay = one.relays[0];
        baseTrials.push(
          await pingThrough(
            first,
            async () => {
              relay?.process.kill('SIGKILL');
              return 'relay 1';
            },
            tcpDial('127.0.0.1', two.entry[0] as number),
            1000,
            afterMs,
          ),
        );
      } finally {
        await one?.stop();
        await two?.stop();
      }
    }
  } finally {
    await sink.helper.stop();
  }
  const outages = (ts: Trial[]): number[] =>
    ts.filter((t) => t.error === undefined).map((t) => t.outageMs as number);
  const vmeshOutage = round(median(outages(vmeshTrials)), 1);
  const baseOutage = round(median(outages(baseTrials)), 1);
  const lost = (ts: Trial[]): number => ts.reduce((n, t) => n + (t.sent - t.received), 0);
  const disorder = (ts: Trial[]): number => ts.reduce((n, t) => n + t.disorder, 0);
  const errors = vmeshTrials.flatMap((t) => (t.error === undefined ? [] : [t.error]));
  printTable(
    `failover: one connection, 32-byte message every ${INTERVAL_MS} ms, its relay SIGKILLed (build: ${options.build}); baseline: plain relay, the app redials through another`,
    [
      { title: 'figure', right: false },
      { title: 'vmesh' },
      { title: 'baseline' },
      { title: 'vmesh/baseline' },
    ],
    [
      [
        `outage, median of ${trials} trial(s), ms`,
        fmt(vmeshOutage, 0) + (errors.length > 0 ? ` (${errors.join(', ')})` : ''),
        fmt(baseOutage, 0),
        fmt(ratio(vmeshOutage, baseOutage), 2),
      ],
      ['messages lost (all trials)', String(lost(vmeshTrials)), String(lost(baseTrials)), ''],
      [
        'messages duplicated or out of order',
        String(disorder(vmeshTrials)),
        String(disorder(baseTrials)),
        '',
      ],
    ],
  );
  const result = {
    bench: name,
    ...context,
    params: { trials, intervalMs: INTERVAL_MS, messageBytes: MESSAGE, afterMs },
    vmesh: { outageMedianMs: vmeshOutage, trials: vmeshTrials, protocols },
    baseline: { outageMedianMs: baseOutage, trials: baseTrials },
    ratio: round(ratio(vmeshOutage, baseOutage), 2),
  };
  console.log(`written: ${writeResult(name, result)}`);
  return result;
}
