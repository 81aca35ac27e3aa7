// Patent claim 1 with real processes: 4 device daemons on 127.0.0.1 in a
// diamond, one app (this test) opening two connections to one service. The
// facts are read from the devices' own records (control API), not from the
// demo's text.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/front/index.ts';
import { echoRoundTrip, startEchoServer, startTestbed, waitFor } from '../../src/testbed/index.ts';
import type { DeviceStatus, Testbed } from '../../src/testbed/index.ts';

let testbed: Testbed;
let echo: Awaited<ReturnType<typeof startEchoServer>>;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmesh-claim-'));
  echo = await startEchoServer();
  testbed = await startTestbed(
    dir,
    [
      { name: 'A', dials: ['B', 'C'] },
      { name: 'B', dials: ['D'] },
      { name: 'C', dials: ['D'] },
      { name: 'D', expose: { echo: echo.address } },
    ],
    { logLevel: 'warn' },
  );
  await testbed.converged();
});

after(async () => {
  const codes = await testbed?.stop();
  await echo?.close();
  rmSync(dir, { recursive: true, force: true });
  for (const [name, code] of codes ?? []) assert.equal(code, 0, `device ${name} exit code`);
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('two connections of one app: separate VMs at every hop, different protocols, distinct relays, bytes intact', async () => {
  const control = testbed.device('A').control;
  const first = await connect({ control, to: 'D', service: 'echo', app: 'claim-test' });
  const second = await connect({ control, to: 'D', service: 'echo', app: 'claim-test' });
  const payloads = [randomBytes(300_000), randomBytes(300_000)];
  const echoed = await Promise.all([
    echoRoundTrip(first, payloads[0] as Buffer),
    echoRoundTrip(second, payloads[1] as Buffer),
  ]);
  assert.equal(sha(echoed[0] as Buffer), sha(payloads[0] as Buffer));
  assert.equal(sha(echoed[1] as Buffer), sha(payloads[1] as Buffer));

  const ids = [first.info.connection, second.info.connection];
  const status = new Map<string, DeviceStatus>();
  await waitFor(
    async () => {
      for (const n of ['A', 'B', 'C', 'D']) status.set(n, await testbed.status(n));
      return ids.every(
        (id) =>
          (status.get('A') as DeviceStatus).vconns.find((v) => v.connection === id)
            ?.forwardPathNames !== undefined,
      );
    },
    5000,
    'paths to be recorded',
  );
  const vmsOf = (device: string, role: string): string[] =>
    (status.get(device) as DeviceStatus).vms
      .filter((v) => v.role === role && ids.includes(v.connection))
      .map((v) => v.connection);

  // (b), (d): a VM per connection on the source device.
  assert.deepEqual(vmsOf('A', 'source').sort(), [...ids].sort());
  // (g), (h): one relay VM per connection, on distinct relays.
  const relayOf = ids.map((id) => ['B', 'C'].filter((r) => vmsOf(r, 'relay').includes(id)));
  assert.deepEqual(
    relayOf.map((r) => r.length),
    [1, 1],
    `relay VMs: ${JSON.stringify(relayOf)}`,
  );
  assert.notEqual(relayOf[0]?.[0], relayOf[1]?.[0]);
  // A VM per connection on the destination device.
  assert.deepEqual(vmsOf('D', 'destination').sort(), [...ids].sort());
  // (c), (f), (i): different protocols, recorded with reasons.
  const vconns = ids.map((id) =>
    (status.get('A') as DeviceStatus).vconns.find((v) => v.connection === id),
  );
  assert.notEqual(vconns[0]?.protocol, vconns[1]?.protocol);
  assert.match(vconns[1]?.reason ?? '', /avoiding relays/);
  // The traced paths agree with where the relay VMs ran.
  for (const [i, v] of vconns.entries()) {
    assert.deepEqual(v?.forwardPathNames, [relayOf[i]?.[0], 'D']);
  }
  // Every VM of these connections ran in its own worker thread.
  const threads = ['A', 'B', 'C', 'D'].flatMap((n) =>
    (status.get(n) as DeviceStatus).vms
      .filter((v) => ids.includes(v.connection))
      .map((v) => `${n}:${v.threadId}`),
  );
  assert.equal(new Set(threads).size, threads.length);
});

test('an unknown service and an unknown device are refused with stable codes', async () => {
  const control = testbed.device('A').control;
  await assert.rejects(connect({ control, to: 'D', service: 'nope', app: 'x' }), {
    code: 'VMESH_ERR_UNKNOWN_SERVICE',
  });
  await assert.rejects(connect({ control, to: 'Z', service: 'echo', app: 'x' }), {
    code: 'VMESH_ERR_UNKNOWN_DEVICE',
  });
  await assert.rejects(connect({ control, to: 'D', service: 'echo', app: 'x', protocol: 'nope' }), {
    code: 'VMESH_ERR_UNKNOWN_PROTOCOL',
  });
});

test('the control API refuses malformed requests with VMESH_ERR_BAD_REQUEST and keeps serving', async () => {
  const control = testbed.device('A').control;
  const ask = (line: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = net.connect(control);
      let out = '';
      s.on('data', (c) => (out += c.toString()));
      s.once('end', () => resolve(out));
      s.once('error', reject);
      s.write(line);
    });
  for (const line of [
    'not json\n',
    '{"op":"explode"}\n',
    '{"op":"connect","to":"D"}\n',
    '[1,2,3]\n',
  ]) {
    const reply = JSON.parse(await ask(line)) as { ok: boolean; error: { code: string } };
    assert.equal(reply.ok, false);
    assert.equal(reply.error.code, 'VMESH_ERR_BAD_REQUEST', line);
  }
  const status = await testbed.status('A');
  assert.equal(status.device.name, 'A');
});
