// Admission, confidentiality and integrity with real device processes on
// 127.0.0.1 (a diamond A–B–D, A–C–D, an echo service on D):
// outsiders never link; a relay's memory and logs never hold the plaintext
// that crosses it; tampered, replayed and forged packets are dropped, counted
// and quarantined while the stream still delivers every byte; access lists
// refuse; revocation ends links.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/front/index.ts';
import { LinkSession, tcpTransport } from '../../src/link/index.ts';
import type { LinkCredentials } from '../../src/link/index.ts';
import { Counters } from '../../src/observe/index.ts';
import {
  TestPki,
  echoRoundTrip,
  startEchoServer,
  startTestbed,
  waitFor,
} from '../../src/testbed/index.ts';
import type { DeviceStatus, Testbed } from '../../src/testbed/index.ts';

let testbed: Testbed;
let echo: Awaited<ReturnType<typeof startEchoServer>>;
let dir: string;
const faults = { flipEvery: 7, replayEvery: 11, forgeEvery: 13 };

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmesh-security-'));
  echo = await startEchoServer();
  const relay = { env: { VMESH_TEST_FAULTS: JSON.stringify(faults) } };
  testbed = await startTestbed(
    dir,
    [
      { name: 'A', dials: ['B', 'C'] },
      { name: 'B', dials: ['D'], ...relay },
      { name: 'C', dials: ['D'], ...relay },
      {
        name: 'D',
        expose: { echo: echo.address, private: echo.address },
        extra: { acl: { private: ['A'] } },
      },
    ],
    { logLevel: 'debug' },
  );
  await testbed.converged();
});

