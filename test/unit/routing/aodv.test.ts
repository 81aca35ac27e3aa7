// aodv (RFC 3561) on the deterministic test network: discovery, expanding ring search,
// sequence numbers, duplicate suppression, RERR, local repair, lifetimes, avoid-sets, rate
// limits, and the codecs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VmeshError } from '../../../src/errors/index.ts';
import {
  AodvExtension,
  AodvMessage,
  aodv,
  decodeKeepalive,
  decodeRerr,
  decodeRrep,
  decodeRreq,
  encodeKeepalive,
  encodeRerr,
  encodeRrep,
  encodeRreq,
  seqCompare,
} from '../../../src/routing/aodv/index.ts';
import type { AodvInit, Keepalive, Rerr, Rrep, Rreq } from '../../../src/routing/aodv/index.ts';
import type {
  RoutingAction,
  RoutingProtocol,
  RoutingProtocolFactory,
} from '../../../src/routing/index.ts';
import { TestNet, bfs, idOf, topologies } from './harness.ts';

const deviceId = fc.stringMatching(/^[0-9a-f]{32}$/);
const u32 = fc.nat({ max: 0xffffffff });
const u8 = fc.nat({ max: 255 });
/** The empty claim of the null signer. */
const unsigned = { keys: new Uint8Array(0), signature: new Uint8Array(0) };
const arbClaim = fc.record(
  { keys: fc.uint8Array({ maxLength: 64 }), signature: fc.uint8Array({ maxLength: 64 }) },
  { noNullPrototype: true },
);

// ---- helpers ------------------------------------------------------------------------------

interface Changed {
  self: string;
  destinations: string[] | undefined;
}

/** Wraps a factory so that every routesChanged a node returns is logged. */
function spied(factory: RoutingProtocolFactory, log: Changed[]): RoutingProtocolFactory {
  return (c) => {
    const p = factory(c);
    const target = p as unknown as Record<string, (...args: unknown[]) => RoutingAction[]>;
    for (const name of ['linkUp', 'linkDown', 'receive', 'tick', 'discover', 'routeInUse']) {
      const f = (target[name] as (...args: unknown[]) => RoutingAction[]).bind(p);
      target[name] = (...args: unknown[]) => {
        const actions = f(...args);
        for (const a of actions)
          if (a.type === 'routesChanged') log.push({ self: c.self, destinations: a.destinations });
        return actions;
      };
    }
    return p;
  };
}

function node(net: TestNet, i: number): RoutingProtocol {
  return net.nodes[i] as RoutingProtocol;
}

function id(net: TestNet, i: number): string {
  return net.ids[i] as string;
}

function discover(net: TestNet, from: number, to: number | string, avoid = new Set<string>()) {
  const dest = typeof to === 'string' ? to : id(net, to);
  net.apply(from, node(net, from).discover?.(dest, avoid, net.now) ?? []);
}

function inUse(net: TestNet, from: number, to: number, avoid = new Set<string>()): void {
  net.apply(from, node(net, from).routeInUse?.(id(net, to), avoid, net.now) ?? []);
}

function counters(net: TestNet, i: number): Record<string, number> {
  return node(net, i).snapshot(net.now).counters;
}

/** RREQs a device originated (first hop only), as delivered: time and TTL. */
function watchRreqs(net: TestNet, origin: number): { at: number; ttl: number; rreqId: number }[] {
  const seen: { at: number; ttl: number; rreqId: number }[] = [];
  const ids = new Set<number>();
  net.onDeliver = (from, _to, m) => {
    if (m.type !== AodvMessage.RREQ || from !== origin) return;
    const r = decodeRreq(m.body);
    if (r.originator !== id(net, origin) || ids.has(r.rreqId)) return;
    ids.add(r.rreqId);
    seen.push({ at: net.now, ttl: r.ttl, rreqId: r.rreqId });
  };
  return seen;
}

/** Follows next hops; reports a loop separately from a dead end. */
function walk(
  net: TestNet,
  from: number,
  to: number,
  avoid?: ReadonlySet<string>,
): 'ok' | 'dead-end' | 'loop' {
  const visited = new Set<number>();
  let at = from;
  while (at !== to) {
    if (visited.has(at)) return 'loop';
    visited.add(at);
    const next = node(net, at).forwardingTable(avoid).nextHops[id(net, to)];
    if (next === undefined) return 'dead-end';
    at = net.ids.indexOf(next);
  }
  return 'ok';
}

function entrySeq(net: TestNet, i: number, dest: number): number | undefined {
  const r = node(net, i)
    .snapshot(net.now)
    .routes.find((x) => x.destination === id(net, dest) && x.hops > 1) as
    { seq?: number } | undefined;
  return r?.seq;
}

const rrep = (m: Partial<Rrep> & Pick<Rrep, 'destination' | 'originator'>): Rrep => ({
  hopCount: 0,
  destSeq: 0,
  lifetimeMs: 60000,
  avoid: [],
  claim: unsigned,
  ...m,
});

const rreq = (m: Partial<Rreq> & Pick<Rreq, 'destination' | 'originator'>): Rreq => ({
  gratuitous: false,
  destinationOnly: true,
  unknownSeq: true,
  ttl: 5,
  hopCount: 0,
  rreqId: 1,
  destSeq: 0,
  origSeq: 1,
  avoid: [],
  claim: unsigned,
  ...m,
});

// ---- discovery ----------------------------------------------------------------------------

