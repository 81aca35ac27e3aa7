// distance-vector (Babel, RFC 8966) on the deterministic test network: convergence,
// the feasibility condition under failures, seqno requests, avoid-sets, limits, codecs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VmeshError } from '../../../src/errors/index.ts';
import {
  DistanceVectorMessage,
  INFINITY,
  decodeHello,
  decodeIhu,
  decodeRouteRequest,
  decodeSeqnoRequest,
  decodeUpdate,
  distanceVector,
  encodeHello,
  encodeIhu,
  encodeRouteRequest,
  encodeSeqnoRequest,
  encodeUpdate,
  seqnoNewer,
  seqnoPlus,
} from '../../../src/routing/distance-vector/index.ts';
import type { DistanceVectorInit } from '../../../src/routing/distance-vector/index.ts';
import type { RoutingAction, RoutingProtocol } from '../../../src/routing/index.ts';
import { TestNet, bfs, idOf, topologies } from './harness.ts';

const deviceId = fc.stringMatching(/^[0-9a-f]{32}$/);

const node = (net: TestNet, i: number): RoutingProtocol => net.nodes[i] as RoutingProtocol;
const id = (net: TestNet, i: number): string => net.ids[i] as string;
/** Counter names this file reads (the snapshot has more). */
type CounterName =
  | 'expired'
  | 'flushed'
  | 'helloLate'
  | 'helloMissed'
  | 'malformed'
  | 'rateLimited'
  | 'requestDuplicate'
  | 'requests'
  | 'retractionSent'
  | 'routes'
  | 'seqno'
  | 'seqnoBumped'
  | 'seqnoRequestForwarded'
  | 'seqnoRequestSent'
  | 'sourceGc'
  | 'sources'
  | 'sourceTableFull'
  | 'tableFull'
  | 'updateStale';
const counters = (net: TestNet, i: number): Record<CounterName, number> =>
  node(net, i).snapshot(net.now).counters as Record<CounterName, number>;

/** Follows next hops, telling a loop from a dead end (net.follow conflates them). */
function walk(
  net: TestNet,
  from: number,
  to: number,
  avoid?: ReadonlySet<string>,
): number[] | 'loop' | 'dead' {
  const path = [from];
  let at = from;
  while (at !== to) {
    const next = node(net, at).forwardingTable(avoid).nextHops[id(net, to)];
    if (next === undefined) return 'dead';
    at = net.ids.indexOf(next);
    if (path.includes(at)) return 'loop';
    path.push(at);
  }
  return path;
}

function assertNoLoops(net: TestNet, avoid?: ReadonlySet<string>, where = ''): void {
  for (let i = 0; i < net.nodes.length; i++) {
    for (let j = 0; j < net.nodes.length; j++) {
      if (i !== j)
        assert.notEqual(walk(net, i, j, avoid), 'loop', `loop ${i}->${j} at ${net.now} ${where}`);
    }
  }
}

function assertShortest(net: TestNet): void {
  for (let i = 0; i < net.nodes.length; i++) {
    const dist = bfs(net, i);
    for (let j = 0; j < net.nodes.length; j++) {
      if (i === j) continue;
      const r = node(net, i).route(id(net, j));
      assert.equal(r?.hops, dist.get(j), `hops ${i}->${j}`);
      assert.equal(r?.cost, dist.get(j), `cost ${i}->${j}`);
      const path = walk(net, i, j);
      assert.ok(Array.isArray(path), `next hops ${i}->${j}: ${String(path)}`);
      assert.equal(path.length - 1, dist.get(j));
    }
  }
}

/** Records every update about `origin` delivered from now on. */
function watchUpdates(net: TestNet, origin: string): { at: number; metric: number }[] {
  const seen: { at: number; metric: number }[] = [];
  net.onDeliver = (_from, _to, m) => {
    if (m.type !== DistanceVectorMessage.UPDATE) return;
    const u = decodeUpdate(m.body);
    if (u.origin === origin) seen.push({ at: net.now, metric: u.metric });
  };
  return seen;
}

/** The empty claim of the null signer. */
const claim = { keys: new Uint8Array(0), signature: new Uint8Array(0) };
// ---- convergence ---------------------------------------------------------------------

test('converges to shortest paths on a line, a ring and a grid', () => {
  for (const [size, edges] of [
    [8, topologies.line(8)],
    [9, topologies.ring(9)],
    [16, topologies.grid(4, 4)],
  ] as const) {
    const net = new TestNet(size, distanceVector()).edges([...edges]);
    net.run(3000);
    assertShortest(net);
    assertNoLoops(net);
  }
});

