/**
 * A testbed of devices as separate processes on 127.0.0.1: writes one config
 * per device into a folder, starts `vmesh up` for each, waits until every
 * control socket answers and routes have converged, and stops (or kills)
 * them. Used by `vmesh demo` and the integration tests; the scenario runner
 * of a later issue builds on it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Role } from '../crypto/index.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { controlRequest } from '../control/index.ts';
import { writeCertificateFile, writeIdentityFile, writeTrustFile } from '../crypto/index.ts';
import { TestPki } from './pki.ts';
import { VmeshError } from '../errors/index.ts';

export interface TestbedDeviceSpec {
  name: string;
  /** Names of devices this one dials. */
  dials?: string[];
  /** Services: name -> "host:port". */
  expose?: Record<string, string>;
  /** Extra config fields (merged). */
  extra?: Record<string, unknown>;
  /** Certificate roles. @default ['relay', 'serve'] */
  roles?: Role[];
  /** Extra arguments for node (e.g. diagnostics flags). */
  nodeArgs?: string[];
  /** Extra environment variables for the device process. */
  env?: Record<string, string>;
}

export interface TestbedDevice {
  name: string;
  config: string;
  control: string;
  listen: string;
  process: ChildProcess;
  /** Everything the process printed (bounded). */
  output: () => string;
  /** Resolves with the exit code (or signal name) once the process exited. */
  exited: Promise<number | string>;
}

export interface Testbed {
  dir: string;
  /** The testbed's network CA: issue more certificates (insiders, outsiders) with it. */
  pki: TestPki;
  /** Revokes the certificates of these serials (devices re-read the list within a second). */
  revoke(serials: number[]): void;
  /** Serial of each device's certificate. */
  serials: Map<string, number>;
  devices: Map<string, TestbedDevice>;
  device(name: string): TestbedDevice;
  status(name: string): Promise<DeviceStatus>;
  /** Waits until every device knows every other by name and every protocol has a route to each. */
  converged(timeoutMs?: number): Promise<void>;
  /** SIGKILLs one device. */
  kill(name: string): Promise<void>;
  /** SIGTERMs every device still running and waits; returns exit codes by name. */
  stop(): Promise<Map<string, number | string>>;
}

/** The parts of a device's status the testbed and the demo read. */
export interface DeviceStatus {
  device: { id: string; name: string; protocols: string[] };
  links: { neighbour: string; name: string }[];
  directory: { device: string; name: string }[];
  routing: {
    protocol: string;
    mode: string;
    reactive: boolean;
    neighbours: { device: string; state: string }[];
    routes: { destination: string; nextHop: string; hops: number }[];
  }[];
  vms: {
    vmId: string;
    role: string;
    connection: string;
    protocol: string;
    threadId: number;
    endedAt?: string;
    endReason?: string;
    report?: { dropped?: Record<string, number>; pathChanges?: number };
  }[];
  /** Packets refused by end-to-end checks, newest last. */
  quarantine: { connection: string; reason: string; packetNumber: number; source: string }[];
  vconns: {
    connection: string;
    app: string;
    protocol: string;
    reason: string;
    state: string;
    setupMs?: number;
    error?: { code: string; message: string };
    forwardPathNames?: string[];
    returnPathNames?: string[];
    avoidNames: string[];
  }[];
  counters: Record<string, number>;
}

/** Neighbour state meaning "usable both ways", for protocols whose snapshots distinguish it. */
const TWO_WAY: Record<string, string> = {
  'link-state': 'symmetric',
  'distance-vector': 'bidirectional',
};

/** A free TCP port on 127.0.0.1 (bound then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** How to run the CLI: compiled when this module is compiled, through tsx when it runs from source. */
function cliCommand(): { command: string; args: string[] } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Resolve tsx from this package, so it works whatever the current folder is.
    const tsx = import.meta.resolve('tsx');
    return {
      command: process.execPath,
      args: ['--import', tsx, fileURLToPath(new URL('../cli/main.ts', here))],
    };
  }
  return { command: process.execPath, args: [fileURLToPath(new URL('../cli/main.js', here))] };
}