test('aodv: discovery on a line, a ring and a grid finds shortest-hop paths that can be followed both ways', () => {
  const cases: [number, [number, number][], [number, number][]][] = [
    [8, topologies.line(8), [[0, 7]]],
    [
      9,
      topologies.ring(9),
      [
        [0, 4],
        [0, 5],
        [3, 7],
      ],
    ],
    [
      16,
      topologies.grid(4, 4),
      [
        [0, 15],
        [3, 12],
        [5, 14],
      ],
    ],
  ];
  for (const [size, edges, pairs] of cases) {
    const log: Changed[] = [];
    const net = new TestNet(size, spied(aodv(), log)).edges(edges);
    for (const [a, b] of pairs) {
      assert.equal(node(net, a).route(id(net, b)), undefined, 'no route before a discovery');
      discover(net, a, b);
      net.run(1000);
      const dist = bfs(net, a).get(b) as number;
      const r = node(net, a).route(id(net, b));
      assert.ok(r !== undefined, `no route ${a}->${b}`);
      assert.equal(r.hops, dist);
      assert.equal(r.cost, dist);
      assert.equal(r.path?.length, dist + 1);
      assert.equal(r.path?.[0], id(net, a));
      assert.equal(r.path?.[dist], id(net, b));
      r.path?.slice(1).forEach((d, k) => {
        assert.ok(net.linked(net.ids.indexOf(r.path?.[k] as string), net.ids.indexOf(d)));
      });
      assert.equal(net.follow(a, b)?.length, dist + 1, `follow ${a}->${b}`);
      // The reverse routes the RREQ left carry the answer back.
      assert.equal(net.follow(b, a)?.length, dist + 1, `follow ${b}->${a}`);
      assert.ok(
        log.some((c) => c.self === id(net, a) && c.destinations?.includes(id(net, b)) === true),
        'routesChanged names the destination',
      );
      assert.deepEqual(
        node(net, a).forwardingTable().nextHops[id(net, b)],
        r.nextHop,
        'table and route agree',
      );
    }
  }
});

test('aodv: a neighbour is a route at once; discover() for it sends nothing and reports the route', () => {
  const net = new TestNet(2, aodv()).edges([[0, 1]]);
  const r = node(net, 0).route(id(net, 1));
  assert.equal(r?.nextHop, id(net, 1));
  assert.equal(r?.hops, 1);
  const actions = node(net, 0).discover?.(id(net, 1), new Set(), net.now) ?? [];
  assert.deepEqual(actions, [{ type: 'routesChanged', destinations: [id(net, 1)] }]);
  assert.equal(node(net, 0).route(id(net, 0)), undefined, 'no route to self');
});

test('aodv: expanding ring search: a near destination costs fewer RREQs than a far one, and the TTL grows per retry', () => {
  const cost = (dest: number): { messages: number; ttls: number[] } => {
    const net = new TestNet(8, aodv()).edges(topologies.line(8));
    const mine = watchRreqs(net, 0);
    let messages = 0;
    const watch = net.onDeliver;
    net.onDeliver = (f, t, m) => {
      watch?.(f, t, m);
      if (m.type === AodvMessage.RREQ) messages++;
    };
    discover(net, 0, dest);
    net.run(2000);
    assert.equal(node(net, 0).route(id(net, dest))?.hops, dest);
    return { messages, ttls: mine.map((x) => x.ttl) };
  };
  const near = cost(2);
  const far = cost(7);
  assert.deepEqual(near.ttls, [1, 3]);
  assert.deepEqual(far.ttls, [1, 3, 5, 7]);
  // TTL 1 reaches device 1 only; TTL 3 reaches the destination, which answers instead of forwarding.
  assert.equal(near.messages, 1 + 2);
  assert.equal(far.messages, 1 + 3 + 5 + 7);
  assert.ok(near.messages < far.messages);
});

test('aodv: an unreachable destination: ring timeouts, then NET_DIAMETER with binary exponential backoff, then give up', () => {
  const net = new TestNet(3, aodv()).edges(topologies.line(3));
  const mine = watchRreqs(net, 0);
  discover(net, 0, idOf(99));
  net.run(20000);
  assert.deepEqual(
    mine.map((x) => x.ttl),
    [1, 3, 5, 7, 35, 35, 35],
  );
  const gaps = mine.slice(1).map((x, k) => x.at - (mine[k] as { at: number }).at);
  // RING_TRAVERSAL_TIME = 2 * 10 * (TTL + 2) for the ring, then NET_TRAVERSAL_TIME (700) doubling.
  assert.deepEqual(gaps, [60, 100, 140, 180, 700, 1400]);
  const c = counters(net, 0);
  assert.equal(c.discoveryFailed, 1);
  assert.equal(c.discoveries, 0);
  assert.equal(node(net, 0).route(idOf(99)), undefined);
  // A second discover() while one is under way sends nothing.
  discover(net, 0, idOf(98));
  const before = net.sentBy[0];
  discover(net, 0, idOf(98));
  assert.equal(net.sentBy[0], before);
});

// ---- sequence numbers -------------------------------------------------------------------------

test('aodv: sequence numbers compare as signed 32-bit differences (rollover, §6.1)', () => {
  assert.ok(seqCompare(0, 0xffffffff) > 0);
  assert.ok(seqCompare(0xffffffff, 0) < 0);
  assert.ok(seqCompare(5, 5) === 0);
  fc.assert(
    fc.property(u32, fc.integer({ min: 1, max: 0x7fffffff }), (a, d) => {
      assert.ok(seqCompare((a + d) >>> 0, a) > 0);
      assert.ok(seqCompare(a, (a + d) >>> 0) < 0);
    }),
  );
});