test('converges to shortest paths on random connected graphs, never looping on the way (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 3, max: 10 }),
      fc.array(fc.tuple(fc.nat(9), fc.nat(9)), { maxLength: 15 }),
      fc.integer({ min: 1, max: 1000 }),
      (n, extra, seed) => {
        const edges: [number, number][] = topologies.line(n);
        for (const [a, b] of extra) if (a % n !== b % n) edges.push([a % n, b % n]);
        const net = new TestNet(n, distanceVector(), { seed }).edges(edges);
        for (let t = 0; t < 30; t++) {
          net.run(20);
          assertNoLoops(net);
        }
        net.run(2400);
        assertShortest(net);
      },
    ),
    { numRuns: 15 },
  );
});

test('link costs from linkUp are summed into the metric', () => {
  // 0-1-2 with costs 5 and 7, and a direct 0-2 link of cost 20.
  const net = new TestNet(3, distanceVector());
  net.up(0, 1, 5);
  net.up(1, 2, 7);
  net.up(0, 2, 20);
  net.run(3000);
  const r = node(net, 0).route(id(net, 2));
  assert.equal(r?.nextHop, id(net, 1));
  assert.equal(r?.cost, 12);
  assert.equal(r?.hops, 2);
  const before = node(net, 0).route(id(net, 2));
  net.apply(0, node(net, 0).linkCost(id(net, 1), 50, net.now));
  net.run(1000);
  assert.notDeepEqual(node(net, 0).route(id(net, 2)), before);
  assert.equal(node(net, 0).route(id(net, 2))?.nextHop, id(net, 2));
  assert.equal(node(net, 0).route(id(net, 2))?.cost, 20);
});

// ---- neighbour acquisition and link quality (§3.4, Appendix A) -------------------------

test('a lossy link costs more (ETX), and (countLateHellos) a silent one is dropped after 2 of 3 missed Hellos', () => {
  // Nominal cost 10 on every link, so the loss factor shows after rounding.
  const net = new TestNet(4, distanceVector({ countLateHellos: true }));
  for (const [a, b] of topologies.diamond()) net.up(a, b, 10);
  net.run(3000);
  const [B, C, D] = [1, 2, 3].map((i) => id(net, i));
  const linkTo = (dev: string | undefined) =>
    node(net, 0)
      .snapshot(net.now)
      .neighbours.find((n) => n.device === dev);
  assert.equal(linkTo(B)?.cost, 10);
  // Drop every third Hello from B to A: beta about 2/3 over the 16-Hello history,
  // rxcost about 256 * 3/2, so the link metric is about 10 * 1.5.
  let hellos = 0;
  net.drop = (from, to, m) =>
    from === 1 && to === 0 && m.type === DistanceVectorMessage.HELLO && ++hellos % 3 === 0;
  net.run(20000);
  const lossy = linkTo(B);
  assert.ok(lossy !== undefined && lossy.cost >= 14 && lossy.cost <= 17, `cost ${lossy?.cost}`);
  assert.equal(lossy.state, 'bidirectional');
  assert.equal(node(net, 0).route(D as string)?.nextHop, C, 'A prefers the clean path via C');
  assert.equal(node(net, 0).route(D as string)?.cost, 20);
  // Now B falls silent towards A (no linkDown from the driver).
  net.drop = (from, to) => from === 1 && to === 0;
  net.run(3000);
  const dead = node(net, 0)
    .snapshot(net.now)
    .neighbours.find((n) => n.device === B);
  assert.equal(dead?.cost, INFINITY);
  assert.equal(
    node(net, 0)
      .forwardingTable()
      .neighbours.includes(B as string),
    false,
  );
  assert.equal(node(net, 0).route(B as string)?.nextHop, C);
  assert.ok(counters(net, 0).helloMissed >= 2);
  assertNoLoops(net);
});

test('without IHUs the link is not known bidirectional: txcost expires after 3.5 IHU intervals', () => {
  const net = new TestNet(3, distanceVector()).edges([
    [0, 1],
    [1, 2],
    [0, 2],
  ]);
  net.run(3000);
  assert.equal(node(net, 0).route(id(net, 1))?.nextHop, id(net, 1));
  // 1 keeps sending Hellos to 0, but its IHUs are lost.
  net.drop = (from, to, m) => from === 1 && to === 0 && m.type === DistanceVectorMessage.IHU;
  net.run(9000);
  assert.equal(node(net, 0).route(id(net, 1))?.nextHop, id(net, 1), 'still within the hold');
  net.run(3000);
  const link = node(net, 0)
    .snapshot(net.now)
    .neighbours.find((n) => n.device === id(net, 1));
  assert.equal(link?.state, 'heard');
  assert.equal(node(net, 0).route(id(net, 1))?.nextHop, id(net, 2));
  assertNoLoops(net);
  net.drop = undefined;
  net.run(4000);
  assert.equal(node(net, 0).route(id(net, 1))?.nextHop, id(net, 1), 'back once IHUs flow');
});

