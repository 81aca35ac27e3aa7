// The foundation scenario with every pair of the five protocols: 4 real
// device processes in a diamond (A–B–D, A–C–D), all five protocols enabled;
// for each pair, one app opens a connection by each protocol of the pair.
// Checked from the devices' own records: a source VM on A, one relay VM per
// connection on distinct relays, a destination VM on D, the protocol asked
// for, and every byte echoed intact.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/front/index.ts';
import { builtinProtocols } from '../../src/routing/index.ts';
import { startEchoServer, startTestbed } from '../../src/testbed/index.ts';
import type { Testbed } from '../../src/testbed/index.ts';
import { assertClaimFacts, echoBoth } from '../helpers/claim.ts';

const PROTOCOLS = builtinProtocols().map((d) => d.name);

let testbed: Testbed;
let echo: Awaited<ReturnType<typeof startEchoServer>>;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vmesh-pairs-'));
  echo = await startEchoServer();
  const extra = { protocols: PROTOCOLS };
  testbed = await startTestbed(
    dir,
    [
      { name: 'A', dials: ['B', 'C'], extra },
      { name: 'B', dials: ['D'], extra },
      { name: 'C', dials: ['D'], extra },
      { name: 'D', expose: { echo: echo.address }, extra },
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

test('every device runs all five protocols', async () => {
  const s = await testbed.status('A');
  assert.deepEqual(
    s.routing.map((r) => r.protocol),
    PROTOCOLS,
  );
  assert.equal(PROTOCOLS.length, 5);
});

// Flooding sends each packet to every non-avoided neighbour, so in a pair it goes second:
// avoiding the first connection's relay leaves it exactly one.
const pairs: [string, string][] = [];
for (const [i, p] of PROTOCOLS.entries()) {
  for (const q of PROTOCOLS.slice(i + 1)) pairs.push(p === 'flooding' ? [q, p] : [p, q]);
}

for (const [p, q] of pairs) {
  test(`two connections of one app by ${p} and ${q}: VMs at every hop, distinct relays, bytes intact`, async () => {
    const control = testbed.device('A').control;
    const app = `pair-${p}-${q}`;
    const first = await connect({ control, to: 'D', service: 'echo', app, protocol: p });
    const second = await connect({ control, to: 'D', service: 'echo', app, protocol: q });
    assert.equal(first.info.protocol, p);
    assert.equal(second.info.protocol, q);
    await echoBoth([first, second], 100_000);
    const vconns = await assertClaimFacts(testbed, [first.info.connection, second.info.connection]);
    vconns.forEach((v, i) => assert.equal(v.protocol, [p, q][i]));
    assert.match(vconns[1]?.reason ?? '', /avoiding relays/);
  });
}
