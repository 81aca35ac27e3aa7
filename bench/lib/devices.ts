/**
 * The vmesh side of the benches: the sink process, testbeds of device
 * processes on 127.0.0.1 (a line A–R1..Rn–D, a diamond A–B–D, A–C–D) where
 * D exposes the sink's services, and a dial of those services through A.
 * Every device process and temp folder is tracked for an interrupted run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { trackChild, trackDir } from './cleanup.ts';
import type { Dial } from './measure.ts';
import { startHelper } from './procs.ts';
import type { Helper } from './procs.ts';
import type { Vmesh } from './vmesh.ts';

export type Testbed = Awaited<ReturnType<Vmesh['testbed']['startTestbed']>>;
export type TestbedSpec = Parameters<Vmesh['testbed']['startTestbed']>[1][number];

export interface Sink {
  helper: Helper;
  pid: number;
  /** host:port of its echo service. */
  echo: string;
  /** host:port of its count service. */
  count: string;
}

/** The sink process: echo and count services. */
export async function startSink(): Promise<Sink> {
  const helper = await startHelper('sink.ts', []);
  return {
    helper,
    pid: helper.pid,
    echo: `127.0.0.1:${helper.info.echo as number}`,
    count: `127.0.0.1:${helper.info.count as number}`,
  };
}

/** A line of devices A, R1..Rn, D as processes; D exposes the sink's services. */
export async function startLine(
  vmesh: Vmesh,
  relays: number,
  sink: { echo: string; count: string },
  extra: Record<string, unknown> = {},
): Promise<{ testbed: Testbed; names: string[]; dir: string }> {
  const names = ['A', ...Array.from({ length: relays }, (_, i) => `R${i + 1}`), 'D'];
  const specs = names.map((n, i) => ({
    name: n,
    ...(i < names.length - 1 ? { dials: [names[i + 1] as string] } : {}),
    ...(n === 'D' ? { expose: { echo: sink.echo, count: sink.count } } : {}),
    extra,
  }));
  return { ...(await startDevices(vmesh, specs)), names };
}

/** A connection a vmesh dial opened, as the device reported it. */
export interface Opened {
  connection: string;
  protocol: string;
}

/**
 * A dial of D's `service` through device A, with `protocol` asked for
 * explicitly (undefined: the device's policy chooses); every connection it
 * opens is appended to `opened`.
 */
export function vmeshDial(
  vmesh: Vmesh,
  control: string,
  service: string,
  protocol: string | undefined,
  opened: Opened[] = [],
): Dial {
  return async (): Promise<Duplex> => {
    const s = await vmesh.front.connect({
      control,
      to: 'D',
      service,
      app: 'bench',
      timeoutMs: 30000,
      ...(protocol === undefined ? {} : { protocol }),
    });
    opened.push({ connection: s.info.connection, protocol: s.info.protocol });
    return s;
  };
}

/** Starts device processes from `specs` in a temp folder and waits for routes to converge. */
export async function startDevices(
  vmesh: Vmesh,
  specs: TestbedSpec[],
): Promise<{ testbed: Testbed; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-bench-'));
  trackDir(dir);
  try {
    const testbed = await vmesh.testbed.startTestbed(dir, specs, { logLevel: 'warn' });
    for (const d of testbed.devices.values()) trackChild(d.process);
    try {
      await testbed.converged(30000);
    } catch (err) {
      await testbed.stop();
      throw err;
    }
    return { testbed, dir };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A diamond A–B–D, A–C–D (A and D not linked); D exposes the sink's services. */
export function startDiamond(
  vmesh: Vmesh,
  sink: { echo: string; count: string },
): Promise<{ testbed: Testbed; dir: string }> {
  return startDevices(vmesh, [
    { name: 'A', dials: ['B', 'C'] },
    { name: 'B', dials: ['D'] },
    { name: 'C', dials: ['D'] },
    { name: 'D', expose: { echo: sink.echo, count: sink.count } },
  ]);
}