test('a Hello history survives a late Hello and a replayed one without error', () => {
  const net = new TestNet(2, distanceVector()).edges([[0, 1]]);
  let captured: Uint8Array | undefined;
  net.onDeliver = (from, _to, m) => {
    if (from === 0 && m.type === DistanceVectorMessage.HELLO) captured = m.body;
  };
  net.run(3000);
  assert.ok(captured !== undefined);
  const before = counters(net, 1).helloLate;
  net.inject(0, 1, { type: DistanceVectorMessage.HELLO, body: captured });
  assert.equal(counters(net, 1).helloLate, before + 1);
  assert.equal(node(net, 1).snapshot(net.now).neighbours[0]?.cost, 1);
});

// ---- the feasibility condition: no counting to infinity (§3.5.1) -----------------------

function failureRun(
  size: number,
  edges: [number, number][],
  fail: (net: TestNet) => void,
  dest: number,
): { net: TestNet; seen: { at: number; metric: number }[]; maxBefore: number; goneAfter: number } {
  const net = new TestNet(size, distanceVector(), { seed: 11 }).edges(edges);
  net.run(3000);
  let maxBefore = 0;
  for (let i = 0; i < size; i++) {
    if (i !== dest) maxBefore = Math.max(maxBefore, node(net, i).route(id(net, dest))?.cost ?? 0);
  }
  const seen = watchUpdates(net, id(net, dest));
  const check = net.onDeliver;
  net.onDeliver = (from, to, m) => {
    check?.(from, to, m);
    assertNoLoops(net);
  };
  const failedAt = net.now;
  fail(net);
  assertNoLoops(net);
  let goneAfter = Infinity;
  for (let t = 0; t < 400; t++) {
    net.run(5);
    assertNoLoops(net);
    const gone = net.nodes.every((x, i) => i === dest || x.route(id(net, dest)) === undefined);
    if (gone && goneAfter === Infinity) goneAfter = net.now - failedAt;
    if (!gone) goneAfter = Infinity;
  }
  return { net, seen, maxBefore, goneAfter };
}

test('line A-B-C-D, D dies: routes to D are retracted at once, nobody counts to infinity, no loop', () => {
  const { net, seen, maxBefore, goneAfter } = failureRun(
    4,
    topologies.line(4),
    (n) => n.crash(3),
    3,
  );
  assert.ok(goneAfter <= 30, `routes to D gone for good after ${goneAfter} ms`);
  for (let i = 0; i < 3; i++) assert.equal(node(net, i).route(id(net, 3)), undefined, `${i}`);
  const finite = seen.filter((s) => s.metric < INFINITY);
  assert.ok(
    finite.every((s) => s.metric <= maxBefore),
    `metrics grew after the failure: ${JSON.stringify(finite)}`,
  );
  assert.ok(
    seen.some((s) => s.metric === INFINITY),
    'a retraction was sent',
  );
  // Retracted within a few message delays, not after route expiry.
  const lastFinite = Math.max(0, ...finite.map((s) => s.at));
  assert.ok(lastFinite <= 3000 + 50, `finite updates until ${lastFinite}`);
});

test('triangle with a tail, the tail dies: no router counts to infinity, no loop on any step', () => {
  // A=0, B=1, C=2 in a triangle, D=3 hangs off C.
  const edges: [number, number][] = [
    [0, 1],
    [1, 2],
    [0, 2],
    [2, 3],
  ];
  const { net, seen, maxBefore, goneAfter } = failureRun(4, edges, (n) => n.down(2, 3), 3);
  assert.ok(goneAfter <= 30, `routes to D gone for good after ${goneAfter} ms`);
  for (let i = 0; i < 3; i++) assert.equal(node(net, i).route(id(net, 3)), undefined);
  assert.ok(seen.filter((s) => s.metric < INFINITY).every((s) => s.metric <= maxBefore));
  assert.ok(
    seen.length < 40,
    `updates about D after the failure stay few (${seen.length}); no counting`,
  );
  // Routes to D never come back while it stays cut off.
  net.run(60000);
  for (let i = 0; i < 3; i++) assert.equal(node(net, i).route(id(net, 3)), undefined);
  assertNoLoops(net);
});

test('no loop while links fail and recover in a grid, with and without avoid-sets', () => {
  const net = new TestNet(9, distanceVector(), { seed: 3 }).edges(topologies.grid(3, 3));
  net.run(3000);
  const avoids = [undefined, new Set([id(net, 4)]), new Set([id(net, 1), id(net, 5)])];
  const flaps: [number, number][] = [
    [0, 1],
    [4, 5],
    [3, 4],
    [7, 8],
    [1, 4],
  ];
  for (const [a, b] of flaps) {
    net.down(a, b);
    for (let step = 0; step < 60; step++) {
      net.run(10);
      for (const avoid of avoids) assertNoLoops(net, avoid, `after ${a}-${b} down`);
    }
    net.up(a, b);
    for (let step = 0; step < 30; step++) {
      net.run(20);
      for (const avoid of avoids) assertNoLoops(net, avoid, `after ${a}-${b} up`);
    }
  }
  net.run(5000);
  assertShortest(net);
});

// ---- seqno requests (§3.8) ---------------------------------------------------------------