test('aodv: a stale RREP does not replace a fresher route; a fresher or shorter one does (with rollover)', () => {
  const net = new TestNet(4, aodv()).edges(topologies.diamond());
  const a = node(net, 0);
  const [A, B, C, D] = net.ids as [string, string, string, string];
  const send = (from: string, m: Rrep): RoutingAction[] =>
    a.receive(from, { type: AodvMessage.RREP, body: encodeRrep(m) }, net.now);
  let actions = send(B, rrep({ destination: D, originator: A, destSeq: 0xffffffff, hopCount: 1 }));
  assert.deepEqual(actions, [{ type: 'routesChanged', destinations: [D] }]);
  assert.equal(a.route(D)?.nextHop, B);
  const stale = counters(net, 0).rrepStale ?? 0;
  // Older seqno with fewer hops: stale.
  actions = send(C, rrep({ destination: D, originator: A, destSeq: 0xfffffffe, hopCount: 0 }));
  assert.deepEqual(actions, []);
  // Same seqno, same hops: not better.
  send(C, rrep({ destination: D, originator: A, destSeq: 0xffffffff, hopCount: 1 }));
  assert.equal(counters(net, 0).rrepStale, stale + 2);
  assert.equal(a.route(D)?.nextHop, B);
  // Same seqno, fewer hops: replaces.
  send(C, rrep({ destination: D, originator: A, destSeq: 0xffffffff, hopCount: 0 }));
  assert.equal(a.route(D)?.nextHop, C);
  assert.equal(a.route(D)?.hops, 1 + 0);
  // Seqno 0 is newer than 0xffffffff (rollover): replaces although longer.
  send(B, rrep({ destination: D, originator: A, destSeq: 0, hopCount: 4 }));
  assert.equal(a.route(D)?.nextHop, B);
  assert.equal(a.route(D)?.hops, 5);
});

test('aodv: a RREQ with an older originator seqno does not replace a fresher reverse route; the destination takes the larger seqno (§6.1, §6.6.1)', () => {
  const net = new TestNet(4, aodv()).edges(topologies.diamond());
  const d = node(net, 3);
  const [A, B, C, D] = net.ids as [string, string, string, string];
  const send = (from: string, m: Rreq): RoutingAction[] =>
    d.receive(from, { type: AodvMessage.RREQ, body: encodeRreq(m) }, net.now);
  const first = send(
    B,
    rreq({ destination: D, originator: A, origSeq: 10, rreqId: 1, hopCount: 1 }),
  );
  assert.equal(d.route(A)?.nextHop, B);
  const reply = first.find((x) => x.type === 'send');
  assert.ok(reply?.type === 'send' && reply.to === B);
  assert.equal(
    decodeRrep(reply.message.body).destSeq,
    0,
    'unknown seqno: the destination keeps its own',
  );
  // Older originator seqno via C: the reverse route stays.
  send(C, rreq({ destination: D, originator: A, origSeq: 9, rreqId: 2, hopCount: 1 }));
  assert.equal(d.route(A)?.nextHop, B);
  // Newer: replaced; and the destination adopts the asked-for seqno when it is larger.
  const third = send(
    C,
    rreq({
      destination: D,
      originator: A,
      origSeq: 11,
      rreqId: 3,
      hopCount: 1,
      unknownSeq: false,
      destSeq: 5,
    }),
  );
  assert.equal(d.route(A)?.nextHop, C);
  const r3 = third.find((x) => x.type === 'send');
  assert.ok(r3?.type === 'send' && r3.to === C);
  assert.equal(decodeRrep(r3.message.body).destSeq, 5);
  assert.equal(counters(net, 3).seqno, 5);
});

test('aodv: the destination seqno grows through a break and a rediscovery; the ring restarts at the old hop count + TTL_INCREMENT', () => {
  const log: Changed[] = [];
  const net = new TestNet(4, spied(aodv({ localRepair: false }), log)).edges(topologies.line(4));
  discover(net, 0, 3);
  net.run(1000);
  assert.equal(entrySeq(net, 0, 3), 0);
  assert.equal(counters(net, 3).seqno, 0, 'the destination did not originate anything');
  assert.equal(counters(net, 0).seqno, 2, 'one increment per originated RREQ (TTL 1, then 3)');
  net.down(2, 3);
  net.run(100);
  assert.equal(node(net, 0).route(id(net, 3)), undefined);
  assert.ok(log.some((c) => c.self === id(net, 0) && c.destinations?.includes(id(net, 3))));
  net.up(2, 3);
  const mine = watchRreqs(net, 0);
  inUse(net, 0, 3);
  net.run(1000);
  assert.equal(mine[0]?.ttl, 3 + 2);
  assert.equal(node(net, 0).route(id(net, 3))?.hops, 3);
  assert.equal(counters(net, 3).seqno, 1, 'the destination took the incremented seqno');
  assert.equal(entrySeq(net, 0, 3), 1);
});

// ---- duplicate suppression ----------------------------------------------------------------------

