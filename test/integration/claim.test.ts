// Patent claim 1 with real processes: 4 device daemons on 127.0.0.1 in a
// diamond, one app (this test) opening two connections to one service. The
// facts are read from the devices' own records (control API), not from the
// demo's text.
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/front/index.ts';
import { startEchoServer, startTestbed } from '../../src/testbed/index.ts';
import type { Testbed } from '../../src/testbed/index.ts';
import { assertClaimFacts, echoBoth } from '../helpers/claim.ts';

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

test('two connections of one app: separate VMs at every hop, different protocols, distinct relays, bytes intact', async () => {
  const control = testbed.device('A').control;
  const first = await connect({ control, to: 'D', service: 'echo', app: 'claim-test' });
  const second = await connect({ control, to: 'D', service: 'echo', app: 'claim-test' });
  await echoBoth([first, second], 300_000);
  const vconns = await assertClaimFacts(testbed, [first.info.connection, second.info.connection]);
  // (c), (f), (i): different protocols, recorded with reasons.
  assert.notEqual(vconns[0]?.protocol, vconns[1]?.protocol);
  assert.match(vconns[1]?.reason ?? '', /avoiding relays/);
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