test('starvation: a seqno request, forwarded to the origin, restores a route that only the feasibility condition blocked', () => {
  // D=0, A=1, B=2, C=3: D-A-B-C with cost 1 each, and C-D of cost 10.
  const net = new TestNet(4, distanceVector(), { seed: 5 });
  net.up(0, 1);
  net.up(1, 2);
  net.up(2, 3);
  net.up(3, 0, 10);
  net.run(3000);
  const D = id(net, 0);
  assert.equal(node(net, 1).route(D)?.nextHop, D);
  assert.equal(node(net, 2).route(D)?.nextHop, id(net, 1));
  assert.equal(node(net, 3).route(D)?.nextHop, id(net, 2));
  const seqnoBefore = counters(net, 0).seqno as number;
  net.onDeliver = () => assertNoLoops(net);
  net.down(0, 1);
  // B's only other route (via C, metric 10 + 1) is unfeasible: B advertised 2.
  // Without a new seqno from D it would stay unreachable until its source entry is collected.
  net.run(200);
  const a = node(net, 1).route(D);
  assert.equal(a?.nextHop, id(net, 2), 'A reaches D again through B');
  assert.equal(a?.hops, 3);
  assert.equal(a?.cost, 12);
  assert.equal(node(net, 2).route(D)?.nextHop, id(net, 3));
  assert.equal(counters(net, 0).seqno, seqnoPlus(seqnoBefore, 1), 'D increased its seqno once');
  assert.equal(counters(net, 0).seqnoBumped, 1);
  assert.ok(counters(net, 3).seqnoRequestForwarded >= 1, 'C forwarded the request to D');
  assert.deepEqual(walk(net, 1, 0), [1, 2, 3, 0]);
});

test('duplicate seqno requests are suppressed, and a request with hop count 1 is not forwarded', () => {
  const net = new TestNet(3, distanceVector()).edges(topologies.line(3));
  net.run(3000);
  const origin = id(net, 2);
  const seqno = counters(net, 2).seqno as number;
  const body = encodeSeqnoRequest({ seqno: seqnoPlus(seqno, 1), hopCount: 1, origin });
  const sent = net.sentBy[1] as number;
  net.inject(0, 1, { type: DistanceVectorMessage.SEQNO_REQUEST, body });
  assert.equal(net.sentBy[1], sent, 'hop count 1: not forwarded');
  const fwd = encodeSeqnoRequest({ seqno: seqnoPlus(seqno, 1), hopCount: 5, origin });
  net.inject(0, 1, { type: DistanceVectorMessage.SEQNO_REQUEST, body: fwd });
  net.inject(0, 1, { type: DistanceVectorMessage.SEQNO_REQUEST, body: fwd });
  assert.equal(counters(net, 1).seqnoRequestForwarded, 1);
  assert.equal(counters(net, 1).requestDuplicate, 1);
  net.run(50);
  assert.equal(counters(net, 2).seqno, seqnoPlus(seqno, 1));
  assert.equal(node(net, 0).route(origin)?.nextHop, id(net, 1));
});

test('a restarted device whose old seqno is newer is reachable again after one seqno request', () => {
  const net = new TestNet(3, distanceVector(), { seed: 9 }).edges(topologies.line(3));
  net.run(3000);
  // Device 2 restarts: a fresh instance whose random seqno is older than its last one,
  // while device 1 still holds the feasibility distance of the old life.
  const old = counters(net, 2).seqno as number;
  net.crash(2);
  net.run(100);
  const older = seqnoPlus(old, -1000);
  const fresh = distanceVector()({ self: id(net, 2), random: () => older / 0x10000 });
  net.nodes[2] = fresh;
  net.apply(2, fresh.start(net.now));
  assert.equal(fresh.snapshot(net.now).counters.seqno, older);
  assert.ok(seqnoNewer(old, older));
  net.up(1, 2);
  net.run(3000);
  assert.equal(node(net, 0).route(id(net, 2))?.nextHop, id(net, 1));
  assert.equal(node(net, 1).route(id(net, 2))?.nextHop, id(net, 2));
  assert.equal(fresh.snapshot(net.now).counters.seqno, seqnoPlus(old, 1));
  assertNoLoops(net);
});

