// The routing compliance suite: what every RoutingProtocol must do, run in
// the simulator (src/sim) with a few lines of setup per protocol:
//
//   complianceSuite({ name: 'aodv', factory: () => aodv(), storm: {...} });
//
// It registers node:test tests. Checks: convergence on line, ring, grid,
// random geometric and scale-free graphs; shortest paths (hop count, unit
// costs); reroute after a link and a device failure; no loop in any snapshot
// while links flap; the avoid-set; malformed, mutated and replayed messages
// dropped and counted without corrupting routes; bounded state and messages
// under storms of route requests and foreign routes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProtocolMessage, RoutingProtocolFactory } from '../../src/routing/index.ts';
import {
  SimNetwork,
  diamond,
  grid,
  line,
  randomGeometric,
  ring,
  scaleFree,
  seeded,
} from '../../src/sim/index.ts';
import type { Topology } from '../../src/sim/index.ts';
import type { DeviceId } from '../../src/wire/index.ts';

export interface ComplianceOptions {
  name: string;
  factory: () => RoutingProtocolFactory;
  /** Virtual time a protocol gets to converge or reroute, ms (default 15000). */
  settleMs?: number;
  /**
   * Storm test: a factory with small caps, and the most routes a device made
   * with it may hold however many destinations it hears of.
   */
  storm: { factory: () => RoutingProtocolFactory; maxRoutes: number };
  /** Flood-mode protocols forward by flooding, so next-hop loops are not checked (duplicate suppression is). */
  floodMode?: boolean;
}

type Pair = [number, number];

function allPairs(n: number): Pair[] {
  const out: Pair[] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) out.push([i, j]);
  return out;
}

/** Asks reactive protocols for routes between `pairs`, as the daemon does when a connection opens. */
function demand(net: SimNetwork, pairs: Pair[], avoid: ReadonlySet<DeviceId> = new Set()): void {
  for (const [a, b] of pairs) {
    const node = net.node(a);
    const dest = net.ids[b] as DeviceId;
    if (node?.reactive === true && node.route(dest, avoid) === undefined)
      net.apply(a, node.discover?.(dest, avoid, net.now) ?? []);
  }
}

/** Keeps reactive routes in use (as the daemon does for open connections) every second until `ms` passed. */
function runInUse(net: SimNetwork, pairs: Pair[], ms: number): void {
  const end = net.now + ms;
  while (net.now < end) {
    for (const [a, b] of pairs) {
      const node = net.node(a);
      if (node?.reactive === true)
        net.apply(a, node.routeInUse?.(net.ids[b] as DeviceId, new Set(), net.now) ?? []);
    }
    net.run(Math.min(1000, end - net.now));
  }
}

function converge(net: SimNetwork, pairs: Pair[], ms: number): void {
  demand(net, pairs);
  // Discoveries are rate-limited: ask again for what is still missing, a few times.
  for (let k = 0; k < 5; k++) {
    net.run(ms / 5);
    demand(net, pairs);
  }
  net.run(ms / 5);
}

function checkPairs(net: SimNetwork, pairs: Pair[], what: string): void {
  for (const [a, b] of pairs) {
    const r = net.follow(a, b);
    assert.ok(
      !('failed' in r),
      `${what}: ${net.names[a]} -> ${net.names[b]}: ${'failed' in r ? r.failed : ''} (path ${r.path.map((i) => net.names[i]).join(' ')})`,
    );
    const shortest = net.hopsFrom(a).get(b);
    assert.equal(
      r.path.length - 1,
      shortest,
      `${what}: ${net.names[a]} -> ${net.names[b]} took ${r.path.length - 1} hops, shortest is ${shortest}`,
    );
  }
}

/** Forwarding tables agree with route() (the VM uses the table, the policy uses route()). */
function checkTables(net: SimNetwork, pairs: Pair[], avoid?: ReadonlySet<DeviceId>): void {
  for (const [a, b] of pairs) {
    const node = net.node(a);
    if (node === undefined || node.mode === 'flood') continue;
    const dest = net.ids[b] as DeviceId;
    const table = node.forwardingTable(avoid);
    const route = node.route(dest, avoid);
    assert.equal(
      table.nextHops[dest],
      route?.nextHop,
      `table vs route at ${net.names[a]} for ${net.names[b]}`,
    );
    if (node.mode === 'source')
      assert.deepEqual(table.paths?.[dest], route?.path, `paths vs route at ${net.names[a]}`);
    for (const x of avoid ?? [])
      assert.ok(!table.neighbours.includes(x), 'avoided neighbour listed');
  }
}