test('aodv: duplicate RREQs are suppressed: every device forwards each RREQ once, a replay is dropped', () => {
  const net = new TestNet(16, aodv()).edges(topologies.grid(4, 4));
  const forwards = new Map<string, number>();
  let captured: { from: number; to: number; body: Uint8Array } | undefined;
  net.onDeliver = (from, to, m) => {
    if (m.type !== AodvMessage.RREQ) return;
    const r = decodeRreq(m.body);
    const k = `${from}:${r.originator}:${r.rreqId}:${to}`;
    forwards.set(k, (forwards.get(k) ?? 0) + 1);
    if (from === 1 && to === 5) captured = { from, to, body: m.body };
  };
  discover(net, 0, 15);
  net.run(1000);
  assert.ok(node(net, 0).route(id(net, 15)) !== undefined);
  for (const [k, n] of forwards) assert.equal(n, 1, `${k} sent ${n} times`);
  const dups = net.nodes.reduce((s, _, i) => s + (counters(net, i).rreqDuplicate ?? 0), 0);
  assert.ok(dups > 0);
  assert.ok(captured !== undefined);
  const before = counters(net, 5).rreqDuplicate ?? 0;
  const actions = node(net, 5).receive(
    id(net, 1),
    { type: AodvMessage.RREQ, body: captured.body },
    net.now,
  );
  assert.deepEqual(actions, []);
  assert.equal(counters(net, 5).rreqDuplicate, before + 1);
});

// ---- RERR and local repair ----------------------------------------------------------------------

test('aodv: a link break sends RERRs to the precursors; every device on the route marks it invalid', () => {
  const net = new TestNet(5, aodv({ localRepair: false })).edges(topologies.line(5));
  discover(net, 0, 4);
  net.run(1000);
  for (let i = 0; i < 4; i++) assert.ok(node(net, i).route(id(net, 4)) !== undefined);
  net.down(3, 4);
  net.run(100);
  for (let i = 0; i < 4; i++) {
    assert.equal(node(net, i).route(id(net, 4)), undefined, `device ${i} still routes`);
    assert.equal(walk(net, i, 4), 'dead-end');
  }
  for (const i of [0, 1, 2]) assert.ok((counters(net, i).rerrReceived ?? 0) >= 1);
  for (const i of [1, 2, 3]) assert.ok((counters(net, i).rerrSent ?? 0) >= 1);
  // A replayed RERR (older seqno than the route's) is ignored once the route is back.
  net.up(3, 4);
  inUse(net, 0, 4);
  net.run(1000);
  assert.ok(node(net, 0).route(id(net, 4)) !== undefined);
  const old = encodeRerr({
    noDelete: false,
    avoid: [],
    unreachable: [{ destination: id(net, 4), seq: 1 }],
  });
  net.inject(1, 0, { type: AodvMessage.RERR, body: old });
  assert.ok(node(net, 0).route(id(net, 4)) !== undefined);
  assert.equal(counters(net, 0).rerrStale, 1);
});

test('aodv: after a RERR the source rediscovers through the other side of a diamond', () => {
  const net = new TestNet(4, aodv({ localRepair: false })).edges(topologies.diamond());
  discover(net, 0, 3);
  net.run(1000);
  assert.deepEqual(net.follow(0, 3), [0, 1, 3]);
  net.down(1, 3);
  net.run(100);
  assert.equal(node(net, 0).route(id(net, 3)), undefined);
  inUse(net, 0, 3);
  net.run(1000);
  assert.equal(node(net, 0).route(id(net, 3))?.nextHop, id(net, 2));
  assert.deepEqual(net.follow(0, 3), [0, 2, 3]);
  assert.deepEqual(net.follow(3, 0), [3, 2, 0]);
});

test('aodv: local repair: a relay finds a way round a broken link and the source keeps its route (§6.12)', () => {
  const edges: [number, number][] = [
    [0, 1],
    [1, 2],
    [2, 3],
    [2, 4],
    [4, 3],
  ];
  const net = new TestNet(5, aodv()).edges(edges);
  discover(net, 0, 3);
  net.run(1000);
  assert.deepEqual(net.follow(0, 3), [0, 1, 2, 3]);
  net.down(2, 3);
  net.run(1000);
  assert.deepEqual(net.follow(0, 3), [0, 1, 2, 4, 3]);
  const c = counters(net, 2);
  assert.equal(c.repairStarted, 1);
  assert.equal(c.repairSucceeded, 1);
  // The longer route was reported upstream with the N flag; nobody dropped it.
  assert.ok((counters(net, 1).rerrReceived ?? 0) >= 1);
  assert.equal(node(net, 0).route(id(net, 3))?.hops, 4);

  // No way round: the repair fails and upstream hears a RERR.
  const line = new TestNet(4, aodv()).edges(topologies.line(4));
  discover(line, 0, 3);
  line.run(1000);
  line.down(2, 3);
  line.run(500);
  assert.equal(counters(line, 2).repairFailed, 1);
  assert.equal(node(line, 0).route(id(line, 3)), undefined);
  assert.equal(node(line, 1).route(id(line, 3)), undefined);
});

// ---- lifetimes ------------------------------------------------------------------------------------

test('aodv: a route not used expires; routeInUse keeps the whole path alive (KEEPALIVE) and rediscovers a lost one', () => {
  const idle = new TestNet(4, aodv()).edges(topologies.line(4));
  discover(idle, 0, 3);
  idle.run(1000);
  assert.ok(idle.follow(0, 3) !== undefined);
  idle.run(61000); // MY_ROUTE_TIMEOUT 60 s
  assert.equal(node(idle, 0).route(id(idle, 3)), undefined);
  assert.ok((counters(idle, 0).routeExpired ?? 0) >= 1);
  inUse(idle, 0, 3);
  idle.run(1000);
  assert.ok(idle.follow(0, 3) !== undefined, 'routeInUse started a discovery');

  const busy = new TestNet(4, aodv()).edges(topologies.line(4));
  discover(busy, 0, 3);
  busy.run(1000);
  // Only the source says the route is in use; relays hear it by KEEPALIVE.
  for (let t = 0; t < 150; t++) {
    inUse(busy, 0, 3);
    busy.run(1000);
  }
  assert.deepEqual(busy.follow(0, 3), [0, 1, 2, 3]);
  assert.ok((counters(busy, 1).keepaliveForwarded ?? 0) > 0);
  assert.ok((counters(busy, 0).keepaliveSent ?? 0) <= 150 / 10 + 1, 'at most one per interval');
  assert.equal(counters(busy, 0).discoveryStarted, 1);
  busy.run(61000);
  assert.equal(node(busy, 0).route(id(busy, 3)), undefined);
  assert.equal(walk(busy, 1, 3), 'dead-end');
});