test('route requests: wildcard answered with a dump (rate-limited), specific with an update or a retraction', () => {
  const net = new TestNet(3, distanceVector()).edges(topologies.line(3));
  net.run(3000);
  const captured: RoutingAction[] = [];
  const wildcard = { type: DistanceVectorMessage.ROUTE_REQUEST, body: encodeRouteRequest({}) };
  captured.push(...node(net, 1).receive(id(net, 0), wildcard, net.now));
  const sends = captured.filter((a) => a.type === 'send');
  // Its own route and the route to 2 (the route to 0 goes via 0: split horizon).
  assert.deepEqual(
    sends.map((a) => (a.type === 'send' ? decodeUpdate(a.message.body).origin : '')).sort(),
    [id(net, 1), id(net, 2)].sort(),
  );
  assert.deepEqual(node(net, 1).receive(id(net, 0), wildcard, net.now), []);
  assert.equal(counters(net, 1).rateLimited, 1);
  const unknown = 'e'.repeat(32);
  const answer = node(net, 1).receive(
    id(net, 0),
    { type: DistanceVectorMessage.ROUTE_REQUEST, body: encodeRouteRequest({ origin: unknown }) },
    net.now,
  );
  assert.equal(answer.length, 1);
  const a0 = answer[0];
  assert.ok(a0?.type === 'send');
  assert.equal(decodeUpdate(a0.message.body).metric, INFINITY);
  const known = node(net, 1).receive(
    id(net, 0),
    { type: DistanceVectorMessage.ROUTE_REQUEST, body: encodeRouteRequest({ origin: id(net, 2) }) },
    net.now,
  );
  assert.ok(known[0]?.type === 'send');
  assert.equal(decodeUpdate(known[0].message.body).metric, 1);
});

// ---- sending updates (§3.7) ----------------------------------------------------------------

test('triggered retraction: a lost route is retracted at once, not left to expire', () => {
  const net = new TestNet(3, distanceVector()).edges(topologies.line(3));
  net.run(3000);
  const seen = watchUpdates(net, id(net, 2));
  const changes: RoutingAction[] = [];
  changes.push(...node(net, 1).linkDown(id(net, 2), net.now));
  // The usable neighbour set changed too, so routesChanged names no destination (all of them).
  assert.ok(
    changes.some(
      (a) =>
        a.type === 'routesChanged' &&
        (a.destinations === undefined || a.destinations.includes(id(net, 2))),
    ),
    'routesChanged reported',
  );
  const retraction = changes.find(
    (a) => a.type === 'broadcast' && decodeUpdate(a.message.body).metric === INFINITY,
  );
  assert.ok(retraction !== undefined, 'a retraction is broadcast');
  // Deliver them through the harness (take the link down there too).
  net.apply(1, changes);
  net.down(1, 2);
  net.run(20);
  assert.ok(seen.some((s) => s.metric === INFINITY));
  assert.equal(node(net, 0).route(id(net, 2)), undefined, 'device 0 learnt within one delay');
  assert.ok(counters(net, 1).retractionSent >= 1);
});

test('routes expire when their updates stop (3.5 update intervals), and sources are collected later', () => {
  const net = new TestNet(2, distanceVector({ updateIntervalMs: 1000, sourceGcMs: 8000 })).edges([
    [0, 1],
  ]);
  net.run(2000);
  // A fake origin heard once from 0 and never refreshed.
  const fake = 'a'.repeat(32);
  net.inject(0, 1, {
    type: DistanceVectorMessage.UPDATE,
    body: encodeUpdate({ intervalCs: 100, seqno: 7, metric: 3, hops: 2, origin: fake, claim }),
  });
  assert.equal(node(net, 1).route(fake)?.cost, 4);
  net.run(3400);
  assert.equal(node(net, 1).route(fake)?.cost, 4);
  net.run(200);
  assert.equal(node(net, 1).route(fake), undefined, 'expired after 3.5 s');
  assert.ok(counters(net, 1).expired >= 1);
  net.run(4000);
  assert.ok(counters(net, 1).flushed >= 1);
  assert.equal(counters(net, 1).routes, 1, 'only the route to 0 is left');
  net.run(8000);
  assert.ok(counters(net, 1).sourceGc >= 1);
});

test('stale updates (older seqno from the same neighbour) are dropped and counted', () => {
  const net = new TestNet(2, distanceVector()).edges([[0, 1]]);
  net.run(3000);
  const fake = 'b'.repeat(32);
  const upd = (seqno: number, metric: number): void =>
    net.inject(0, 1, {
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({ intervalCs: 400, seqno, metric, hops: 1, origin: fake, claim }),
    });
  upd(10, 5);
  upd(9, 1);
  assert.equal(counters(net, 1).updateStale, 1);
  assert.equal(node(net, 1).route(fake)?.cost, 6);
  // A worse metric with the same seqno from the selected neighbour is unfeasible: ignored, and a
  // seqno request goes out.
  const before = counters(net, 1).seqnoRequestSent;
  upd(10, 9);
  assert.equal(node(net, 1).route(fake)?.cost, 6);
  assert.ok(counters(net, 1).seqnoRequestSent > before);
  // A newer seqno is always feasible.
  upd(seqnoPlus(10, 1), 9);
  assert.equal(node(net, 1).route(fake)?.cost, 10);
});

// ---- avoid-sets ------------------------------------------------------------------------------

