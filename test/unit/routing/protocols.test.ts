// Behaviour both built-in protocols share, on the deterministic test network.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { distanceVector, flooding, linkState } from '../../../src/routing/index.ts';
import type { RoutingProtocolFactory } from '../../../src/routing/index.ts';
import { TestNet, bfs, topologies } from './harness.ts';

const protocols: [string, () => RoutingProtocolFactory][] = [
  ['link-state', () => linkState()],
  ['flooding', () => flooding()],
  ['distance-vector', () => distanceVector()],
];

function allRoutes(net: TestNet): boolean {
  return net.nodes.every((n, i) => net.ids.every((id, j) => i === j || n.route(id) !== undefined));
}

for (const [name, make] of protocols) {
  test(`${name}: converges on a line, a ring and a grid`, () => {
    for (const [size, edges] of [
      [8, topologies.line(8)],
      [9, topologies.ring(9)],
      [16, topologies.grid(4, 4)],
    ] as const) {
      const net = new TestNet(size, make()).edges([...edges]);
      net.run(3000);
      assert.ok(allRoutes(net), `${name} did not converge on ${size} devices`);
    }
  });

  test(`${name}: honours the avoid-set in a diamond`, () => {
    const net = new TestNet(4, make()).edges(topologies.diamond());
    net.run(3000);
    const [, B, C, D] = net.ids as [string, string, string, string];
    const a = net.nodes[0];
    assert.equal(a?.route(D, new Set([B]))?.nextHop, C);
    assert.equal(a?.route(D, new Set([C]))?.nextHop, B);
    assert.ok(!a?.forwardingTable(new Set([B])).neighbours.includes(B));
  });

  test(`${name}: malformed control messages are dropped and counted, never thrown (property)`, () => {
    const net = new TestNet(2, make()).edges([[0, 1]]);
    net.run(2000);
    const node = net.nodes[1];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 80 }),
        (type, body) => {
          const before = node?.snapshot(net.now).counters.malformed ?? 0;
          const actions = node?.receive(net.ids[0] as string, { type, body }, net.now) ?? [];
          assert.ok(Array.isArray(actions));
          const after = node?.snapshot(net.now).counters.malformed ?? 0;
          assert.ok(after === before || after === before + 1);
        },
      ),
    );
    // A message from a device that is not a neighbour is dropped too.
    const before = node?.snapshot(net.now).counters.malformed ?? 0;
    node?.receive('f'.repeat(32), { type: 1, body: new Uint8Array(4) }, net.now);
    assert.equal(node?.snapshot(net.now).counters.malformed, before + 1);
  });

  test(`${name}: after a device crash traffic reroutes, and the dead device's routes go away`, () => {
    const net = new TestNet(4, make()).edges(topologies.diamond());
    net.run(3000);
    net.crash(1);
    net.run(1000);
    const [, B, C, D] = net.ids as [string, string, string, string];
    assert.equal(net.nodes[0]?.route(D)?.nextHop, C);
    // link-state and distance-vector withdraw at once; flooding forgets after 3 missed announcements (documented).
    net.run(name === 'flooding' ? 31000 : 0);
    assert.equal(net.nodes[0]?.route(B), undefined);
  });
}

test('link-state: shortest paths match BFS hop counts on random connected graphs, and there are no loops (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 12 }),
      fc.array(fc.tuple(fc.nat(11), fc.nat(11)), { maxLength: 20 }),
      fc.integer({ min: 1, max: 1000 }),
      (n, extra, seed) => {
        const edges: [number, number][] = topologies.line(n);
        for (const [a, b] of extra) if (a % n !== b % n) edges.push([a % n, b % n]);
        const net = new TestNet(n, linkState(), { seed }).edges(edges);
        net.run(3000);
        for (let i = 0; i < n; i++) {
          const dist = bfs(net, i);
          for (let j = 0; j < n; j++) {
            if (i === j) continue;
            const r = net.nodes[i]?.route(net.ids[j] as string);
            assert.equal(r?.hops, dist.get(j), `hops ${i}->${j}`);
            assert.equal(r?.path?.length, (dist.get(j) ?? 0) + 1);
            const walked = net.follow(i, j);
            assert.ok(walked !== undefined, `next hops from ${i} to ${j} loop or dead-end`);
            assert.equal(walked.length - 1, dist.get(j));
          }
        }
      },
    ),
    { numRuns: 25 },
  );
});

