/**
 * The embedded demo (`npm run demo`, `vmesh demo`): patent claim 1 end to end.
 *
 * Four devices as processes on 127.0.0.1 in a diamond A–B–D, A–C–D (A and D
 * not linked), an echo service exposed on D, and an app (this process) on A
 * that opens two connections to D's echo service, sends data on both at once
 * and checks every byte that comes back. The result is read from the
 * devices' own records (control API status), checked, and returned for the
 * CLI to print. Nothing here prints by itself: `say` receives progress lines.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../front/index.ts';
import type { VconnStream } from '../front/index.ts';
import { startTestbed } from './processes.ts';
import type { DeviceStatus, Testbed } from './processes.ts';

export interface DemoOptions {
  /** Bytes sent on each connection. @default 1048576 */
  bytes?: number;
  /** Keep the temp folder (configs, keys, logs). @default false */
  keep?: boolean;
}

export interface DemoConnection {
  index: number;
  connection: string;
  protocol: string;
  reason: string;
  forwardPath: string[];
  returnPath: string[];
  vms: { device: string; role: string; vmId: string; threadId: number; endReason?: string }[];
  bytesSent: number;
  bytesEchoed: number;
  intact: boolean;
  setupMs: number;
  transferMs: number;
}

export interface DemoResult {
  ok: boolean;
  devices: { name: string; id: string; listen: string; links: string[] }[];
  service: string;
  connections: DemoConnection[];
  checks: { ok: boolean; text: string }[];
  exitCodes: Record<string, number | string>;
  dir: string;
}

const APP = 'demo-app';

/** Starts an echo server on 127.0.0.1 (the service exposed on D). */
export async function startEchoServer(): Promise<{ address: string; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Sends `data` on the stream, ends it, and collects everything that comes back. */
export function echoRoundTrip(stream: VconnStream, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
    stream.end(data);
  });
}