after(async () => {
  await testbed?.stop();
  await echo?.close();
  rmSync(dir, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const counter = (s: DeviceStatus, name: string): number =>
  Object.entries(s.counters)
    .filter(([k]) => k === name || k.startsWith(`${name}{`))
    .reduce((sum, [, v]) => sum + v, 0);

/** Bytes of a process's readable memory that contain `needle` (Linux /proc; the process is our child). */
function memoryHits(pid: number, needle: Buffer): number {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const buf = Buffer.alloc(1 << 20);
  let hits = 0;
  try {
    for (const line of maps) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) r/.exec(line);
      if (m === null) continue;
      const end = parseInt(m[2] as string, 16);
      // Overlap reads by the needle's length so a copy across a boundary is found.
      for (let at = parseInt(m[1] as string, 16); at < end; at += buf.length - needle.length) {
        let got = 0;
        try {
          got = readSync(fd, buf, 0, Math.min(buf.length, end - at), at);
        } catch {
          break;
        }
        let i = buf.subarray(0, got).indexOf(needle);
        while (i >= 0) {
          hits++;
          i = buf.subarray(0, got).indexOf(needle, i + 1);
        }
        if (got < buf.length) break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return hits;
}

test('outsiders cannot form a link: 0 of every attempt, each refused with its reason and counted', async () => {
  const d = testbed.device('D');
  const outsider = new TestPki('outsider');
  const revoked = testbed.pki.issue('R');
  testbed.revoke([revoked.serial]);
  await new Promise((r) => setTimeout(r, 1500)); // devices re-read the list every second
  const stolen = testbed.pki.issue('Z');
  const cases: [string, LinkCredentials, string][] = [
    ['another CA', outsider.issue('O').credentials, 'VMESH_ERR_CERT_INVALID'],
    [
      'expired',
      testbed.pki.issue('E', { notBefore: Date.now() - 3e6, notAfter: Date.now() - 1e6 })
        .credentials,
      'VMESH_ERR_CERT_EXPIRED',
    ],
    ['revoked', revoked.credentials, 'VMESH_ERR_CERT_REVOKED'],
    [
      "a stolen certificate (B's) without its key",
      { ...stolen.credentials, certificate: testbed.pki.issue('B').certificate },
      'VMESH_ERR_CERT_INVALID',
    ],
    [
      'no certificate (garbage in its place)',
      { ...stolen.credentials, certificate: randomBytes(200) },
      'VMESH_ERR_CERT_INVALID',
    ],
  ];
  const before = await testbed.status('D');
  const ATTEMPTS = 3;
  let linked = 0;
  let framesSeen = 0;
  for (const [what, creds] of cases) {
    for (let i = 0; i < ATTEMPTS; i++) {
      const stream = await tcpTransport().dial(d.listen, 2000);
      const session = new LinkSession(
        stream,
        'outbound',
        { handshakeTimeoutMs: 2000 },
        new Counters(),
      );
      session.onFrame(() => framesSeen++);
      const done = await session.handshake(creds).then(
        () => true,
        () => false,
      );
      // An outsider whose certificate D refuses may finish its side first; D then hangs up at once.
      if (done) await new Promise<void>((resolve) => session.onClose(() => resolve()));
      if (done && !session.closed) linked++;
      assert.equal(session.closed, true, `${what}: the link stayed up`);
    }
  }
  assert.equal(linked, 0);
  assert.equal(framesSeen, 0, 'an outsider received a frame after the handshake');
  const afterStatus = await testbed.status('D');
  for (const [what, , code] of cases) {
    const key = `link.refused{code="${code}"}`;
    assert.ok(
      (afterStatus.counters[key] ?? 0) > (before.counters[key] ?? 0),
      `${what}: ${key} not counted`,
    );
  }
  assert.equal(
    counter(afterStatus, 'link.refused') - counter(before, 'link.refused'),
    cases.length * ATTEMPTS,
  );
  assert.deepEqual(afterStatus.links.map((l) => l.name).sort(), ['B', 'C']);
  assert.ok(!afterStatus.directory.some((e) => ['O', 'E', 'R', 'Z'].includes(e.name)));
  const log = d.output();
  assert.match(log, /link refused/);
});

test('a relay sees no plaintext; tampered, replayed and forged packets are dropped, counted and quarantined, and every byte arrives', async () => {
  const control = testbed.device('A').control;
  const marker = Buffer.from(`vmesh-plaintext-marker-${randomBytes(12).toString('hex')}`);
  const payload = Buffer.concat(Array.from({ length: 20000 }, () => marker));
  const stream = await connect({
    control,
    to: 'D',
    service: 'echo',
    app: 'secrecy',
    protocol: 'link-state',
  });
  const echoed = await echoRoundTrip(stream, payload);
  assert.equal(sha(echoed), sha(payload), 'the stream did not deliver every byte intact');

  const a = await testbed.status('A');
  const vconn = a.vconns.find((v) => v.connection === stream.info.connection);
  const relay = vconn?.forwardPathNames?.[0] as string;
  assert.ok(relay === 'B' || relay === 'C', `relay ${relay}`);
  // Memory: the relay holds no copy of the marker; the destination (which decrypted it) does.
  const relayPid = testbed.device(relay).process.pid as number;
  const destinationPid = testbed.device('D').process.pid as number;
  assert.equal(memoryHits(relayPid, marker), 0, `relay ${relay} memory holds the plaintext`);
  assert.ok(memoryHits(destinationPid, marker) > 0, 'control: the destination should hold it');
  // Logs (debug level): no plaintext anywhere on the relay.
  assert.ok(
    !testbed.device(relay).output().includes(marker.toString()),
    'relay logs hold the plaintext',
  );

  // Every fault the relay injected was caught by an end: auth-failed for flips and forgeries,
  // replay for replays, counted on the VMs and quarantined on the devices.
  // Wait for both ends' VMs to finish: their last reports carry their final counts.
  stream.end();
  let a2 = a;
  let d = await testbed.status('D');
  const ends = (): DeviceStatus['vms'] => [
    ...a2.vms.filter((v) => v.connection === stream.info.connection && v.role === 'source'),
    ...d.vms.filter((v) => v.connection === stream.info.connection && v.role === 'destination'),
  ];
  await waitFor(
    async () => {
      [a2, d] = [await testbed.status('A'), await testbed.status('D')];
      return ends().length === 2 && ends().every((v) => v.endedAt !== undefined);
    },
    10000,
    'the connection to end',
  );
  // Both B and C inject faults (if the route moved during the transfer, both carried some).
  const relays = [await testbed.status('B'), await testbed.status('C')];
  const injected = (kind: string): number =>
    relays.reduce((sum, r) => sum + (r.counters[`faults.injected{kind="${kind}"}`] ?? 0), 0);
  assert.ok(injected('flip') > 0 && injected('replay') > 0 && injected('forge') > 0);
  const dropped = (reason: string): number =>
    ends().reduce((sum, v) => sum + (v.report?.dropped?.[reason] ?? 0), 0);
  // Each kind was caught at an end; none was delivered (the checksum above). A fault injected
  // into the connection's very last packets may meet an end that already finished (then the
  // switch drops it as an unknown connection), so the ends count at most what was injected.
  assert.ok(dropped('auth-failed') > 0 && dropped('replay') > 0);
  assert.ok(dropped('auth-failed') <= injected('flip') + injected('forge'));
  assert.ok(dropped('replay') <= injected('replay'));
  // Each end quarantined what it dropped (a device keeps the last 64).
  for (const [status, role] of [
    [a2, 'source'],
    [d, 'destination'],
  ] as const) {
    const vm = status.vms.find((v) => v.connection === stream.info.connection && v.role === role);
    const drops = vm?.report?.dropped ?? {};
    const kept = status.quarantine.filter((q) => q.connection === stream.info.connection);
    assert.equal(kept.length, Math.min(64, (drops['auth-failed'] ?? 0) + (drops.replay ?? 0)));
  }
});

test('an access list refuses a device the service does not allow, with VMESH_ERR_ACCESS_DENIED', async () => {
  const fromB = testbed.device('B').control;
  await assert.rejects(connect({ control: fromB, to: 'D', service: 'private', app: 'x' }), {
    code: 'VMESH_ERR_ACCESS_DENIED',
  });
  const fromA = await connect({
    control: testbed.device('A').control,
    to: 'D',
    service: 'private',
    app: 'x',
  });
  const back = await echoRoundTrip(fromA, Buffer.from('allowed'));
  assert.equal(back.toString(), 'allowed');
});

test('revoking a device ends its links at once, and it cannot come back', async () => {
  testbed.revoke([testbed.serials.get('B') as number]);
  await waitFor(
    async () => {
      const [a, d] = [await testbed.status('A'), await testbed.status('D')];
      return !a.links.some((l) => l.name === 'B') && !d.links.some((l) => l.name === 'B');
    },
    10000,
    "B's links to end",
  );
  await new Promise((r) => setTimeout(r, 1500));
  const a = await testbed.status('A');
  assert.ok(!a.links.some((l) => l.name === 'B'), 'B linked again after revocation');
  assert.ok((a.counters['link.refused{code="VMESH_ERR_CERT_REVOKED"}'] ?? 0) > 0);
});

test('no private key appears in any device log or in the control API', async () => {
  for (const name of ['A', 'B', 'C', 'D']) {
    const device = testbed.device(name);
    const identity = JSON.parse(readFileSync(join(dir, name, 'identity.json'), 'utf8')) as Record<
      string,
      string
    >;
    const secrets = [identity.signingPrivateKey, identity.agreementPrivateKey].flatMap((pem) => {
      const der = Buffer.from((pem as string).replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const raw = der.subarray(der.length - 32); // PKCS#8 Ed25519/X25519: the key is the last 32 bytes
      return [
        raw.toString('hex'),
        raw.toString('base64'),
        raw.toString('base64url'),
        (pem as string).split('\n')[1] as string,
      ];
    });
    const status = JSON.stringify(await testbed.status(name));
    for (const secret of secrets) {
      assert.ok(!device.output().includes(secret), `${name}'s log holds a private key`);
      assert.ok(!status.includes(secret), `${name}'s status holds a private key`);
    }
  }
});