test('aodv: a relay that lost a route answers a KEEPALIVE with a RERR (§6.11 case ii)', () => {
  const net = new TestNet(4, aodv({ localRepair: false })).edges(topologies.line(4));
  discover(net, 0, 3);
  net.run(1000);
  // Device 1 forgets everything (as after a restart): a fresh instance on the same links.
  const fresh = aodv()({ self: id(net, 1), random: () => 0.5 });
  fresh.linkUp(id(net, 0), 1, net.now);
  fresh.linkUp(id(net, 2), 1, net.now);
  net.nodes[1] = fresh;
  inUse(net, 0, 3);
  net.run(100);
  assert.equal(node(net, 0).route(id(net, 3)), undefined, 'the source heard the RERR');
  inUse(net, 0, 3);
  net.run(1000);
  assert.deepEqual(net.follow(0, 3), [0, 1, 2, 3]);
});

// ---- avoid-sets -----------------------------------------------------------------------------------

test('aodv: the avoid-set in a diamond: avoiding B goes by C, each avoid-set has its own routes', () => {
  const net = new TestNet(4, aodv()).edges(topologies.diamond());
  const [, B, C, D] = net.ids as [string, string, string, string];
  const noB = new Set([B]);
  discover(net, 0, 3, noB);
  net.run(1000);
  assert.equal(node(net, 0).route(D, noB)?.nextHop, C);
  assert.deepEqual(node(net, 0).route(D, noB)?.path, [id(net, 0), C, D]);
  assert.deepEqual(net.follow(0, 3, noB), [0, 2, 3]);
  assert.deepEqual(net.follow(3, 0, noB), [3, 2, 0]);
  assert.ok(!node(net, 0).forwardingTable(noB).neighbours.includes(B));
  assert.deepEqual(node(net, 0).forwardingTable(noB).avoid, [B]);
  assert.ok((counters(net, 1).avoided ?? 0) === 0, 'B was never even asked');
  assert.equal(node(net, 0).route(D), undefined, 'a route for {B} is not a route for {}');
  assert.equal(node(net, 0).route(D, new Set([C])), undefined);
  const noC = new Set([C]);
  discover(net, 0, 3, noC);
  net.run(1000);
  assert.equal(node(net, 0).route(D, noC)?.nextHop, B);
  assert.equal(node(net, 0).route(D, noB)?.nextHop, C, 'the {B} route is still there');
  const both = new Set([B, C]);
  discover(net, 0, 3, both);
  net.run(10000);
  assert.equal(node(net, 0).route(D, both), undefined);
  // Devices in the avoid-set drop a RREQ that reaches them anyway.
  const before = counters(net, 1).avoided ?? 0;
  node(net, 1).receive(
    id(net, 0),
    {
      type: AodvMessage.RREQ,
      body: encodeRreq(rreq({ destination: D, originator: id(net, 0), avoid: [B], rreqId: 77 })),
    },
    net.now,
  );
  assert.equal(counters(net, 1).avoided, before + 1);
});

test('aodv: intermediate replies (D flag off) come only from a fresh route for the same avoid-set; a gratuitous RREP tells the destination', () => {
  const edges: [number, number][] = [...topologies.line(4), [4, 1]];
  const net = new TestNet(5, aodv({ destinationOnly: false })).edges(edges);
  discover(net, 0, 3);
  net.run(1000);
  const mine = watchRreqs(net, 4);
  discover(net, 4, 3);
  net.run(1000);
  assert.equal(counters(net, 1).rrepIntermediate, 1);
  assert.deepEqual(
    mine.map((x) => x.ttl),
    [1],
    'answered within the first ring',
  );
  assert.deepEqual(
    node(net, 4).route(id(net, 3))?.path,
    [4, 1, 2, 3].map((i) => id(net, i)),
  );
  assert.deepEqual(net.follow(4, 3), [4, 1, 2, 3]);
  assert.deepEqual(net.follow(3, 4), [3, 2, 1, 4], 'the gratuitous RREP set up the way back');
  assert.equal(counters(net, 1).rrepGratuitous, 1);
  // Another avoid-set: device 1 has no route for it and must not answer.
  const other = new Set([idOf(99)]);
  const sentBy3 = counters(net, 3).rrepSent ?? 0;
  discover(net, 4, 3, other);
  net.run(1000);
  assert.equal(counters(net, 1).rrepIntermediate, 1);
  assert.equal(counters(net, 3).rrepSent, sentBy3 + 1);
  assert.ok(node(net, 4).route(id(net, 3), other) !== undefined);

  // By default only the destination answers.
  const plain = new TestNet(5, aodv()).edges(edges);
  discover(plain, 0, 3);
  plain.run(1000);
  discover(plain, 4, 3);
  plain.run(1000);
  assert.equal(counters(plain, 1).rrepIntermediate, 0);
  assert.ok(node(plain, 4).route(id(plain, 3)) !== undefined);
  // The relays already had an equally good route: they passed the RREP on with their own.
  assert.ok((counters(plain, 2).rrepStale ?? 0) >= 1);
  assert.deepEqual(plain.follow(4, 3), [4, 1, 2, 3]);
});

