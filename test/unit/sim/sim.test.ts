// The simulator itself: topologies, the event heap, links (delay, loss,
// bandwidth), crash/restart, determinism, traffic accounting and the report.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VmeshError } from '../../../src/errors/index.ts';
import type {
  ProtocolMessage,
  RoutingAction,
  RoutingProtocol,
} from '../../../src/routing/index.ts';
import { flooding, linkState } from '../../../src/routing/index.ts';
import {
  EventHeap,
  SimNetwork,
  Traffic,
  components,
  diamond,
  formatSimTable,
  grid,
  line,
  parseEdges,
  parseEvents,
  randomGeometric,
  ring,
  scaleFree,
  simChartSvg,
  simulate,
  topologyFrom,
} from '../../../src/sim/index.ts';

test('topology builders make the shapes they name, connected', () => {
  assert.equal(line(5).edges.length, 4);
  assert.equal(ring(6).edges.length, 6);
  assert.equal(grid(4, 3).edges.length, 3 * 3 + 4 * 2);
  assert.deepEqual(diamond().names, ['A', 'B', 'C', 'D']);
  for (const t of [randomGeometric(40, 3), scaleFree(40, 3), randomGeometric(30, 9, 0.05)]) {
    const comp = components(
      t.size,
      t.edges.map((e) => [e.a, e.b] as [number, number]),
    );
    assert.ok(
      comp.every((c) => c === 0),
      `${t.label} is not connected`,
    );
    assert.equal(t.size, 40 - (t.label.startsWith('random geometric 30') ? 10 : 0));
  }
  // Scale-free: every new device brings m = 2 links.
  assert.equal(scaleFree(20, 1).edges.length, 3 + 17 * 2);
  // Same seed, same graph.
  assert.deepEqual(randomGeometric(25, 4), randomGeometric(25, 4));
  assert.notDeepEqual(randomGeometric(25, 4).edges, randomGeometric(25, 5).edges);
});

test('topology specs and edges files: bad input gets VMESH_ERR_CONFIG naming the problem', () => {
  const t = parseEdges('# a comment\nx y delay=20 loss=0.1\ny z rate=1000 cost=3\n');
  assert.deepEqual(t.names, ['x', 'y', 'z']);
  assert.deepEqual(t.edges[0]?.link, { delayMs: 20, loss: 0.1 });
  assert.deepEqual(t.edges[1]?.link, { bandwidthBps: 1000, cost: 3 });
  for (const [text, msg] of [
    ['x\n', /line 1/],
    ['x x\n', /two devices/],
    ['x y loss=2\n', /loss must be 0..1/],
    ['x y speed=3\n', /bad option "speed=3"/],
    ['', /at least one link/],
  ] as const) {
    assert.throws(
      () => parseEdges(text),
      (e: unknown) =>
        e instanceof VmeshError && e.code === 'VMESH_ERR_CONFIG' && msg.test(e.message),
    );
  }
  assert.equal(topologyFrom('grid:3x2', 1).size, 6);
  for (const bad of ['grid:3', 'line:x', 'torus:4', 'line:1', 'file:/nonexistent/edges']) {
    assert.throws(() => topologyFrom(bad, 1), { code: 'VMESH_ERR_CONFIG' });
  }
});

test('event heap pops in time order, FIFO among equal times (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (times) => {
      const h = new EventHeap<number>();
      times.forEach((t, i) => h.push(t, i));
      const out: [number, number][] = [];
      for (let e = h.pop(); e !== undefined; e = h.pop()) out.push([e.at, e.value]);
      const expected = times
        .map((t, i) => [t, i] as [number, number])
        .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      assert.deepEqual(out, expected);
    }),
  );
});

/** A protocol that only records what it hears and sends one message on start (to probe links). */
function probe(
  log: { at: number; from: string; size: number }[],
): () => (c: { self: string }) => RoutingProtocol {
  return () => (c) => {
    let now = 0;
    return {
      name: 'probe',
      id: 99,
      mode: 'unicast',
      start: () => [],
      linkUp: (n: string): RoutingAction[] =>
        c.self < n
          ? [{ type: 'send', to: n, message: { type: 1, body: new Uint8Array(1246) } }]
          : [],
      linkDown: () => [],
      linkCost: () => [],
      receive: (from: string, m: ProtocolMessage, t: number) => {
        now = t;
        log.push({ at: now, from, size: m.body.length });
        return [];
      },
      tick: () => [],
      nextDeadline: () => Infinity,
      route: () => undefined,
      forwardingTable: () => ({
        protocol: 99,
        self: c.self,
        mode: 'unicast',
        avoid: [],
        neighbours: [],
        nextHops: {},
      }),
      snapshot: () => ({
        protocol: 'probe',
        self: c.self,
        neighbours: [],
        routes: [],
        counters: { malformed: 0 },
      }),
    };
  };
}