test('avoid-set in a diamond: never an avoided next hop; no route when both relays are avoided', () => {
  const net = new TestNet(4, distanceVector()).edges(topologies.diamond());
  net.run(3000);
  const [A, B, C, D] = [0, 1, 2, 3].map((i) => id(net, i)) as [string, string, string, string];
  const a = node(net, 0);
  assert.equal(a.route(D, new Set([B]))?.nextHop, C);
  assert.equal(a.route(D, new Set([C]))?.nextHop, B);
  assert.equal(a.route(D, new Set([B, C])), undefined);
  assert.equal(a.forwardingTable(new Set([B, C])).nextHops[D], undefined);
  assert.ok(!a.forwardingTable(new Set([B])).neighbours.includes(B));
  // The destination itself may be in the avoid-set.
  assert.equal(a.route(B, new Set([B]))?.nextHop, B);
  // Relays honour the same avoid-set: the walk from A to D avoiding B goes A-C-D.
  assert.deepEqual(walk(net, 0, 3, new Set([B])), [0, 2, 3]);
  assert.deepEqual(walk(net, 0, 3, new Set([C])), [0, 1, 3]);
  assert.deepEqual(walk(net, 3, 0, new Set([B])), [3, 2, 0]);
  assert.equal(a.route(A), undefined, 'no route to self');
});

test('avoid-set: a relay whose only feasible routes go through avoided devices has no route (no loop)', () => {
  // Diamond with an expensive C-D link: A=0, B=1, C=2, D=3; 0-1, 1-3, 0-2 cost 1; 2-3 cost 5.
  const net = new TestNet(4, distanceVector());
  net.up(0, 1);
  net.up(1, 3);
  net.up(0, 2);
  net.up(2, 3, 5);
  net.run(3000);
  const [B, D] = [id(net, 1), id(net, 3)];
  assert.equal(node(net, 0).route(D)?.cost, 2);
  // A's feasibility distance to D is 2; C reaches D via A (3) or directly (5): neither
  // advertised metric is below 2, so A has no feasible route avoiding B.
  assert.equal(node(net, 0).route(D, new Set([B])), undefined);
  assert.equal(walk(net, 0, 3, new Set([B])), 'dead');
  // C itself has its direct link: avoiding A it goes straight to D.
  assert.equal(node(net, 2).route(D, new Set([id(net, 0)]))?.nextHop, D);
  assertNoLoops(net, new Set([B]));
});

test('avoid-sets never loop on random graphs with churn (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 4, max: 9 }),
      fc.array(fc.tuple(fc.nat(8), fc.nat(8)), { minLength: 2, maxLength: 12 }),
      fc.array(fc.nat(8), { maxLength: 3 }),
      fc.array(fc.tuple(fc.nat(20), fc.boolean()), { maxLength: 6 }),
      fc.integer({ min: 1, max: 1000 }),
      (n, extra, avoided, churn, seed) => {
        const edges: [number, number][] = topologies.ring(n);
        for (const [a, b] of extra) if (a % n !== b % n) edges.push([a % n, b % n]);
        const net = new TestNet(n, distanceVector(), { seed }).edges(edges);
        const avoid = new Set(avoided.map((i) => id(net, i % n)));
        net.run(2000);
        for (const [e, up] of churn) {
          const [a, b] = edges[e % edges.length] as [number, number];
          if (up) net.up(a, b);
          else net.down(a, b);
          for (let step = 0; step < 10; step++) {
            net.run(15);
            assertNoLoops(net, avoid);
            assertNoLoops(net);
          }
        }
        for (let i = 0; i < n; i++) {
          for (const d of avoid) {
            const next = node(net, i).forwardingTable(avoid).nextHops;
            for (const [dest, hop] of Object.entries(next))
              assert.ok(hop !== d || dest === d, `${i} uses avoided ${d}`);
          }
        }
      },
    ),
    { numRuns: 15 },
  );
});

// ---- robustness and limits -------------------------------------------------------------

test('malformed and foreign messages are dropped and counted, never thrown (property)', () => {
  const net = new TestNet(2, distanceVector()).edges([[0, 1]]);
  net.run(2000);
  const n1 = node(net, 1);
  const decoders: Record<number, (b: Uint8Array) => unknown> = {
    1: decodeHello,
    2: decodeIhu,
    3: decodeUpdate,
    4: decodeRouteRequest,
    5: decodeSeqnoRequest,
  };
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.uint8Array({ maxLength: 40 }),
      (type, body) => {
        const before = n1.snapshot(net.now).counters.malformed ?? 0;
        const actions = n1.receive(id(net, 0), { type, body }, net.now);
        assert.ok(Array.isArray(actions));
        const after = n1.snapshot(net.now).counters.malformed ?? 0;
        let valid = true;
        try {
          const d = decoders[type];
          if (d === undefined) valid = false;
          else d(body);
        } catch {
          valid = false;
        }
        assert.equal(after, valid ? before : before + 1);
      },
    ),
  );
  // From a device that is not a neighbour: dropped, even when well formed.
  const before = counters(net, 1).malformed;
  const stranger = 'f'.repeat(32);
  const hello = { type: 1, body: encodeHello({ seqno: 1, intervalCs: 100 }) };
  assert.deepEqual(n1.receive(stranger, hello, net.now), []);
  assert.equal(counters(net, 1).malformed, before + 1);
  // Routes were not disturbed by the noise... the link to 0 still works after a while.
  net.run(5000);
  assert.equal(n1.route(id(net, 0))?.nextHop, id(net, 0));
});