// ---- limits ---------------------------------------------------------------------------------------

test('aodv: a storm of discover() calls: RREQ_RATELIMIT holds, discoveries and caches stay bounded', () => {
  const net = new TestNet(9, aodv()).edges(topologies.grid(3, 3));
  const mine = watchRreqs(net, 4);
  for (let k = 0; k < 300; k++) {
    discover(net, 4, idOf(1000 + k));
    net.apply(4, node(net, 4).routeInUse?.(idOf(1000 + k), new Set(), net.now) ?? []);
  }
  let c = counters(net, 4);
  assert.equal(c.discoveries, 64);
  assert.equal(c.discoveryDropped, 300 - 64 + (300 - 64));
  net.run(120000);
  for (const x of mine) {
    const inWindow = mine.filter((y) => y.at >= x.at && y.at < x.at + 1000).length;
    assert.ok(inWindow <= 10, `${inWindow} RREQs originated within a second`);
  }
  c = counters(net, 4);
  assert.equal(c.discoveryFailed, 64);
  assert.equal(c.discoveries, 0);
  assert.equal(mine.length, 64 * 7);
  assert.ok((c.rreqRateLimited ?? 0) > 0);
  for (let i = 0; i < 9; i++) {
    const s = counters(net, i);
    assert.ok((s.seen ?? 0) <= 4096);
    assert.ok((s.routeTableSize ?? 0) <= 1, 'only the reverse route to the originator');
  }
  assert.ok(net.delivered <= mine.length * 24, 'each RREQ crosses each link at most twice');
});

test('aodv: the route table is capped (maxRoutes) with many avoid-sets', () => {
  const net = new TestNet(3, aodv({ maxRoutes: 4 })).edges(topologies.line(3));
  for (let k = 0; k < 10; k++) {
    discover(net, 0, 2, new Set([idOf(100 + k)]));
    net.run(2000);
  }
  const c = counters(net, 0);
  assert.ok((c.routeTableSize ?? 0) <= 4);
  assert.ok((c.routeEvicted ?? 0) >= 6);
  assert.ok(node(net, 0).route(id(net, 2), new Set([idOf(109)])) !== undefined);
});

test('aodv: RERR_RATELIMIT holds back RERRs beyond 10 a second and sends them later, merged', () => {
  const net = new TestNet(4, aodv({ localRepair: false })).edges(topologies.line(4));
  const sets = Array.from({ length: 15 }, (_, k) => new Set([idOf(200 + k)]));
  for (const s of sets) discover(net, 0, 3, s);
  net.run(3000);
  for (const s of sets) assert.ok(node(net, 0).route(id(net, 3), s) !== undefined);
  const rerrs: number[] = [];
  net.onDeliver = (from, _to, m) => {
    if (m.type === AodvMessage.RERR && from === 2) rerrs.push(net.now);
  };
  net.down(2, 3);
  net.run(100);
  assert.equal(rerrs.length, 10);
  assert.ok((counters(net, 2).rerrRateLimited ?? 0) >= 5);
  net.run(2000);
  for (const s of sets) assert.equal(node(net, 0).route(id(net, 3), s), undefined);
  assert.equal(counters(net, 2).pendingRerr, 0);
});

test('aodv: options are checked', () => {
  for (const bad of [
    { netDiameter: 0 },
    { netDiameter: 300 },
    { ttlStart: 0 },
    { rreqRateLimit: 0 },
    { activeRouteTimeoutMs: -1 },
    { maxAvoid: 256 },
  ] as AodvInit[]) {
    assert.throws(
      () => aodv(bad),
      (e: unknown) => e instanceof VmeshError && e.code === 'VMESH_ERR_CONFIG',
    );
  }
});

// ---- loop freedom -----------------------------------------------------------------------------------

test('aodv: following next hops never loops while links fail and recover (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 4, max: 9 }),
      fc.array(fc.tuple(fc.nat(8), fc.nat(8)), { maxLength: 10 }),
      fc.array(fc.tuple(fc.nat(8), fc.nat(8), fc.boolean()), { minLength: 5, maxLength: 15 }),
      fc.integer({ min: 1, max: 1000 }),
      (n, extra, steps, seed) => {
        const edges: [number, number][] = topologies.ring(n);
        for (const [a, b] of extra) if (a % n !== b % n) edges.push([a % n, b % n]);
        const net = new TestNet(n, aodv(), { seed }).edges(edges);
        const pairs: [number, number][] = [];
        for (let i = 0; i < n; i++) pairs.push([i, (i + Math.floor(n / 2)) % n]);
        for (const [a, b] of pairs) discover(net, a, b);
        net.run(2000);
        for (const [a, b, flap] of steps) {
          const [x, y] = [a % n, b % n];
          if (x !== y && edges.some(([p, q]) => (p === x && q === y) || (p === y && q === x))) {
            if (flap) net.down(x, y);
            else net.up(x, y);
          }
          for (let t = 0; t < 4; t++) {
            for (const [p, q] of pairs) inUse(net, p, q);
            net.run(50);
            for (let i = 0; i < n; i++)
              for (let j = 0; j < n; j++)
                if (i !== j) assert.notEqual(walk(net, i, j), 'loop', `loop ${i}->${j}`);
          }
        }
      },
    ),
    { numRuns: 25 },
  );
});

// ---- malformed and foreign messages ----------------------------------------------------------------