test('links: a message arrives after serialisation (bytes / bandwidth) plus delay; loss drops the share asked for', () => {
  const log: { at: number; from: string; size: number }[] = [];
  // 1246-byte body + 8 bytes overhead = 1254 bytes = 10032 bits at 1 Mbit/s = 10.032 ms, + 20 ms delay.
  const net = new SimNetwork(line(2), probe(log)(), {
    link: { delayMs: 20, bandwidthBps: 1_000_000 },
  });
  net.run(100);
  assert.equal(log.length, 1);
  assert.ok(Math.abs((log[0]?.at ?? 0) - 30.032) < 1e-9, `arrived at ${log[0]?.at}`);
  // Loss: 2000 links each sending once, 30% loss.
  const lossy: typeof log = [];
  const star = {
    label: 'star',
    size: 2001,
    names: Array.from({ length: 2001 }, (_, i) => `s${i}`),
    edges: Array.from({ length: 2000 }, (_, i) => ({ a: 0, b: i + 1 })),
  };
  const n2 = new SimNetwork(star, probe(lossy)(), { link: { loss: 0.3 }, seed: 5 });
  n2.run(100);
  const share = 1 - lossy.length / 2000;
  assert.ok(share > 0.25 && share < 0.35, `lost ${share}`);
  assert.equal(n2.stats[0]?.messagesLost, 2000 - lossy.length);
});

test('a link that goes down loses what was in flight; crash and restart give a fresh instance', () => {
  const log: { at: number; from: string; size: number }[] = [];
  const net = new SimNetwork(line(2), probe(log)(), { link: { delayMs: 50 } });
  net.run(10);
  net.linkDown(0, 1);
  net.linkUp(0, 1);
  net.run(200);
  assert.equal(log.length, 1, 'only the message sent after the link came back arrives');
  const first = net.node(1);
  net.crash(1);
  assert.equal(net.alive(1), false);
  assert.equal(net.neighbours(0).length, 0);
  net.restart(1);
  assert.notEqual(net.node(1), first);
  assert.deepEqual(net.neighbours(0), [1]);
  assert.throws(() => net.crash(7), { code: 'VMESH_ERR_UNKNOWN_DEVICE' });
});

test('the same seed gives the same run, message for message', () => {
  const run = (seed: number): string => {
    const net = new SimNetwork(randomGeometric(15, 2), linkState(), { seed, link: { loss: 0.05 } });
    net.run(5000);
    net.linkDown(0, net.neighbours(0)[0] as number);
    net.run(5000);
    return JSON.stringify(net.stats);
  };
  assert.equal(run(3), run(3));
  assert.notEqual(run(3), run(4));
});

test('traffic: packets are forwarded by the protocols and accounted (sent = delivered + dropped)', () => {
  const net = new SimNetwork(grid(3, 3), linkState(), { seed: 1 });
  net.run(3000);
  const traffic = new Traffic(net);
  traffic.stream({ from: 0, to: 8 }, 50, 20);
  net.run(200);
  net.linkDown(0, 1);
  net.linkDown(0, 3);
  net.run(2000);
  const dropped = Object.values(traffic.stats.dropped).reduce((a, b) => a + b, 0);
  assert.equal(traffic.stats.sent, 50);
  assert.equal(traffic.stats.delivered + dropped, 50);
  assert.ok(traffic.stats.delivered >= 10 && traffic.stats.delivered < 50);
  assert.ok((traffic.stats.dropped.unreachable ?? 0) > 0, JSON.stringify(traffic.stats.dropped));
  assert.equal(traffic.meanStretch(), 1);
});

test('simulate: same figures for the same seed; table and SVG show every protocol', () => {
  const spec = {
    topology: grid(4, 4),
    protocols: [
      { name: 'link-state', id: 1, summary: '', create: linkState() },
      { name: 'flooding', id: 2, summary: '', create: flooding() },
    ],
    seed: 2,
    durationMs: 10000,
    events: parseEvents(
      '- { at: 2, action: crash, device: d5 }\n- { at: 6, action: restart, device: d5 }\n',
      'test',
    ),
  };
  const a = simulate(spec);
  assert.deepEqual(a, simulate(spec));
  assert.equal(a.results.length, 2);
  for (const r of a.results) {
    assert.ok(r.convergeMs !== null && r.convergeMs > 0);
    assert.ok(r.packetsSent > 0 && r.deliveryRatio > 0.5 && r.deliveryRatio <= 1);
    assert.ok(r.meanStretch >= 1);
    assert.ok(r.controlMessagesPerDeviceSecond > 0);
  }
  const table = formatSimTable(a);
  assert.match(table, /link-state/);
  assert.match(table, /flooding/);
  const svg = simChartSvg(a);
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/<rect /g) ?? []).length, 1 + 4 * 2 + 2);
  assert.throws(() => parseEvents('- { at: 1, action: explode }', 'x'), {
    code: 'VMESH_ERR_CONFIG',
  });
  assert.throws(() => simulate({ ...spec, events: [{ at: 0, action: 'crash', device: 'nope' }] }), {
    code: 'VMESH_ERR_UNKNOWN_DEVICE',
  });
});
