// Failover (patent family: resend after a timeout via another node): a
// relay is SIGKILLed in the middle of a large transfer in a diamond
// (A–B–D, A–C–D); the connection's unacknowledged data goes out again by the
// other relay and the app's stream completes with every byte intact, in
// order, once (sha256 of what came back equals what was sent).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/front/index.ts';
import { startEchoServer, startTestbed, waitFor } from '../../src/testbed/index.ts';
import type { Testbed } from '../../src/testbed/index.ts';

let echo: Awaited<ReturnType<typeof startEchoServer>>;
const dirs: string[] = [];
const testbeds: Testbed[] = [];

before(async () => {
  echo = await startEchoServer();
});

after(async () => {
  for (const t of testbeds) await t.stop();
  await echo?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function diamond(): Promise<Testbed> {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-failover-'));
  dirs.push(dir);
  const testbed = await startTestbed(
    dir,
    [
      { name: 'A', dials: ['B', 'C'] },
      { name: 'B', dials: ['D'] },
      { name: 'C', dials: ['D'] },
      { name: 'D', expose: { echo: echo.address } },
    ],
    { logLevel: 'warn' },
  );
  testbeds.push(testbed);
  await testbed.converged();
  return testbed;
}

for (const protocol of ['link-state', 'distance-vector']) {
  test(
    `${protocol}: a relay killed mid-transfer of 50 MB loses nothing; the stream continues by the other relay`,
    { timeout: 120000 },
    async (t) => {
      const testbed = await diamond();
      const control = testbed.device('A').control;
      const stream = await connect({
        control,
        to: 'D',
        service: 'echo',
        app: `failover-${protocol}`,
        protocol,
      });
      const total = 50 * 1024 * 1024;
      const sent = createHash('sha256');
      const got = createHash('sha256');
      let received = 0;
      const done = new Promise<void>((resolve, reject) => {
        stream.on('data', (c: Buffer) => {
          got.update(c);
          received += c.length;
          if (received >= total) resolve();
        });
        stream.once('error', reject);
      });
      let written = 0;
      const chunk = 64 * 1024;
      const write = (): void => {
        while (written < total) {
          const c = randomBytes(Math.min(chunk, total - written));
          sent.update(c);
          written += c.length;
          if (!stream.write(c)) {
            stream.once('drain', write);
            return;
          }
        }
        stream.end();
      };
      write();
      await waitFor(async () => received > 10 * 1024 * 1024, 60000, '10 MB echoed');
      const a = await testbed.status('A');
      const relay = a.vconns.find((v) => v.connection === stream.info.connection)
        ?.forwardPathNames?.[0];
      assert.ok(relay === 'B' || relay === 'C', `relay ${relay}`);
      const killedAt = performance.now();
      const before = received;
      const resumed = waitFor(async () => received > before, 60000, 'bytes after the kill').then(
        () => performance.now() - killedAt,
      );
      await testbed.kill(relay);
      // Reported, not asserted (timings do not go in tests): how long the stream stalled.
      t.diagnostic(`stream resumed ${(await resumed).toFixed(0)} ms after the relay was killed`);
      await done;
      assert.equal(received, total);
      assert.equal(got.digest('hex'), sent.digest('hex'));
      // The other relay carried the rest: it ran a relay VM for this connection.
      const other = relay === 'B' ? 'C' : 'B';
      const s = await testbed.status(other);
      assert.ok(s.vms.some((v) => v.connection === stream.info.connection && v.role === 'relay'));
    },
  );
}

test(
  "a connection whose relays must differ from its sibling's keeps going by the sibling's relay when its own dies",
  { timeout: 120000 },
  async () => {
    const testbed = await diamond();
    const control = testbed.device('A').control;
    const app = 'failover-diverse';
    const first = await connect({ control, to: 'D', service: 'echo', app, protocol: 'link-state' });
    const second = await connect({
      control,
      to: 'D',
      service: 'echo',
      app,
      protocol: 'distance-vector',
    });
    assert.ok(second.info.avoid.length === 1, `second avoids ${JSON.stringify(second.info.avoid)}`);
    const total = 20 * 1024 * 1024;
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      second.on('data', (c: Buffer) => {
        got.update(c);
        received += c.length;
        if (received >= total) resolve();
      });
      second.once('error', reject);
    });
    let written = 0;
    const write = (): void => {
      while (written < total) {
        const c = randomBytes(Math.min(64 * 1024, total - written));
        sent.update(c);
        written += c.length;
        if (!second.write(c)) {
          second.once('drain', write);
          return;
        }
      }
      second.end();
    };
    write();
    await waitFor(async () => received > 4 * 1024 * 1024, 60000, '4 MB echoed');
    const own = second.info.avoid[0] === 'B' ? 'C' : 'B';
    await testbed.kill(own);
    await done;
    assert.equal(got.digest('hex'), sent.digest('hex'));
    const a = await testbed.status('A');
    const v = a.vconns.find((x) => x.connection === second.info.connection);
    assert.match(v?.reason ?? '', /failover: no route avoided/);
    assert.deepEqual(v?.avoidNames, []);
    // The first connection still works.
    first.end('still here');
    const back: Buffer[] = [];
    for await (const c of first) back.push(c as Buffer);
    assert.equal(Buffer.concat(back).toString(), 'still here');
  },
);