export async function runDemo(
  options: DemoOptions,
  say: (line: string) => void,
): Promise<DemoResult> {
  const size = options.bytes ?? 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-demo-'));
  const echo = await startEchoServer();
  let testbed: Testbed | undefined;
  const checks: DemoResult['checks'] = [];
  const connections: DemoConnection[] = [];
  let exitCodes: Record<string, number | string> = {};
  let devices: DemoResult['devices'] = [];
  try {
    say(
      'starting 4 devices as separate processes on 127.0.0.1: diamond A–B–D, A–C–D (A and D not linked)',
    );
    testbed = await startTestbed(dir, [
      { name: 'A', dials: ['B', 'C'] },
      { name: 'B', dials: ['D'] },
      { name: 'C', dials: ['D'] },
      { name: 'D', expose: { echo: echo.address } },
    ]);
    say('waiting for links, names and routes to converge');
    await testbed.converged();
    const a = testbed.device('A');

    say(
      `app "${APP}" on A opens two connections to service "echo" on D and sends ${size} bytes on each`,
    );
    // One after the other, so the policy sees the first connection when it chooses for the second.
    const opened: { i: number; stream: VconnStream; setupMs: number }[] = [];
    for (const i of [0, 1]) {
      const t0 = performance.now();
      const stream = await connect({ control: a.control, to: 'D', service: 'echo', app: APP });
      opened.push({ i, stream, setupMs: performance.now() - t0 });
    }
    const payloads = [randomBytes(size), randomBytes(size)];
    const transfers = await Promise.all(
      opened.map(async ({ i, stream, setupMs }) => {
        const t0 = performance.now();
        const echoed = await echoRoundTrip(stream, payloads[i] as Buffer);
        return { i, stream, setupMs, transferMs: performance.now() - t0, echoed };
      }),
    );
    // Let the relays see both FINs and end their VMs, then read every device's records.
    await new Promise((r) => setTimeout(r, 1500));
    const statuses = new Map<string, DeviceStatus>();
    for (const name of testbed.devices.keys()) statuses.set(name, await testbed.status(name));
    devices = [...statuses.entries()].map(([name, s]) => ({
      name,
      id: s.device.id,
      listen: testbed?.device(name).listen ?? '',
      links: s.links.map((l) => l.name).sort(),
    }));
    const statusA = statuses.get('A') as DeviceStatus;
    for (const t of transfers) {
      const info = t.stream.info;
      const record = statusA.vconns.find((v) => v.connection === info.connection);
      const vms: DemoConnection['vms'] = [];
      for (const [name, s] of statuses) {
        for (const vm of s.vms) {
          if (vm.connection !== info.connection) continue;
          const entry: DemoConnection['vms'][number] = {
            device: name,
            role: vm.role,
            vmId: vm.vmId,
            threadId: vm.threadId,
          };
          if (vm.endReason !== undefined) entry.endReason = vm.endReason;
          vms.push(entry);
        }
      }
      const sent = payloads[t.i] as Buffer;
      connections.push({
        index: t.i + 1,
        connection: info.connection,
        protocol: info.protocol,
        reason: info.reason,
        forwardPath: ['A', ...(record?.forwardPathNames ?? [])],
        returnPath: ['D', ...(record?.returnPathNames ?? [])],
        vms,
        bytesSent: sent.length,
        bytesEchoed: t.echoed.length,
        intact: sha256(sent) === sha256(t.echoed),
        setupMs: t.setupMs,
        transferMs: t.transferMs,
      });
    }
    checks.push(...checkClaim(connections));
  } catch (err) {
    checks.push({ ok: false, text: `the demo failed: ${(err as Error).message}` });
    for (const d of testbed?.devices.values() ?? []) {
      say(`--- last output of ${d.name} ---\n${d.output().slice(-1500)}`);
    }
  } finally {
    if (testbed !== undefined) {
      say('shutting down the 4 devices');
      const codes = await testbed.stop();
      exitCodes = Object.fromEntries(codes);
      const clean = [...codes.values()].every((c) => c === 0);
      checks.push({
        ok: clean,
        text: clean
          ? 'all 4 devices shut down cleanly (exit code 0)'
          : `devices exited uncleanly: ${JSON.stringify(exitCodes)}`,
      });
    }
    await echo.close();
    if (options.keep !== true) rmSync(dir, { recursive: true, force: true });
  }
  return {
    ok: checks.length > 0 && checks.every((c) => c.ok),
    devices,
    service: `echo on D -> ${echo.address} (a TCP echo server)`,
    connections,
    checks,
    exitCodes,
    dir,
  };
}

/** The facts of claim 1 the demo must show. */
export function checkClaim(conns: DemoConnection[]): { ok: boolean; text: string }[] {
  const out: { ok: boolean; text: string }[] = [];
  const intact =
    conns.length === 2 && conns.every((c) => c.intact && c.bytesEchoed === c.bytesSent);
  out.push({
    ok: intact,
    text: intact ? 'both connections echoed every byte intact' : 'bytes were lost or changed',
  });
  const protocols = conns.map((c) => c.protocol);
  const differ = new Set(protocols).size === 2;
  out.push({
    ok: differ,
    text: `${differ ? 'different' : 'the SAME'} protocols: ${protocols.join(', ')}`,
  });
  const relays = conns.map((c) => c.forwardPath.slice(1, -1).join('+'));
  const disjoint = relays.length === 2 && relays.every((r) => r !== '') && relays[0] !== relays[1];
  out.push({
    ok: disjoint,
    text: `${disjoint ? 'different' : 'NOT different'} relays: ${relays.join(', ')}`,
  });
  const vmsOk = conns.every((c) => {
    const relay = c.forwardPath.slice(1, -1);
    return (
      c.vms.some((v) => v.device === 'A' && v.role === 'source') &&
      c.vms.some((v) => v.device === 'D' && v.role === 'destination') &&
      relay.every((r) => c.vms.some((v) => v.device === r && v.role === 'relay'))
    );
  });
  out.push({
    ok: vmsOk,
    text: vmsOk
      ? 'each connection had its own VM on A, on its relay and on D'
      : 'a VM was missing on the path',
  });
  return out;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