test('a storm of updates for many distinct destinations is capped, drops counted', () => {
  const opts: DistanceVectorInit = { maxRoutes: 100, maxSources: 60, maxRequests: 10 };
  const net = new TestNet(3, distanceVector(opts)).edges(topologies.line(3));
  net.run(2000);
  const existing = counters(net, 1).routes as number;
  const storm = 5000;
  for (let i = 0; i < storm; i++) {
    const origin = (0xf000000 + i).toString(16).padStart(32, 'c');
    net.inject(0, 1, {
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({
        intervalCs: 400,
        seqno: i & 0xffff,
        metric: 1,
        hops: 1,
        origin,
        claim,
      }),
    });
  }
  const c = counters(net, 1);
  assert.equal(c.routes, 100);
  assert.equal(c.tableFull, storm - (100 - existing));
  assert.ok((c.sources as number) <= 60);
  assert.ok((c.sourceTableFull as number) > 0);
  // Seqno requests for fake origins cannot grow past their cap either.
  for (let i = 0; i < 50; i++) {
    const origin = (0xe000000 + i).toString(16).padStart(32, 'c');
    net.inject(0, 1, {
      type: DistanceVectorMessage.SEQNO_REQUEST,
      body: encodeSeqnoRequest({ seqno: 1, hopCount: 10, origin }),
    });
  }
  assert.ok((counters(net, 1).requests as number) <= 10);
  // Real routes still work and everything drains once the storm's routes expire.
  assert.equal(node(net, 2).route(id(net, 0))?.nextHop, id(net, 1));
  net.run(40000);
  assert.equal(counters(net, 1).routes, existing);
  assert.equal(node(net, 2).route(id(net, 0))?.nextHop, id(net, 1));
});

test('routesChanged names the destinations whose routes changed', () => {
  const net = new TestNet(4, distanceVector()).edges(topologies.line(4));
  net.run(3000);
  const actions = node(net, 1).linkDown(id(net, 2), net.now);
  const rc = actions.filter((a) => a.type === 'routesChanged');
  assert.equal(rc.length, 1);
  const first = rc[0];
  assert.ok(first?.type === 'routesChanged');
  // The usable neighbour set changed too, so the table as a whole is reported.
  assert.equal(first.destinations, undefined);
  // A later change of only some routes names them.
  const net2 = new TestNet(3, distanceVector()).edges(topologies.line(3));
  net2.run(3000);
  const fake = 'd'.repeat(32);
  const out = node(net2, 1).receive(
    id(net2, 0),
    {
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({ intervalCs: 400, seqno: 1, metric: 2, hops: 2, origin: fake, claim }),
    },
    net2.now,
  );
  const change = out.find((a) => a.type === 'routesChanged');
  assert.deepEqual(change?.type === 'routesChanged' ? change.destinations : undefined, [fake]);
  assert.deepEqual(node(net2, 1).receive(id(net2, 0), { type: 1, body: new Uint8Array(1) }, 0), []);
});

test('bad options are refused', () => {
  const make = (init: DistanceVectorInit) => () =>
    distanceVector(init)({ self: idOf(1), random: () => 0.5 });
  assert.throws(make({ helloIntervalMs: 0 }), { code: 'VMESH_ERR_CONFIG' });
  assert.throws(make({ maxRoutes: 0 }), { code: 'VMESH_ERR_CONFIG' });
  assert.throws(make({ seqnoRequestHopCount: 256 }), { code: 'VMESH_ERR_CONFIG' });
  assert.throws(make({ updateIntervalMs: 60000, sourceGcMs: 60000 }), {
    code: 'VMESH_ERR_CONFIG',
  });
  assert.equal(make({})().name, 'distance-vector');
  assert.equal(make({})().id, 3);
  assert.equal(make({})().mode, 'unicast');
  assert.equal(make({})().reactive, undefined);
});

// ---- codecs ---------------------------------------------------------------------------------

const u16 = fc.integer({ min: 0, max: 0xffff });
const positiveU16 = fc.integer({ min: 1, max: 0xffff });