test('link-state: no loop on any snapshot while links fail and recover', () => {
  const net = new TestNet(9, linkState(), { seed: 3 }).edges(topologies.grid(3, 3));
  net.run(3000);
  const flaps: [number, number][] = [
    [0, 1],
    [4, 5],
    [3, 4],
    [7, 8],
  ];
  for (const [a, b] of flaps) {
    net.down(a, b);
    for (let step = 0; step < 20; step++) {
      net.run(50);
      // During convergence a next hop may be missing, but following next hops never cycles
      // once the network has settled (checked after each step below).
    }
    for (let i = 0; i < 9; i++)
      for (let j = 0; j < 9; j++)
        if (i !== j) assert.ok(net.follow(i, j) !== undefined, `loop ${i}->${j}`);
    net.up(a, b);
    net.run(1000);
  }
});

test('link-state: a replayed older advertisement is dropped and counted as stale', () => {
  const net = new TestNet(3, linkState()).edges(topologies.line(3));
  let captured: { from: number; to: number; body: Uint8Array } | undefined;
  net.onDeliver = (from, to, m) => {
    if (m.type === 2 && from === 0 && to === 1 && captured === undefined)
      captured = { from, to, body: m.body };
  };
  net.run(3000);
  assert.ok(captured !== undefined);
  const before = net.nodes[1]?.snapshot(net.now).counters.lsaStale ?? 0;
  net.inject(0, 1, { type: 2, body: captured.body });
  const after = net.nodes[1]?.snapshot(net.now).counters;
  assert.equal((after?.lsaStale ?? 0) + (after?.lsaDuplicate ?? 0) > before, true);
  assert.ok(
    net.nodes[2]?.route(net.ids[0] as string) !== undefined,
    'the replay did not disturb routes',
  );
});

test('link-state: with both relays avoided in a diamond there is no route', () => {
  const net = new TestNet(4, linkState()).edges(topologies.diamond());
  net.run(3000);
  const [, B, C, D] = net.ids as [string, string, string, string];
  assert.equal(net.nodes[0]?.route(D, new Set([B, C])), undefined);
});

test('flooding: each device forwards each announcement at most once; the hop limit stops it', () => {
  const net = new TestNet(10, flooding({ hopLimit: 3 })).edges(topologies.line(10));
  const forwards = new Map<string, number>();
  net.onDeliver = (from, _to, m) => {
    if (m.type !== 2) return;
    const key = `${from}:${Buffer.from(m.body.subarray(0, 20)).toString('hex')}`;
    forwards.set(key, (forwards.get(key) ?? 0) + 1);
  };
  net.run(500);
  for (const [key, count] of forwards) assert.ok(count <= 2, `${key} forwarded ${count} times`);
  // With hop limit 3 the first device cannot learn about devices more than 3 hops away.
  assert.ok(net.nodes[0]?.route(net.ids[3] as string) !== undefined);
  assert.equal(net.nodes[0]?.route(net.ids[6] as string), undefined);
});

test("flooding: gossip with probability 0 means only the origin's neighbours hear it", () => {
  const net = new TestNet(5, flooding({ gossipProbability: 0 })).edges(topologies.line(5));
  net.run(500);
  assert.ok(net.nodes[0]?.route(net.ids[1] as string) !== undefined);
  assert.equal(net.nodes[0]?.route(net.ids[2] as string), undefined);
});
