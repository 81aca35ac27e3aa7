// VM failures with real device processes (diamond A–B–D, A–C–D, an echo
// service behind D). Device A runs with the test-only fault hook
// VMESH_TEST_VM_FAULT so that its 2nd, 3rd and 4th source VMs crash, hang and
// leak memory after a few packets, and with limits.maxVms = 2. One app keeps
// a healthy connection (A's 1st source VM) open throughout: each failing VM
// ends only its own connection, with VMESH_ERR_VM_CRASHED and the reason, and
// the healthy connection echoes every byte after each failure. While two VMs
// run on A, a third connection is refused with VMESH_ERR_VM_LIMIT (the idle
// Workers of A's warm pool do not count).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '../../src/front/index.ts';
import type { VconnStream } from '../../src/front/index.ts';
import { echoRoundTrip, startEchoServer, startTestbed } from '../../src/testbed/index.ts';
import type { DeviceStatus } from '../../src/testbed/index.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const FAULTS = [
  { role: 'source', nth: 2, crashAfterPackets: 20 },
  { role: 'source', nth: 3, hangAfterPackets: 20 },
  { role: 'source', nth: 4, leakAfterPackets: 20 },
];

/** Writes `bytes` random bytes on a stream that stays open and checks they all come back. */
async function echoOnce(stream: VconnStream, bytes: number): Promise<void> {
  const data = randomBytes(bytes);
  const back = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= data.length) {
        cleanup();
        resolve(Buffer.concat(chunks));
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('error', onError);
    };
    stream.on('data', onData);
    stream.once('error', onError);
    stream.write(data);
  });
  assert.equal(back.length, data.length);
  assert.equal(sha(back), sha(data), 'the healthy connection lost or changed bytes');
}

/** Writes (with backpressure, at most 16 MiB) until the stream fails; resolves with the error. */
function pumpUntilError(stream: VconnStream): Promise<Error & { code?: string }> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(16 * 1024, 7);
    let writes = 0;
    stream.on('data', () => undefined);
    stream.once('error', (err) => resolve(err));
    stream.once('end', () => reject(new Error('the stream ended cleanly instead of failing')));
    const write = (): void => {
      while (!stream.destroyed && writes < 1024) {
        writes++;
        if (!stream.write(chunk)) {
          stream.once('drain', write);
          return;
        }
      }
    };
    write();
  });
}