test('aodv: malformed and foreign control messages are dropped and counted, never thrown (property)', () => {
  const net = new TestNet(3, aodv()).edges(topologies.line(3));
  discover(net, 0, 2);
  net.run(1000);
  const n1 = node(net, 1);
  fc.assert(
    fc.property(u8, fc.uint8Array({ maxLength: 120 }), (type, body) => {
      const before = counters(net, 1).malformed ?? 0;
      const actions = n1.receive(id(net, 0), { type, body }, net.now);
      assert.ok(Array.isArray(actions));
      const after = counters(net, 1).malformed ?? 0;
      assert.ok(after === before || after === before + 1);
      if (type < 1 || type > 4) assert.equal(after, before + 1, 'unknown type counted');
    }),
  );
  const count = (): number => counters(net, 1).malformed ?? 0;
  // From a device that is not a neighbour.
  let before = count();
  n1.receive(idOf(77), { type: AodvMessage.RREQ, body: new Uint8Array(48) }, net.now);
  assert.equal(count(), before + 1);
  // Well-formed bytes, inconsistent content: a route record that does not end at the sender.
  before = count();
  const badRecord = rreq({
    destination: id(net, 2),
    originator: id(net, 0),
    rreqId: 500,
    hopCount: 0,
    record: [idOf(55)],
  });
  n1.receive(id(net, 0), { type: AodvMessage.RREQ, body: encodeRreq(badRecord) }, net.now);
  assert.equal(count(), before + 1);
  // An avoid list out of order is not canonical.
  before = count();
  const unsorted = encodeRerr({
    noDelete: false,
    avoid: [idOf(9), idOf(8)],
    unreachable: [{ destination: id(net, 2), seq: 1 }],
  });
  n1.receive(id(net, 0), { type: AodvMessage.RERR, body: unsorted }, net.now);
  assert.equal(count(), before + 1);
  // A RREP about ourselves.
  before = count();
  const self = encodeRrep(rrep({ destination: id(net, 1), originator: id(net, 0) }));
  n1.receive(id(net, 2), { type: AodvMessage.RREP, body: self }, net.now);
  assert.equal(count(), before + 1);
  // Routes are untouched by all this.
  assert.deepEqual(net.follow(0, 2), [0, 1, 2]);
  const snap = node(net, 1).snapshot(net.now);
  assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap, 'snapshot is plain data');
});

// ---- codecs -----------------------------------------------------------------------------------------

const ids = (max: number) => fc.array(deviceId, { maxLength: max });
const sortedIds = (max: number) =>
  fc.uniqueArray(deviceId, { maxLength: max }).map((a) => [...a].sort());

const arbRreq: fc.Arbitrary<Rreq> = fc
  .record(
    {
      gratuitous: fc.boolean(),
      destinationOnly: fc.boolean(),
      unknownSeq: fc.boolean(),
      ttl: u8,
      hopCount: u8,
      rreqId: u32,
      destination: deviceId,
      destSeq: u32,
      originator: deviceId,
      origSeq: u32,
      avoid: sortedIds(6),
      record: fc.option(ids(6), { nil: undefined }),
      claim: arbClaim,
    },
    { noNullPrototype: true },
  )
  .map((m) => {
    if (m.record === undefined) delete m.record;
    return m;
  });

const arbRrep: fc.Arbitrary<Rrep> = fc
  .record(
    {
      hopCount: u8,
      destination: deviceId,
      destSeq: u32,
      originator: deviceId,
      lifetimeMs: u32,
      avoid: sortedIds(6),
      record: fc.option(ids(6), { nil: undefined }),
      claim: arbClaim,
    },
    { noNullPrototype: true },
  )
  .map((m) => {
    if (m.record === undefined) delete m.record;
    return m;
  });

const arbRerr: fc.Arbitrary<Rerr> = fc.record(
  {
    noDelete: fc.boolean(),
    unreachable: fc.array(
      fc.record({ destination: deviceId, seq: u32 }, { noNullPrototype: true }),
      { minLength: 1, maxLength: 8 },
    ),
    avoid: sortedIds(6),
  },
  { noNullPrototype: true },
);

const arbKeepalive: fc.Arbitrary<Keepalive> = fc.record(
  {
    hopCount: u8,
    destination: deviceId,
    destSeq: u32,
    originator: deviceId,
    avoid: sortedIds(6),
  },
  { noNullPrototype: true },
);

// A slow, obviously-correct reference encoder, written from the layouts in messages.ts.
const ref = {
  u32: (v: number): number[] => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255],
  id: (hex: string): number[] => [...Buffer.from(hex, 'hex')],
  ext(avoid: string[], record: string[] | undefined): number[] {
    const out: number[][] = [];
    if (avoid.length > 0) out.push([AodvExtension.AVOID, avoid.length, ...avoid.flatMap(ref.id)]);
    if (record !== undefined)
      out.push([AodvExtension.ROUTE_RECORD, record.length, ...record.flatMap(ref.id)]);
    return [out.length, ...out.flat()];
  },
  claim: (c: { keys: Uint8Array; signature: Uint8Array }): number[] => [
    c.keys.length,
    ...c.keys,
    c.signature.length,
    ...c.signature,
  ],
  rreq: (m: Rreq): number[] => [
    (m.gratuitous ? 1 : 0) + (m.destinationOnly ? 2 : 0) + (m.unknownSeq ? 4 : 0),
    m.ttl,
    m.hopCount,
    ...ref.u32(m.rreqId),
    ...ref.id(m.destination),
    ...ref.u32(m.destSeq),
    ...ref.id(m.originator),
    ...ref.u32(m.origSeq),
    ...ref.ext(m.avoid, m.record),
    ...ref.claim(m.claim),
  ],
  rrep: (m: Rrep): number[] => [
    0,
    m.hopCount,
    ...ref.id(m.destination),
    ...ref.u32(m.destSeq),
    ...ref.id(m.originator),
    ...ref.u32(m.lifetimeMs),
    ...ref.ext(m.avoid, m.record),
    ...ref.claim(m.claim),
  ],
  rerr: (m: Rerr): number[] => [
    m.noDelete ? 1 : 0,
    m.unreachable.length,
    ...m.unreachable.flatMap((u) => [...ref.id(u.destination), ...ref.u32(u.seq)]),
    ...ref.ext(m.avoid, undefined),
  ],
  keepalive: (m: Keepalive): number[] => [
    m.hopCount,
    ...ref.id(m.destination),
    ...ref.u32(m.destSeq),
    ...ref.id(m.originator),
    ...ref.ext(m.avoid, undefined),
  ],
};