export function complianceSuite(o: ComplianceOptions): void {
  const settle = o.settleMs ?? 15000;
  const make = (t: Topology, seed = 1): SimNetwork => new SimNetwork(t, o.factory(), { seed });

  test(`${o.name}: converges to shortest paths on line, ring, grid, random geometric and scale-free graphs`, () => {
    for (const t of [line(8), ring(9), grid(4, 4), randomGeometric(20, 5), scaleFree(20, 5)]) {
      const net = make(t);
      const pairs = allPairs(t.size);
      converge(net, pairs, settle);
      checkPairs(net, pairs, t.label);
      checkTables(net, pairs);
      // Snapshots are plain data and list a route for what route() answers.
      const snap = net.node(0)?.snapshot(net.now);
      assert.ok(snap !== undefined && JSON.parse(JSON.stringify(snap)).protocol === snap.protocol);
      assert.equal(typeof snap.counters.malformed, 'number');
    }
  });

  test(`${o.name}: reroutes after a link failure and after a device crash`, () => {
    const net = make(grid(4, 3));
    const [from, to] = [0, 11];
    converge(net, [[from, to]], settle);
    const before = net.follow(from, to);
    assert.ok(!('failed' in before));
    const [x, y] = [before.path[1] as number, before.path[2] as number];
    net.linkDown(x, y);
    runInUse(net, [[from, to]], settle);
    const after = net.follow(from, to);
    assert.ok(
      !('failed' in after),
      `no route after link ${x}-${y} went down: ${JSON.stringify(after)}`,
    );
    assert.ok(
      !after.path.some(
        (d, k) =>
          k > 0 && ((d === y && after.path[k - 1] === x) || (d === x && after.path[k - 1] === y)),
      ),
    );
    const relay = after.path[1] as number;
    net.crash(relay);
    runInUse(net, [[from, to]], settle);
    const third = net.follow(from, to);
    assert.ok(!('failed' in third), `no route after device ${relay} crashed`);
    assert.ok(!third.path.includes(relay));
    assert.equal(third.path.length - 1, net.hopsFrom(from).get(to));
  });

  test(`${o.name}: honours the avoid-set`, () => {
    const net = make(diamond());
    const [, B, C, D] = net.ids as [DeviceId, DeviceId, DeviceId, DeviceId];
    for (const avoid of [new Set([B]), new Set([C])]) {
      demand(net, [[0, 3]], avoid);
      net.run(settle / 3);
      const r = net.node(0)?.route(D, avoid);
      assert.ok(r !== undefined, `no route to D avoiding ${[...avoid].join()}`);
      assert.equal(r.nextHop, avoid.has(B) ? C : B);
      const path = net.follow(0, 3, avoid);
      assert.ok(!('failed' in path) && !path.path.some((i) => avoid.has(net.ids[i] as DeviceId)));
      checkTables(net, [[0, 3]], avoid);
    }
    // Avoiding every relay leaves no route.
    const both = new Set([B, C]);
    demand(net, [[0, 3]], both);
    net.run(settle / 3);
    assert.equal(net.node(0)?.route(D, both), undefined);
    // On a grid, routes avoiding a random set never pass through it.
    const g = make(grid(4, 4), 2);
    const random = seeded(9);
    converge(
      g,
      allPairs(16).filter(([a]) => a === 0),
      settle,
    );
    for (let k = 0; k < 10; k++) {
      const avoid = new Set(
        [5, 6, 9, 10, 1, 4, 2, 8].filter(() => random() < 0.3).map((i) => g.ids[i] as DeviceId),
      );
      const target = 15;
      demand(g, [[0, target]], avoid);
      g.run(settle / 3);
      const r = g.follow(0, target, avoid);
      if ('failed' in r) assert.equal(r.failed, 'no-route');
      else
        assert.ok(
          !r.path.some((i) => avoid.has(g.ids[i] as DeviceId)),
          `path ${r.path} crosses ${[...avoid]}`,
        );
      checkTables(g, [[0, target]], avoid);
    }
  });

  test(`${o.name}: never forms a loop while links flap (every snapshot checked)`, () => {
    const t = randomGeometric(16, 11);
    const net = make(t, 3);
    const pairs = allPairs(t.size).filter((_, k) => k % 7 === 0);
    converge(net, pairs, settle);
    const random = seeded(4);
    let checks = 0;
    let dirty = true;
    const stop = net.observe({
      routesChanged: () => {
        dirty = true;
      },
      step: () => {
        if (!dirty || o.floodMode === true) return;
        dirty = false;
        for (const [a, b] of pairs) {
          const r = net.follow(a, b);
          checks++;
          assert.ok(
            !('failed' in r && r.failed === 'loop'),
            `loop at t=${net.now}: ${r.path.map((i) => t.names[i]).join(' ')}`,
          );
        }
      },
    });
    for (let k = 0; k < 30; k++) {
      const e = t.edges[Math.floor(random() * t.edges.length)] as { a: number; b: number };
      net.linkDown(e.a, e.b);
      runInUse(net, pairs, 500 + random() * 2000);
      net.linkUp(e.a, e.b);
      runInUse(net, pairs, 500 + random() * 2000);
    }
    stop();
    assert.ok(o.floodMode === true || checks > 0);
    runInUse(net, pairs, settle);
    converge(net, pairs, settle);
    for (const [a, b] of pairs)
      assert.ok(!('failed' in net.follow(a, b)), 'did not recover after the churn');
  });

  test(`${o.name}: malformed, mutated and replayed messages are dropped and counted; routes stay right`, () => {
    const t = grid(3, 3);
    const net = make(t, 5);
    const captured: { from: number; to: number; message: ProtocolMessage }[] = [];
    net.observe({ message: (from, to, message) => void captured.push({ from, to, message }) });
    const pairs = allPairs(t.size);
    converge(net, pairs, settle);
    assert.ok(captured.length > 0, 'no control messages at all');
    const counters = (): number =>
      net.ids.reduce((sum, _, i) => {
        const c = net.node(i)?.snapshot(net.now).counters ?? {};
        return (
          sum +
          Object.entries(c)
            .filter(([k]) =>
              /malformed|duplicate|stale|replay|old|drop|ignored|unfeasible|seen/i.test(k),
            )
            .reduce((s, [, v]) => s + v, 0)
        );
      }, 0);
    // Replays: every message again, in order, later.
    const before = counters();
    for (const m of captured.slice(-300)) net.inject(m.from, m.to, m.message);
    net.run(100);
    assert.ok(counters() > before, 'replayed messages were not counted as dropped/duplicate');
    runInUse(net, pairs, settle / 3);
    checkPairs(net, pairs, 'after replays');
    // Garbage and truncations: counted as malformed, never thrown.
    const random = seeded(77);
    const malformedBefore = net.node(4)?.snapshot(net.now).counters.malformed ?? 0;
    for (let k = 0; k < 200; k++) {
      const m = captured[Math.floor(random() * captured.length)] as (typeof captured)[number];
      const cut = m.message.body.subarray(0, Math.floor(random() * m.message.body.length));
      net.inject(net.neighbours(4)[0] as number, 4, { type: m.message.type, body: cut });
      const junk = Uint8Array.from({ length: Math.floor(random() * 60) }, () =>
        Math.floor(random() * 256),
      );
      net.inject(net.neighbours(4)[0] as number, 4, {
        type: Math.floor(random() * 256),
        body: junk,
      });
    }
    assert.ok((net.node(4)?.snapshot(net.now).counters.malformed ?? 0) > malformedBefore);
    // A message from a device that is not a neighbour is dropped.
    const stranger = net.neighbours(4).length === 4 ? 0 : 8;
    assert.ok(!net.linked(4, stranger));
    const strangerBefore = net.node(4)?.snapshot(net.now).counters.malformed ?? 0;
    net.inject(stranger, 4, (captured[0] as (typeof captured)[number]).message);
    assert.equal(net.node(4)?.snapshot(net.now).counters.malformed, strangerBefore + 1);
    // Mutations (one flipped bit): never thrown.
    for (let k = 0; k < 300; k++) {
      const m = captured[Math.floor(random() * captured.length)] as (typeof captured)[number];
      const body = Uint8Array.from(m.message.body);
      if (body.length > 0)
        body[Math.floor(random() * body.length)]! ^= 1 << Math.floor(random() * 8);
      net.inject(m.from, m.to, { type: m.message.type, body });
    }
    runInUse(net, pairs, settle);
    converge(net, pairs, settle);
    for (const [a, b] of pairs)
      assert.ok(
        !(
          'failed' in net.follow(a, b) && (net.follow(a, b) as { failed: string }).failed === 'loop'
        ),
      );
  });

  test(`${o.name}: bounded state and messages under storms of route requests and foreign routes`, () => {
    // Real messages from a big network, replayed into a small one whose devices have small caps.
    const big = new SimNetwork(grid(10, 10), o.storm.factory(), { seed: 8 });
    const heard: ProtocolMessage[] = [];
    big.observe({ message: (_f, to, m) => void (to === 0 && heard.push(m)) });
    converge(
      big,
      allPairs(100).filter(([a]) => a % 11 === 0),
      settle,
    );
    assert.ok(heard.length > 0);
    const small = new SimNetwork(line(3), o.storm.factory(), { seed: 8 });
    small.run(settle / 3);
    const sentBefore = small.stats[1]?.messagesSent ?? 0;
    for (let round = 0; round < 3; round++) for (const m of heard) small.inject(0, 1, m);
    // Route requests for thousands of destinations that do not exist.
    const node = small.node(1);
    for (let k = 0; k < 3000; k++) {
      const fake = (0xf00000 + k).toString(16).padStart(32, '0');
      small.apply(1, node?.discover?.(fake, new Set(), small.now) ?? []);
      small.apply(1, node?.routeInUse?.(fake, new Set(), small.now) ?? []);
    }
    small.run(1000);
    const snap = small.node(1)?.snapshot(small.now);
    assert.ok(snap !== undefined);
    assert.ok(
      snap.routes.length <= o.storm.maxRoutes,
      `${snap.routes.length} routes held, cap ${o.storm.maxRoutes}`,
    );
    assert.ok(JSON.stringify(snap).length < 1_000_000, 'snapshot grew past 1 MB');
    const sent = (small.stats[1]?.messagesSent ?? 0) - sentBefore;
    const injected = heard.length * 3 + 6000;
    assert.ok(sent <= injected, `amplification: ${sent} messages sent for ${injected} events`);
  });
}