test(
  'a crashed, a hung and an out-of-memory VM each end only their own connection; the VM cap refuses with VMESH_ERR_VM_LIMIT',
  { timeout: 180000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-vm-failures-'));
    const echo = await startEchoServer();
    const testbed = await startTestbed(
      dir,
      [
        {
          name: 'A',
          dials: ['B', 'C'],
          extra: { limits: { maxVms: 2 } },
          env: { VMESH_TEST_VM_FAULT: JSON.stringify(FAULTS) },
        },
        { name: 'B', dials: ['D'] },
        { name: 'C', dials: ['D'] },
        { name: 'D', expose: { echo: echo.address } },
      ],
      { logLevel: 'warn' },
    );
    try {
      await testbed.converged();
      assert.match(
        testbed.device('A').output(),
        /VMESH_TEST_VM_FAULT/,
        'A warns of the fault hook',
      );
      const control = testbed.device('A').control;
      const open = (app: string): Promise<VconnStream> =>
        connect({ control, to: 'D', service: 'echo', app, protocol: 'link-state' });

      // A's 1st source VM: the healthy connection.
      const healthy = await open('healthy');
      await echoOnce(healthy, 256 * 1024);

      const expected: [string, RegExp][] = [
        ['crash', /crashed: test fault \(VMESH_TEST_VM_FAULT\): crash after 20 packets/],
        ['hang', /hung: no answer for \d+ ms/],
        ['leak', /out-of-memory: .*heap limit/],
      ];
      const victims: string[] = [];
      for (const [i, [kind, reason]] of expected.entries()) {
        // A's 2nd, 3rd, 4th source VM.
        const victim = await open(`victim-${kind}`);
        victims.push(victim.info.connection);
        if (i === 0) {
          // Two VMs run on A (its cap); a third connection is refused at once.
          await assert.rejects(open('one-too-many'), (err: Error & { code?: string }) => {
            assert.equal(err.code, 'VMESH_ERR_VM_LIMIT', `${err.code}: ${err.message}`);
            return true;
          });
        }
        const err = await pumpUntilError(victim);
        assert.equal(err.code, 'VMESH_ERR_VM_CRASHED', `${kind}: ${err.code}: ${err.message}`);
        assert.match(err.message, reason, kind);
        // The healthy connection carries on, every byte intact.
        await echoOnce(healthy, 256 * 1024);
      }

      const a: DeviceStatus = await testbed.status('A');
      const vmOf = (connection: string): DeviceStatus['vms'][number] | undefined =>
        a.vms.find((v) => v.connection === connection && v.role === 'source');
      for (const [i, connection] of victims.entries()) {
        const [kind, reason] = expected[i] as [string, RegExp];
        const vconn = a.vconns.find((v) => v.connection === connection);
        assert.equal(vconn?.state, 'failed', kind);
        assert.equal(vconn?.error?.code, 'VMESH_ERR_VM_CRASHED', kind);
        assert.match(vmOf(connection)?.endReason ?? '', reason, kind);
      }
      const healthyVm = vmOf(healthy.info.connection);
      assert.equal(healthyVm?.endedAt, undefined, 'the healthy VM still runs');
      assert.equal(typeof (healthyVm as { pooled?: unknown } | undefined)?.pooled, 'boolean');
      const count = (key: string): number => a.counters[key] ?? 0;
      assert.equal(count('vm.refused{reason="limit"}'), 1);
      assert.equal(count('vconn.refused{code="VMESH_ERR_VM_LIMIT"}'), 1);
      assert.equal(count('vm.crashed{role="source"}'), 2, 'the crash and the out-of-memory VM');
      assert.equal(count('vm.out-of-memory{role="source"}'), 1);
      assert.equal(count('vm.hung{role="source"}'), 1);
      assert.equal(count('vconn.failed{code="VMESH_ERR_VM_CRASHED"}'), 3);

      // The healthy connection ends cleanly.
      const last = randomBytes(100_000);
      assert.equal(sha(await echoRoundTrip(healthy, last)), sha(last));
    } finally {
      const codes = await testbed.stop();
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
      for (const [name, code] of codes) assert.equal(code, 0, `device ${name} exit code`);
    }
  },
);

test(
  'a destination VM that crashes gives the app VMESH_ERR_VM_CRASHED at once (the destination reports it)',
  { timeout: 120000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-vm-dest-crash-'));
    const echo = await startEchoServer();
    const testbed = await startTestbed(
      dir,
      [
        { name: 'A', dials: ['B'] },
        { name: 'B', dials: ['D'] },
        {
          name: 'D',
          expose: { echo: echo.address },
          env: {
            VMESH_TEST_VM_FAULT: JSON.stringify([
              { role: 'destination', nth: 1, crashAfterPackets: 20 },
            ]),
          },
        },
      ],
      { logLevel: 'warn' },
    );
    try {
      await testbed.converged();
      const stream = await connect({
        control: testbed.device('A').control,
        to: 'D',
        service: 'echo',
        app: 'x',
        protocol: 'link-state',
      });
      const err = await pumpUntilError(stream);
      assert.equal(err.code, 'VMESH_ERR_VM_CRASHED', `${err.code}: ${err.message}`);
      assert.match(err.message, /destination's VM ended: crashed/);
      const d = await testbed.status('D');
      assert.equal(d.counters['vm.crashed{role="destination"}'], 1);
    } finally {
      await testbed.stop();
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