const codecs = [
  {
    name: 'HELLO',
    arb: fc.record({ seqno: u16, intervalCs: positiveU16 }),
    encode: encodeHello,
    decode: decodeHello,
  },
  {
    name: 'IHU',
    arb: fc.record({ rxcost: positiveU16, intervalCs: positiveU16 }),
    encode: encodeIhu,
    decode: decodeIhu,
  },
  {
    name: 'UPDATE',
    arb: fc
      .record({
        intervalCs: positiveU16,
        seqno: u16,
        metric: u16,
        hops: fc.integer({ min: 0, max: 255 }),
        origin: deviceId,
        claim: fc.record(
          { keys: fc.uint8Array({ maxLength: 64 }), signature: fc.uint8Array({ maxLength: 64 }) },
          { noNullPrototype: true },
        ),
      })
      // A retraction carries no claim.
      .map((m) => (m.metric === INFINITY ? { ...m, claim } : m)),
    encode: encodeUpdate,
    decode: decodeUpdate,
  },
  {
    name: 'ROUTE_REQUEST',
    arb: fc.oneof(fc.constant({}), fc.record({ origin: deviceId })),
    encode: encodeRouteRequest,
    decode: decodeRouteRequest,
  },
  {
    name: 'SEQNO_REQUEST',
    arb: fc.record({ seqno: u16, hopCount: fc.integer({ min: 1, max: 255 }), origin: deviceId }),
    encode: encodeSeqnoRequest,
    decode: decodeSeqnoRequest,
  },
] as const;

for (const c of codecs) {
  test(`${c.name}: decode(encode(m)) = m; arbitrary bytes decode or throw VMESH_ERR_MALFORMED, and re-encode exactly (property)`, () => {
    const encode = c.encode as (m: unknown) => Buffer;
    const decodeFn = c.decode as (b: Uint8Array) => unknown;
    fc.assert(
      fc.property(c.arb as fc.Arbitrary<unknown>, (m) => {
        assert.deepEqual(decodeFn(encode(m)), { ...(m as object) });
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 48 }), (bytes) => {
        let m: unknown;
        try {
          m = decodeFn(bytes);
        } catch (e) {
          assert.ok(e instanceof VmeshError, String(e));
          assert.equal(e.code, 'VMESH_ERR_MALFORMED');
          return;
        }
        assert.deepEqual(new Uint8Array(encode(m)), bytes);
      }),
    );
  });
}

test('codecs: lengths are exact, limits are checked on encode', () => {
  assert.equal(encodeHello({ seqno: 1, intervalCs: 100 }).length, 4);
  assert.equal(encodeIhu({ rxcost: 256, intervalCs: 300 }).length, 4);
  const origin = idOf(7);
  assert.equal(
    encodeUpdate({ intervalCs: 1, seqno: 0, metric: 0, hops: 0, origin, claim }).length,
    25,
  );
  const signed = { keys: new Uint8Array(64), signature: new Uint8Array(64) };
  const update = { intervalCs: 1, seqno: 0, metric: 0, hops: 0, origin, claim: signed };
  assert.equal(encodeUpdate(update).length, 25 + 128);
  // A retraction claims nothing: a claim in one is malformed both ways.
  assert.throws(() => encodeUpdate({ ...update, metric: INFINITY }), {
    code: 'VMESH_ERR_MALFORMED',
  });
  const retraction = encodeUpdate({ ...update, metric: INFINITY, claim });
  const withClaim = Buffer.concat([retraction.subarray(0, 23), Buffer.of(1, 7, 0)]);
  assert.throws(() => decodeUpdate(withClaim), { code: 'VMESH_ERR_MALFORMED' });
  assert.throws(
    () => encodeUpdate({ ...update, claim: { ...signed, keys: new Uint8Array(256) } }),
    {
      code: 'VMESH_ERR_MALFORMED',
    },
  );
  assert.equal(encodeRouteRequest({}).length, 1);
  assert.equal(encodeRouteRequest({ origin }).length, 17);
  assert.equal(encodeSeqnoRequest({ seqno: 0, hopCount: 1, origin }).length, 19);
  assert.throws(() => decodeHello(new Uint8Array([0, 1, 0, 0])), { code: 'VMESH_ERR_MALFORMED' });
  assert.throws(() => decodeIhu(new Uint8Array([0, 0, 0, 1])), { code: 'VMESH_ERR_MALFORMED' });
  assert.throws(() => decodeRouteRequest(new Uint8Array([2])), { code: 'VMESH_ERR_MALFORMED' });
  assert.throws(() => encodeHello({ seqno: 0x10000, intervalCs: 1 }), {
    code: 'VMESH_ERR_MALFORMED',
  });
  assert.throws(() => encodeSeqnoRequest({ seqno: 0, hopCount: 0, origin }), {
    code: 'VMESH_ERR_MALFORMED',
  });
});

test('seqno arithmetic is modular (RFC 8966 §3.2.1)', () => {
  assert.ok(seqnoNewer(1, 0));
  assert.ok(seqnoNewer(0, 0xffff));
  assert.ok(!seqnoNewer(0, 0));
  assert.ok(seqnoNewer(0x7fff, 0));
  assert.ok(!seqnoNewer(0x8000, 0));
  assert.equal(seqnoPlus(0xffff, 1), 0);
  fc.assert(
    fc.property(u16, fc.integer({ min: 1, max: 0x7fff }), (s, k) => {
      assert.ok(seqnoNewer(seqnoPlus(s, k), s));
      assert.ok(!seqnoNewer(s, seqnoPlus(s, k)));
    }),
  );
});