function onlyMalformed(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof VmeshError && e.code === 'VMESH_ERR_MALFORMED', String(e));
  }
}

test('aodv codecs: round trip and agreement with the reference encoder (property)', () => {
  fc.assert(
    fc.property(arbRreq, (m) => {
      const bytes = encodeRreq(m);
      assert.deepEqual([...bytes], ref.rreq(m));
      assert.deepEqual(decodeRreq(bytes), m);
    }),
  );
  fc.assert(
    fc.property(arbRrep, (m) => {
      const bytes = encodeRrep(m);
      assert.deepEqual([...bytes], ref.rrep(m));
      assert.deepEqual(decodeRrep(bytes), m);
    }),
  );
  fc.assert(
    fc.property(arbRerr, (m) => {
      const bytes = encodeRerr(m);
      assert.deepEqual([...bytes], ref.rerr(m));
      assert.deepEqual(decodeRerr(bytes), m);
    }),
  );
  fc.assert(
    fc.property(arbKeepalive, (m) => {
      const bytes = encodeKeepalive(m);
      assert.deepEqual([...bytes], ref.keepalive(m));
      assert.deepEqual(decodeKeepalive(bytes), m);
    }),
  );
});

test('aodv codecs: arbitrary bytes and every truncation throw only VMESH_ERR_MALFORMED (property)', () => {
  const decoders = [decodeRreq, decodeRrep, decodeRerr, decodeKeepalive];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      for (const d of decoders) onlyMalformed(() => d(bytes));
    }),
  );
  fc.assert(
    fc.property(arbRreq, arbRrep, (q, p) => {
      const a = encodeRreq(q);
      const b = encodeRrep(p);
      for (let cut = 0; cut < a.length; cut++)
        assert.throws(() => decodeRreq(a.subarray(0, cut)), VmeshError);
      for (let cut = 0; cut < b.length; cut++)
        assert.throws(() => decodeRrep(b.subarray(0, cut)), VmeshError);
      assert.throws(() => decodeRreq(Buffer.concat([a, Buffer.from([0])])), VmeshError);
    }),
    { numRuns: 30 },
  );
});

test('aodv codecs: unknown extensions are skipped, repeated ones and unknown flags are malformed', () => {
  const m = rreq({ destination: idOf(2), originator: idOf(1), avoid: [idOf(3)] });
  const plain = [...encodeRreq(m)];
  const fixed = plain.slice(0, 47);
  const avoidExt = [AodvExtension.AVOID, 1, ...Buffer.from(idOf(3), 'hex')];
  const unknown = [99, 1, ...Buffer.from(idOf(4), 'hex')];
  const claim = [0, 0];
  assert.deepEqual(
    decodeRreq(Uint8Array.from([...fixed, 2, ...avoidExt, ...unknown, ...claim])),
    m,
  );
  assert.throws(
    () => decodeRreq(Uint8Array.from([...fixed, 2, ...avoidExt, ...avoidExt, ...claim])),
    VmeshError,
  );
  // The claim block is strict: missing, overrunning or followed by anything is malformed.
  assert.throws(() => decodeRreq(Uint8Array.from([...fixed, 1, ...avoidExt])), VmeshError);
  assert.throws(() => decodeRreq(Uint8Array.from([...fixed, 1, ...avoidExt, 1, 0])), VmeshError);
  assert.throws(
    () => decodeRreq(Uint8Array.from([...fixed, 1, ...avoidExt, 0, 1, 7, 0])),
    VmeshError,
  );
  assert.deepEqual(decodeRreq(Uint8Array.from([...fixed, 1, ...avoidExt, 1, 9, 2, 7, 8])).claim, {
    keys: Uint8Array.of(9),
    signature: Uint8Array.of(7, 8),
  });
  const flags = Uint8Array.from(plain);
  flags[0] = 0x80;
  assert.throws(() => decodeRreq(flags), VmeshError);
  // A RERR lists at least one destination; it carries no route record.
  assert.throws(() => encodeRerr({ noDelete: false, avoid: [], unreachable: [] }), VmeshError);
  assert.throws(() => decodeRerr(Uint8Array.from([0, 0, 0])), VmeshError);
  const withRecord = [
    0,
    1,
    ...Buffer.from(idOf(2), 'hex'),
    0,
    0,
    0,
    1,
    1,
    AodvExtension.ROUTE_RECORD,
    0,
  ];
  assert.throws(() => decodeRerr(Uint8Array.from(withRecord)), VmeshError);
});