export async function startTestbed(
  dir: string,
  specs: TestbedDeviceSpec[],
  options: { logLevel?: string; readyTimeoutMs?: number } = {},
): Promise<Testbed> {
  mkdirSync(dir, { recursive: true });
  // One network CA for the testbed; every device gets an identity and a certificate, and
  // every device reads the same revocation list file (written by `testbed.revoke`).
  const pki = new TestPki('testbed');
  const trustFile = join(dir, 'trust.json');
  const crlFile = join(dir, 'revocations.crl');
  writeTrustFile(trustFile, pki.trust, { overwrite: true });
  const listen = new Map<string, string>();
  for (const s of specs) listen.set(s.name, `127.0.0.1:${await freePort()}`);
  const devices = new Map<string, TestbedDevice>();
  const serials = new Map<string, number>();
  const cli = cliCommand();
  for (const s of specs) {
    const deviceDir = join(dir, s.name);
    mkdirSync(deviceDir, { recursive: true });
    const issued = pki.issue(s.name, s.roles === undefined ? {} : { roles: s.roles });
    serials.set(s.name, issued.serial);
    writeIdentityFile(join(deviceDir, 'identity.json'), issued.identity, { overwrite: true });
    const certFile = join(deviceDir, 'device.cert');
    writeCertificateFile(certFile, issued.certificate, { overwrite: true });
    const config = {
      name: s.name,
      stateDir: deviceDir,
      security: { trust: trustFile, certificate: certFile, revocations: crlFile },
      // Static link costs: the testbed's own CPU load must not move routes under a test.
      routing: { measuredCosts: false },
      listen: listen.get(s.name),
      neighbours: (s.dials ?? []).map((n) => {
        const address = listen.get(n);
        if (address === undefined)
          throw new VmeshError('VMESH_ERR_CONFIG', `testbed: unknown device ${n}`);
        return address;
      }),
      expose: s.expose ?? {},
      log: { level: options.logLevel ?? 'info' },
      ...s.extra,
    };
    const configPath = join(deviceDir, 'config.yaml');
    writeFileSync(configPath, stringify(config));
    const child = spawn(
      cli.command,
      [...(s.nodeArgs ?? []), ...cli.args, 'up', '--config', configPath],
      {
        cwd: deviceDir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1', ...s.env },
      },
    );
    let out = '';
    const keep = (chunk: Buffer): void => {
      out += chunk.toString('utf8');
      if (out.length > 1_000_000) out = out.slice(-500_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | string>((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    });
    devices.set(s.name, {
      name: s.name,
      config: configPath,
      control: join(deviceDir, 'control.sock'),
      listen: listen.get(s.name) as string,
      process: child,
      output: () => out,
      exited,
    });
  }

  const testbed: Testbed = {
    pki,
    serials,
    revoke(list) {
      writeFileSync(crlFile, pki.revocationList(list));
    },
    dir,
    devices,
    device(name) {
      const d = devices.get(name);
      if (d === undefined)
        throw new VmeshError('VMESH_ERR_UNKNOWN_DEVICE', `testbed has no device ${name}`);
      return d;
    },
    async status(name) {
      return (await controlRequest(
        testbed.device(name).control,
        { op: 'status' },
        5000,
      )) as unknown as DeviceStatus;
    },
    async converged(timeoutMs = 30000) {
      const names = [...devices.keys()].filter((n) => devices.get(n)?.process.exitCode === null);
      let missing = '';
      let previous = '';
      let stableLooks = 0;
      try {
        await waitFor(
          async () => {
            const digest: string[] = [];
            for (const n of names) {
              const s = await testbed.status(n);
              const links = s.links.length;
              for (const r of s.routing) {
                // Reactive protocols (aodv, source-route) find routes on demand: nothing to wait for.
                if (r.reactive === true) continue;
                // Two-way neighbours where the protocol tells them apart (link-state: symmetric,
                // distance-vector: bidirectional); the others need to have heard them.
                const twoWay = TWO_WAY[r.protocol];
                const ready = (state: string): boolean =>
                  twoWay === undefined ? state !== 'link-up' : state === twoWay;
                const up = r.neighbours.filter((x) => ready(x.state)).length;
                if (up < links) {
                  missing = `${n}: ${r.protocol} has heard ${up} of its ${links} neighbours`;
                  return false;
                }
                digest.push(
                  `${n}/${r.protocol}:${r.routes
                    .map((x) => `${x.destination}>${x.nextHop}`)
                    .sort()
                    .join(',')}`,
                );
              }
              const known = new Set(s.directory.map((e) => e.name));
              const unknown = names.filter((m) => !known.has(m));
              if (unknown.length > 0) {
                missing = `${n} does not know ${unknown.join(', ')}`;
                return false;
              }
              const ids = s.directory.filter((e) => e.name !== n && names.includes(e.name));
              for (const r of s.routing) {
                if (r.reactive === true) continue;
                const dests = new Set(r.routes.map((x) => x.destination));
                const lacking = ids.filter((e) => !dests.has(e.device)).map((e) => e.name);
                if (lacking.length > 0) {
                  missing = `${n} has no ${r.protocol} route to ${lacking.join(', ')}`;
                  return false;
                }
              }
            }
            // Settled: the same routes as at the previous look (one poll interval ago).
            const now = digest.join('|');
            stableLooks = now === previous ? stableLooks + 1 : 0;
            previous = now;
            const settled = stableLooks >= 3;
            if (!settled) missing = 'routes still changing';
            return settled;
          },
          timeoutMs,
          'routes to converge',
        );
      } catch (err) {
        throw new VmeshError('VMESH_ERR_TIMEOUT', `${(err as Error).message}: ${missing}`);
      }
    },
    async kill(name) {
      const d = testbed.device(name);
      d.process.kill('SIGKILL');
      await d.exited;
    },
    async stop() {
      const codes = new Map<string, number | string>();
      for (const d of devices.values())
        if (d.process.exitCode === null && d.process.signalCode === null) d.process.kill('SIGTERM');
      for (const d of devices.values()) {
        const timer = setTimeout(() => d.process.kill('SIGKILL'), 10000);
        codes.set(d.name, await d.exited);
        clearTimeout(timer);
      }
      return codes;
    },
  };

  try {
    await waitFor(
      async () => {
        for (const d of devices.values()) {
          if (d.process.exitCode !== null) {
            throw new VmeshError(
              'VMESH_ERR_INTERNAL',
              `device ${d.name} exited at start:\n${d.output().slice(-2000)}`,
            );
          }
          try {
            await controlRequest(d.control, { op: 'status' }, 2000);
          } catch {
            return false;
          }
        }
        return true;
      },
      options.readyTimeoutMs ?? 20000,
      'devices to start',
    );
  } catch (err) {
    await testbed.stop();
    throw err;
  }
  return testbed;
}

/** Polls `check` every 100 ms until it returns true; throws VMESH_ERR_TIMEOUT after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline)
      throw new VmeshError(
        'VMESH_ERR_TIMEOUT',
        `timed out after ${timeoutMs} ms waiting for ${what}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}
