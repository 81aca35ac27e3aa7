// source-route (DSR, RFC 4728): discovery, route cache, route errors, salvaging, limits and codecs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VmeshError } from '../../../src/errors/index.ts';
import {
  SourceRouteMessage,
  decodeRouteError,
  decodeRouteReply,
  decodeRouteRequest,
  encodeRouteError,
  encodeRouteReply,
  encodeRouteRequest,
  sourceRoute,
} from '../../../src/routing/source-route/index.ts';
import type {
  RouteError,
  RouteReply,
  RouteRequest,
  SourceRouteInit,
} from '../../../src/routing/source-route/index.ts';
import type {
  ProtocolMessage,
  RoutingAction,
  RoutingProtocol,
} from '../../../src/routing/index.ts';
import { TestNet, bfs, idOf, topologies } from './harness.ts';

/** The empty claim of the null signer. */
const unsigned = { keys: new Uint8Array(0), signature: new Uint8Array(0) };
// ---- helpers --------------------------------------------------------------------------

const none: ReadonlySet<string> = new Set();

function node(net: TestNet, i: number): RoutingProtocol {
  return net.nodes[i] as RoutingProtocol;
}

function id(net: TestNet, i: number): string {
  return net.ids[i] as string;
}

/** Starts a discovery at device i for device j and runs the network. */
function discover(net: TestNet, i: number, j: number, avoid = none, ms = 3000): void {
  const n = node(net, i);
  assert.ok(n.discover !== undefined && n.reactive === true);
  net.apply(i, n.discover(id(net, j), avoid, net.now));
  net.run(ms);
}

/** Device indexes of a path of ids. */
function indexes(net: TestNet, path: readonly string[] | undefined): number[] | undefined {
  return path?.map((d) => net.ids.indexOf(d));
}

function pathOf(net: TestNet, i: number, j: number, avoid = none): number[] | undefined {
  return indexes(net, node(net, i).forwardingTable(avoid).paths?.[id(net, j)]);
}

function assertLinked(net: TestNet, path: readonly number[]): void {
  for (let k = 0; k + 1 < path.length; k++)
    assert.ok(net.linked(path[k] as number, path[k + 1] as number), `no link in ${path.join('-')}`);
}

/** MAX_SALVAGE_COUNT (RFC 4728 §9): how often one packet may be salvaged. */
const MAX_SALVAGE = 15;

/**
 * Follows source routes the way VMs do in 'source' mode: the source's path goes in the
 * packet; a relay whose next device is no live neighbour salvages by replacing the rest of
 * the route with its own path (at most MAX_SALVAGE times). Returns the devices visited and
 * whether the packet arrived; `steps` past 255 (the hop limit) would mean a forwarding loop.
 */
function walk(
  net: TestNet,
  from: number,
  to: number,
  avoid = none,
): { walked: number[]; delivered: boolean; salvaged: number } {
  let route = pathOf(net, from, to, avoid);
  const walked = [from];
  let salvaged = 0;
  if (route === undefined) return { walked, delivered: false, salvaged };
  let at = from;
  for (let k = 0; at !== to; k++) {
    assert.ok(walked.length <= 255, `forwarding loop ${walked.join('-')}`);
    let next = route[k + 1] as number;
    if (!net.linked(at, next)) {
      const salvage = pathOf(net, at, to, avoid);
      if (salvage === undefined || salvaged === MAX_SALVAGE)
        return { walked, delivered: false, salvaged };
      salvaged++;
      route = [...route.slice(0, k), ...salvage];
      next = route[k + 1] as number;
    }
    walked.push(next);
    at = next;
  }
  return { walked, delivered: true, salvaged };
}

/** The devices a packet visits from `from` to `to`, or undefined when it is dropped. */
function followPaths(net: TestNet, from: number, to: number, avoid = none): number[] | undefined {
  const w = walk(net, from, to, avoid);
  return w.delivered ? w.walked : undefined;
}

interface Seen {
  from: number;
  to: number;
  type: number;
  rreq?: RouteRequest;
  rrep?: RouteReply;
  rerr?: RouteError;
}

/** Records every message delivered, decoded. */
function record(net: TestNet): Seen[] {
  const log: Seen[] = [];
  net.onDeliver = (from, to, m) => {
    const s: Seen = { from, to, type: m.type };
    if (m.type === SourceRouteMessage.RREQ) s.rreq = decodeRouteRequest(m.body);
    if (m.type === SourceRouteMessage.RREP) s.rrep = decodeRouteReply(m.body);
    if (m.type === SourceRouteMessage.RERR) s.rerr = decodeRouteError(m.body);
    log.push(s);
  };
  return log;
}

/** A TestNet that also keeps the routesChanged actions, by device. */
class RecordingNet extends TestNet {
  readonly changes: { from: number; destinations: string[] | undefined }[] = [];

  override apply(from: number, actions: RoutingAction[]): void {
    for (const a of actions)
      if (a.type === 'routesChanged') this.changes.push({ from, destinations: a.destinations });
    super.apply(from, actions);
  }
}

const counter = (net: TestNet, i: number, name: string): number =>
  node(net, i).snapshot(net.now).counters[name] ?? 0;

const fake = (i: number): string => (0xf0000000 + i).toString(16).padStart(32, 'e');

const deviceId = fc.stringMatching(/^[0-9a-f]{32}$/);

const sr = (init: SourceRouteInit = {}): ReturnType<typeof sourceRoute> => sourceRoute(init);

// ---- route discovery -------------------------------------------------------------------

test('source-route: is a reactive source-mode protocol with wire id 5 and no routes before a discovery', () => {
  const net = new TestNet(3, sr({ neighbourRoutes: false })).edges(topologies.line(3));
  net.run(1000);
  const n = node(net, 0);
  assert.equal(n.name, 'source-route');
  assert.equal(n.id, 5);
  assert.equal(n.mode, 'source');
  assert.equal(n.reactive, true);
  assert.equal(n.route(id(net, 2)), undefined);
  assert.equal(net.delivered, 0, 'a reactive protocol is silent until asked');
  assert.equal(n.nextDeadline(), Infinity);
});

test('source-route: discovery on a line, a ring and a grid finds a shortest path over live links', () => {
  for (const [size, edges] of [
    [7, topologies.line(7)],
    [8, topologies.ring(8)],
    [16, topologies.grid(4, 4)],
  ] as const) {
    for (let j = 1; j < size; j++) {
      const net = new TestNet(size, sr()).edges([...edges]);
      discover(net, 0, j);
      const r = node(net, 0).route(id(net, j));
      assert.ok(r !== undefined, `no route 0->${j} on ${size} devices`);
      const path = indexes(net, r.path) as number[];
      assert.equal(path[0], 0);
      assert.equal(path[path.length - 1], j);
      assert.equal(r.hops, bfs(net, 0).get(j), `0->${j} on ${size}: ${path.join('-')}`);
      assert.equal(r.cost, r.hops);
      assert.equal(r.nextHop, id(net, path[1] as number));
      assertLinked(net, path);
      assert.deepEqual(pathOf(net, 0, j), path);
      assert.equal(node(net, 0).forwardingTable().nextHops[id(net, j)], r.nextHop);
      assert.deepEqual(followPaths(net, 0, j), path);
      assert.equal(node(net, 0).snapshot(net.now).counters.pendingDiscoveries, 0);
    }
  }
});

test('source-route: the route recorded in a request is the path the request took', () => {
  const net = new TestNet(12, sr({ replyFromCache: false, neighbourRoutes: false })).edges(
    topologies.grid(4, 3),
  );
  const log = record(net);
  discover(net, 0, 11);
  const replies = log.filter((s) => s.rrep !== undefined && s.to === 0);
  assert.ok(replies.length >= 1);
  for (const s of replies) {
    const route = indexes(net, s.rrep?.route) as number[];
    assertLinked(net, route);
    for (let k = 0; k + 1 < route.length; k++) {
      const hop = log.find(
        (x) =>
          x.rreq?.id === s.rrep?.id &&
          x.from === route[k] &&
          x.to === route[k + 1] &&
          (indexes(net, x.rreq?.record) ?? []).join() === route.slice(1, k + 1).join(),
      );
      assert.ok(hop !== undefined, `request did not travel ${route[k]}->${route[k + 1]}`);
    }
    // The reply came back hop by hop along the reversed route.
    for (let k = route.length - 1; k > 0; k--) {
      assert.ok(
        log.some(
          (x) =>
            x.rrep?.id === s.rrep?.id &&
            x.from === route[k] &&
            x.to === route[k - 1] &&
            x.rrep?.route.join() === s.rrep?.route.join(),
        ),
      );
    }
  }
  assert.equal(node(net, 0).route(id(net, 11))?.hops, 5);
});

test('source-route: relays cache what passes them and answer later requests from their cache (RFC 4728 mode)', () => {
  // 0-1-2-3-4 and 5-1: 0 discovers 4, then 5 does.
  const net = new TestNet(6, sr({ shortestPaths: false })).edges([...topologies.line(5), [5, 1]]);
  discover(net, 0, 4);
  assert.deepEqual(pathOf(net, 0, 4), [0, 1, 2, 3, 4]);
  // Relays learned both ways from the request's route record and the reply.
  assert.deepEqual(pathOf(net, 1, 4), [1, 2, 3, 4]);
  assert.deepEqual(pathOf(net, 2, 0), [2, 1, 0]);
  assert.deepEqual(pathOf(net, 3, 0), [3, 2, 1, 0]);
  const log = record(net);
  discover(net, 5, 4);
  assert.deepEqual(pathOf(net, 5, 4), [5, 1, 2, 3, 4]);
  assert.equal(counter(net, 1, 'rrepFromCache'), 1);
  // The non-propagating request was answered by the neighbour: no request went further.
  const requests = log.filter((s) => s.rreq !== undefined);
  assert.ok(requests.length > 0 && requests.every((s) => s.from === 5 && s.rreq?.hopLimit === 1));
});

test('source-route: a cached reply gives a route at once; with shortestPaths the target still brings the shortest', () => {
  // Line 0-1-2-3, a detour 0-4-5-6-7-3, and 8 hanging off 1. While 1-2 is down, 1 learns
  // the detour to 3; then 8 asks for 3 and its neighbour 1 answers from its cache.
  const run = (shortestPaths: boolean): { net: TestNet; log: Seen[] } => {
    const net = new TestNet(9, sr({ shortestPaths })).edges([
      ...topologies.line(4),
      [0, 4],
      [4, 5],
      [5, 6],
      [6, 7],
      [7, 3],
      [8, 1],
    ]);
    net.down(1, 2);
    discover(net, 1, 3);
    assert.deepEqual(pathOf(net, 1, 3), [1, 0, 4, 5, 6, 7, 3]);
    net.up(1, 2);
    const log = record(net);
    net.apply(8, node(net, 8).discover?.(id(net, 3), none, net.now) ?? []);
    net.run(25);
    // The non-propagating request's cached answer is there before any timeout.
    assert.deepEqual(pathOf(net, 8, 3), [8, 1, 0, 4, 5, 6, 7, 3]);
    net.run(3000);
    return { net, log };
  };
  const rfc = run(false);
  assert.deepEqual(
    pathOf(rfc.net, 8, 3),
    [8, 1, 0, 4, 5, 6, 7, 3],
    'RFC 4728: the first reply ends it',
  );
  assert.ok(rfc.log.filter((s) => s.rreq !== undefined).every((s) => s.rreq?.hopLimit === 1));
  const shortest = run(true);
  assert.deepEqual(pathOf(shortest.net, 8, 3), [8, 1, 2, 3]);
  assert.ok(shortest.log.length > rfc.log.length, 'at the price of a propagating request');
});

test('source-route: with shortestPaths (default) every pair gets a shortest path on a grid', () => {
  const net = new TestNet(16, sr()).edges(topologies.grid(4, 4));
  for (let i = 0; i < 16; i++)
    for (let j = 0; j < 16; j++)
      if (i !== j && node(net, i).route(id(net, j)) === undefined) discover(net, i, j, none, 50);
  net.run(3000);
  for (let i = 0; i < 16; i++) {
    const dist = bfs(net, i);
    for (let j = 0; j < 16; j++) {
      if (i === j) continue;
      const p = pathOf(net, i, j);
      assert.ok(p !== undefined, `${i}->${j}`);
      assert.equal(p.length - 1, dist.get(j), `${i}->${j}: ${p.join('-')}`);
      assertLinked(net, p);
    }
  }
});

test('source-route: a non-propagating request reaches a neighbour with one hop of messages', () => {
  // Star around 0; neighbours are found by discovery here.
  const net = new TestNet(5, sr({ neighbourRoutes: false })).edges([
    [0, 1],
    [0, 2],
    [0, 3],
    [3, 4],
  ]);
  const log = record(net);
  discover(net, 0, 1);
  assert.deepEqual(pathOf(net, 0, 1), [0, 1]);
  const requests = log.filter((s) => s.rreq !== undefined);
  assert.equal(requests.length, 3, 'one request to each neighbour');
  assert.ok(requests.every((s) => s.from === 0 && s.rreq?.hopLimit === 1));
  assert.equal(log.filter((s) => s.rrep !== undefined).length, 1);
  assert.equal(log.length, 4);
  assert.equal(counter(net, 3, 'rreqHopLimit'), 1, 'the other neighbours do not forward it');

  // With neighbour routes (the default) a neighbour needs no discovery at all.
  const quiet = new TestNet(2, sr()).edges([[0, 1]]);
  assert.deepEqual(node(quiet, 0).discover?.(id(quiet, 1), none, quiet.now), []);
  assert.deepEqual(pathOf(quiet, 0, 1), [0, 1]);
});

test('source-route: a 2-hop destination is found by the non-propagating request alone', () => {
  const net = new TestNet(6, sr()).edges(topologies.line(6));
  const log = record(net);
  discover(net, 0, 2);
  assert.deepEqual(pathOf(net, 0, 2), [0, 1, 2]);
  assert.ok(log.filter((s) => s.rreq !== undefined).every((s) => s.from === 0));
  assert.equal(counter(net, 0, 'rreqSent'), 1);
});

test('source-route: each device forwards a given request at most once (duplicate suppression)', () => {
  const net = new TestNet(16, sr({ replyFromCache: false, neighbourRoutes: false })).edges(
    topologies.grid(4, 4),
  );
  const log = record(net);
  discover(net, 0, 15);
  const forwards = new Map<string, number>();
  for (const s of log) {
    if (s.rreq === undefined) continue;
    const key = `${s.from}>${s.to}:${s.rreq.initiator}:${s.rreq.id}`;
    forwards.set(key, (forwards.get(key) ?? 0) + 1);
    // A device forwards one copy of a request: every copy it sends has the same route record.
    const same = log.filter(
      (x) =>
        x.rreq?.id === s.rreq?.id &&
        x.from === s.from &&
        x.rreq?.record.join() !== s.rreq?.record.join(),
    );
    assert.equal(same.length, 0, `${s.from} forwarded request ${s.rreq.id} twice`);
  }
  for (const [key, n] of forwards) assert.equal(n, 1, key);
  const duplicates = net.nodes.reduce((sum, _, i) => sum + counter(net, i, 'rreqDuplicate'), 0);
  assert.ok(duplicates > 0, 'copies arriving by other paths were suppressed');
  assert.equal(node(net, 0).route(id(net, 15))?.hops, 6);
});

// ---- avoid-sets ------------------------------------------------------------------------

test('source-route: honours the avoid-set in a diamond', () => {
  const net = new TestNet(4, sr({ neighbourRoutes: false })).edges(topologies.diamond());
  const [, B, C, D] = net.ids as [string, string, string, string];
  const log = record(net);
  discover(net, 0, 3, new Set([B]));
  assert.deepEqual(pathOf(net, 0, 3, new Set([B])), [0, 2, 3]);
  assert.deepEqual(indexes(net, node(net, 0).route(D, new Set([B]))?.path), [0, 2, 3]);
  assert.ok(
    log.every((s) => s.from !== 1 && s.to !== 1),
    'the avoided device saw nothing',
  );
  discover(net, 0, 3, new Set([C]));
  assert.deepEqual(indexes(net, node(net, 0).route(D, new Set([C]))?.path), [0, 1, 3]);
  assert.ok(
    !node(net, 0)
      .forwardingTable(new Set([B]))
      .neighbours.includes(B),
  );
  // The destination may be in the avoid-set: only intermediate devices are avoided.
  assert.deepEqual(indexes(net, node(net, 0).route(D, new Set([C, D]))?.path), [0, 1, 3]);
  assert.equal(node(net, 0).route(D, new Set([B, C])), undefined);
});

test('source-route: devices in the request avoid list never forward it (ring)', () => {
  const net = new TestNet(6, sr()).edges(topologies.ring(6));
  const two = id(net, 2);
  discover(net, 0, 3, new Set([two]));
  assert.deepEqual(pathOf(net, 0, 3, new Set([two])), [0, 5, 4, 3]);
  assert.equal(counter(net, 2, 'rreqForwarded'), 0);
  assert.equal(counter(net, 2, 'rrepSent'), 0);
  // A cached reply honours the avoid list too: 1 knows no route to 3 avoiding 2.
  for (let i = 0; i < 6; i++) {
    for (const p of Object.values(node(net, i).forwardingTable(new Set([two])).paths ?? {}))
      assert.ok(!p.slice(1, -1).includes(two), `device ${i} has a path through an avoided device`);
  }
});

// ---- route maintenance ----------------------------------------------------------------

test('source-route: a ROUTE ERROR removes the broken link from every cache; the source rediscovers', () => {
  const net = new RecordingNet(4, sr({ neighbourRoutes: false, maxTargetReplies: 1 })).edges(
    topologies.diamond(),
  );
  discover(net, 0, 3);
  assert.deepEqual(pathOf(net, 0, 3), [0, 1, 3]);
  const log = record(net);
  net.down(1, 3);
  net.run(100);
  const errors = log.filter((s) => s.rerr !== undefined);
  assert.equal(errors.length, 1);
  assert.deepEqual([errors[0]?.from, errors[0]?.to], [1, 0]);
  assert.equal(counter(net, 0, 'rerrReceived'), 1);
  const [A, B, C, D] = net.ids as [string, string, string, string];
  const usesBrokenLink = (p: readonly string[]): boolean =>
    p.some((d, k) => (d === B && p[k + 1] === D) || (d === D && p[k + 1] === B));
  for (let i = 0; i < 4; i++) {
    for (const avoid of [none, new Set([A]), new Set([B]), new Set([C]), new Set([D])]) {
      for (const p of Object.values(node(net, i).forwardingTable(avoid).paths ?? {}))
        assert.ok(!usesBrokenLink(p), `device ${i} still caches ${indexes(net, p)?.join('-')}`);
    }
  }
  assert.equal(node(net, 0).route(D), undefined);
  assert.ok(net.changes.some((c) => c.from === 0 && c.destinations?.includes(D)));
  discover(net, 0, 3);
  assert.deepEqual(pathOf(net, 0, 3), [0, 2, 3]);
  assert.deepEqual(followPaths(net, 0, 3), [0, 2, 3]);
});

test('source-route: with several replies cached, the source switches paths at once after an error', () => {
  const net = new TestNet(4, sr({ neighbourRoutes: false })).edges(topologies.diamond());
  discover(net, 0, 3);
  assert.deepEqual(pathOf(net, 0, 3), [0, 1, 3]);
  net.down(1, 3);
  net.run(100);
  assert.deepEqual(pathOf(net, 0, 3), [0, 2, 3]);
  // The reverse direction too: 3 heard both requests and uses the other one back.
  assert.deepEqual(pathOf(net, 3, 0), [3, 2, 0]);
});

test('source-route: salvaging — a relay whose next link broke offers another path (grid)', () => {
  const net = new TestNet(9, sr()).edges(topologies.grid(3, 3));
  discover(net, 0, 8);
  const path = pathOf(net, 0, 8) as number[];
  assert.equal(path.length, 5);
  const [relay, next] = [path[1] as number, path[2] as number];
  net.down(relay, next);
  // Before any error reaches the source, a packet on the old path is salvaged at the relay.
  const salvage = pathOf(net, relay, 8);
  assert.ok(salvage !== undefined, 'the relay has another cached path');
  assert.equal(salvage[0], relay);
  assertLinked(net, salvage);
  const walked = followPaths(net, 0, 8);
  assert.ok(walked !== undefined);
  assertLinked(net, walked);
  net.run(100);
  // The error reached the source, which now uses a path without the broken link.
  const now = pathOf(net, 0, 8) as number[];
  assertLinked(net, now);
  assert.equal(counter(net, relay, 'rerrSent'), 1);
});

test('source-route: source routes are loop-free and packets always arrive or drop while links fail and recover', () => {
  const net = new TestNet(9, sr(), { seed: 5 }).edges(topologies.grid(3, 3));
  for (let i = 0; i < 9; i++)
    for (let j = 0; j < 9; j++)
      if (i !== j && node(net, i).route(id(net, j)) === undefined) discover(net, i, j, none, 100);
  let salvaged = 0;
  for (const [a, b] of [
    [0, 1],
    [4, 5],
    [3, 4],
    [7, 8],
  ] as const) {
    net.down(a, b);
    for (let step = 0; step < 10; step++) {
      for (let i = 0; i < 9; i++) {
        for (let j = 0; j < 9; j++) {
          if (i === j) continue;
          const p = pathOf(net, i, j);
          if (p === undefined) continue;
          assert.equal(new Set(p).size, p.length, `path ${p.join('-')} repeats a device`);
          assert.equal(p[0], i);
          assert.equal(p[p.length - 1], j);
          const w = walk(net, i, j);
          salvaged += w.salvaged;
          if (w.delivered) assertLinked(net, w.walked);
        }
      }
      net.run(step === 0 ? 0 : 20);
    }
    for (let j = 1; j < 9; j++)
      if (node(net, 0).route(id(net, j)) === undefined) discover(net, 0, j, none, 200);
    for (let j = 1; j < 9; j++) {
      const walked = followPaths(net, 0, j);
      assert.ok(walked !== undefined, `0 cannot reach ${j} after ${a}-${b} went down`);
      assertLinked(net, walked);
    }
    net.up(a, b);
    net.run(200);
  }
  assert.ok(salvaged > 0, 'some packets were salvaged right after a break');
});

// ---- timers ----------------------------------------------------------------------------

test('source-route: requests are retransmitted with exponential backoff up to MaxRequestPeriod, then held off', () => {
  const net = new TestNet(2, sr({ jitter: 0 }), { delayMs: 1 }).edges([[0, 1]]);
  const sends: { at: number; hopLimit: number }[] = [];
  net.onDeliver = (from, _to, m) => {
    if (from === 0 && m.type === SourceRouteMessage.RREQ)
      sends.push({ at: net.now - 1, hopLimit: decodeRouteRequest(m.body).hopLimit });
  };
  const n = node(net, 0);
  net.apply(0, n.discover?.(fake(1), none, net.now) ?? []);
  assert.deepEqual(n.discover?.(fake(1), none, net.now), [], 'a discovery under way');
  net.run(200000);
  assert.equal(sends[0]?.hopLimit, 1, 'non-propagating first');
  assert.equal(sends[1]?.at, 30, 'NonpropRequestTimeout');
  assert.ok(sends.slice(1).every((s) => s.hopLimit === 255));
  assert.equal(
    sends.length,
    1 + 1 + 16,
    'one non-propagating, one propagating, 16 retransmissions',
  );
  const gaps = sends.slice(2).map((s, k) => s.at - (sends[k + 1]?.at ?? 0));
  assert.deepEqual(gaps.slice(0, 6), [500, 1000, 2000, 4000, 8000, 10000]);
  assert.ok(gaps.every((g) => g <= 10000));
  assert.equal(counter(net, 0, 'discoveryFailed'), 1);
  // After giving up, a new discovery is held off for MaxRequestPeriod, then allowed.
  const gaveUpAt = (sends[sends.length - 1]?.at ?? 0) + 10000;
  const hold = new TestNet(2, sr({ jitter: 0 }), { delayMs: 1 }).edges([[0, 1]]);
  const h = node(hold, 0);
  hold.apply(0, h.discover?.(fake(1), none, hold.now) ?? []);
  hold.runUntil(gaveUpAt + 1);
  assert.deepEqual(h.discover?.(fake(1), none, hold.now), []);
  assert.equal(counter(hold, 0, 'discoverRateLimited'), 1);
  hold.runUntil(gaveUpAt + 10001);
  assert.ok((h.discover?.(fake(1), none, hold.now) ?? []).length > 0);
});

test('source-route: routeInUse keeps a route alive; unused routes time out and routesChanged names them', () => {
  const net = new RecordingNet(3, sr({ routeCacheTimeoutMs: 1000 })).edges(topologies.line(3));
  discover(net, 0, 2, none, 100);
  const two = id(net, 2);
  assert.ok(net.changes.some((c) => c.from === 0 && c.destinations?.includes(two)));
  for (let k = 0; k < 3; k++) {
    net.run(800);
    assert.deepEqual(node(net, 0).routeInUse?.(two, none, net.now), []);
  }
  assert.ok(node(net, 0).route(two) !== undefined);
  net.changes.length = 0;
  net.run(1500);
  assert.equal(node(net, 0).route(two), undefined);
  assert.ok(net.changes.some((c) => c.from === 0 && c.destinations?.includes(two)));
  assert.ok(counter(net, 0, 'cacheExpired') >= 1);
  // A route in use that is gone starts a discovery.
  const actions = node(net, 0).routeInUse?.(two, none, net.now) ?? [];
  assert.ok(actions.some((a) => a.type === 'send' && a.message.type === SourceRouteMessage.RREQ));
});

// ---- limits ----------------------------------------------------------------------------

test('source-route: a storm of discoveries for unknown devices stays bounded in memory and messages', () => {
  const net = new TestNet(3, sr()).edges(topologies.line(3));
  const n = node(net, 0);
  for (let k = 0; k < 1000; k++) {
    net.apply(0, n.discover?.(fake(k), none, net.now) ?? []);
    if (k % 100 === 0) net.run(10);
  }
  net.run(5000);
  const c = n.snapshot(net.now).counters;
  assert.ok((c.pendingDiscoveries ?? 0) <= 64, `pending ${c.pendingDiscoveries}`);
  assert.ok((c.ownRequestIds ?? 0) <= 128);
  assert.ok((c.discoveryEvicted ?? 0) > 0);
  // Token bucket: burst 10 plus 10 per second, over ~5 s, one neighbour.
  assert.ok((net.sentBy[0] ?? 0) <= 10 + 10 * 6, `sent ${net.sentBy[0]}`);
  assert.ok((c.rreqRateLimited ?? 0) > 0);
  const relay = node(net, 1).snapshot(net.now).counters;
  assert.ok((relay.requestIds ?? 0) <= 16);
  assert.ok((relay.cachedPaths ?? 0) <= 256);
});

test('source-route: route cache and request table stay bounded under many requests from unknown initiators', () => {
  const net = new TestNet(
    2,
    sr({ maxCachedPaths: 50, requestTableSize: 20, requestTableIds: 4 }),
  ).edges([[0, 1]]);
  for (let k = 0; k < 1000; k++) {
    const rreq = encodeRouteRequest({
      initiator: fake(k),
      target: fake(100000 + k),
      id: k,
      hopLimit: 1,
      record: [id(net, 0)],
      avoid: [],
    });
    net.inject(0, 1, { type: SourceRouteMessage.RREQ, body: rreq });
  }
  const c = node(net, 1).snapshot(net.now).counters;
  assert.ok((c.cachedPaths ?? 0) <= 50, `cached ${c.cachedPaths}`);
  assert.ok((c.requestInitiators ?? 0) <= 20);
  assert.ok((c.requestIds ?? 0) <= 20 * 4);
  assert.ok((c.cacheEvicted ?? 0) > 0);
  assert.equal(c.malformed, 0);
  // The newest paths are kept.
  assert.deepEqual(indexes(net, node(net, 1).route(fake(999))?.path), [1, 0, -1]);
});

// ---- robustness ------------------------------------------------------------------------

test('source-route: malformed and foreign control messages are dropped and counted, never thrown (property)', () => {
  const net = new TestNet(2, sr()).edges([[0, 1]]);
  const n = node(net, 1);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.uint8Array({ maxLength: 120 }),
      (type, body) => {
        const before = n.snapshot(net.now).counters.malformed ?? 0;
        const actions = n.receive(id(net, 0), { type, body }, net.now);
        assert.ok(Array.isArray(actions));
        const after = n.snapshot(net.now).counters.malformed ?? 0;
        assert.ok(after === before || after === before + 1);
      },
    ),
  );
  // From a device that is not a neighbour.
  const before = n.snapshot(net.now).counters.malformed ?? 0;
  n.receive('f'.repeat(32), { type: SourceRouteMessage.RREQ, body: new Uint8Array(4) }, net.now);
  assert.equal(n.snapshot(net.now).counters.malformed, before + 1);
});

test('source-route: well-formed messages with arbitrary contents never make receive() throw (property)', () => {
  const net = new TestNet(3, sr()).edges(topologies.line(3));
  discover(net, 0, 2);
  const [A, B, C] = net.ids as [string, string, string];
  const known = fc.constantFrom(A, B, C);
  const anyId = fc.oneof(known, deviceId);
  const message = fc.oneof(
    fc
      .record({
        devices: fc.uniqueArray(anyId, { minLength: 2, maxLength: 6 }),
        id: fc.integer({ min: 0, max: 5 }),
        hopLimit: fc.integer({ min: 1, max: 3 }),
        avoid: fc.array(anyId, { maxLength: 3 }),
        endWithSender: fc.boolean(),
      })
      .map(({ devices, id: rid, hopLimit, avoid, endWithSender }) => {
        const record = devices.slice(2).filter((d) => d !== B);
        if (endWithSender && devices[0] !== B && devices[1] !== B) record.push(B);
        return {
          type: SourceRouteMessage.RREQ,
          body: encodeRouteRequest({
            initiator: devices[0] as string,
            target: devices[1] as string,
            id: rid,
            hopLimit,
            record,
            avoid,
          }),
        };
      }),
    fc
      .record({
        id: fc.integer({ min: 0, max: 5 }),
        route: fc.uniqueArray(anyId, { minLength: 2, maxLength: 6 }),
      })
      .map((m) => ({
        type: SourceRouteMessage.RREP,
        body: encodeRouteReply({ ...m, claim: unsigned }),
      })),
    fc
      .record({
        id: fc.integer({ min: 0, max: 5 }),
        devices: fc.uniqueArray(anyId, { minLength: 3, maxLength: 6 }),
      })
      .map(({ id: eid, devices }) => ({
        type: SourceRouteMessage.RERR,
        body: encodeRouteError({
          id: eid,
          unreachable: devices[0] as string,
          route: devices.slice(1),
          claim: unsigned,
        }),
      })),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 }), fc.boolean(), message, (to, left, m) => {
      const from = to !== 1 ? 1 : left ? 0 : 2;
      const actions = node(net, to).receive(id(net, from), m, net.now);
      assert.ok(Array.isArray(actions));
      net.apply(to, actions);
      net.run(10);
    }),
    { numRuns: 300 },
  );
  // A request whose record is full is not forwarded (it could not hold another device).
  const full = Array.from({ length: 252 }, (_, k) => fake(k));
  const long = encodeRouteRequest({
    initiator: fake(999),
    target: fake(998),
    id: 1,
    hopLimit: 255,
    record: [...full, A],
    avoid: [],
  });
  assert.doesNotThrow(() =>
    node(net, 1).receive(A, { type: SourceRouteMessage.RREQ, body: long }, net.now),
  );
  assert.ok(counter(net, 1, 'rreqHopLimit') >= 1);
});

test('source-route: well-formed but foreign, stale or replayed messages are dropped and counted', () => {
  const net = new TestNet(3, sr({ neighbourRoutes: false })).edges(topologies.line(3));
  const captured: ProtocolMessage[] = [];
  net.onDeliver = (from, to, m) => {
    if (from === 1 && to === 0 && m.type === SourceRouteMessage.RREP) captured.push(m);
  };
  discover(net, 0, 2);
  const [A, B, C] = net.ids as [string, string, string];
  const reply = captured[0] as ProtocolMessage;
  const n = node(net, 0);
  const count = (name: string): number => counter(net, 0, name);
  // Replayed reply.
  n.receive(B, reply, net.now);
  assert.equal(count('rrepDuplicate'), 1);
  // A reply to a request never sent.
  n.receive(
    B,
    { type: 2, body: encodeRouteReply({ id: 999, route: [A, B, C], claim: unsigned }) },
    net.now,
  );
  assert.equal(count('rrepStale'), 1);
  // A reply that does not come from the next device on its route.
  const before = count('malformed');
  n.receive(
    B,
    { type: 2, body: encodeRouteReply({ id: 1, route: [A, C, B], claim: unsigned }) },
    net.now,
  );
  // A request whose record does not end with the sender.
  n.receive(
    B,
    {
      type: 1,
      body: encodeRouteRequest({
        initiator: C,
        target: fake(1),
        id: 1,
        hopLimit: 2,
        record: [],
        avoid: [],
      }),
    },
    net.now,
  );
  // An error not addressed along a route through us.
  n.receive(
    B,
    {
      type: 3,
      body: encodeRouteError({ id: 1, unreachable: fake(2), route: [C, A], claim: unsigned }),
    },
    net.now,
  );
  assert.equal(count('malformed'), before + 3);
  // A request of our own that came back.
  n.receive(
    B,
    {
      type: 1,
      body: encodeRouteRequest({
        initiator: A,
        target: C,
        id: 77,
        hopLimit: 2,
        record: [B],
        avoid: [],
      }),
    },
    net.now,
  );
  assert.equal(count('rreqLoop'), 1);
  // A replayed route error is applied once.
  const rerr = {
    type: 3,
    body: encodeRouteError({ id: 9, unreachable: fake(3), route: [B, A], claim: unsigned }),
  };
  n.receive(B, rerr, net.now);
  n.receive(B, rerr, net.now);
  assert.equal(count('rerrReceived'), 1);
  assert.equal(count('rerrDuplicate'), 1);
  assert.ok(n.route(C) !== undefined, 'nothing of this disturbed the route');
});

// ---- codecs ----------------------------------------------------------------------------

const routeRequest: fc.Arbitrary<RouteRequest> = fc
  .record({
    devices: fc.uniqueArray(deviceId, { minLength: 2, maxLength: 12 }),
    id: fc.integer({ min: 0, max: 0xffffffff }),
    hopLimit: fc.integer({ min: 1, max: 255 }),
    avoid: fc.array(deviceId, { maxLength: 5 }),
  })
  .map(({ devices, id: rid, hopLimit, avoid }) => ({
    initiator: devices[0] as string,
    target: devices[1] as string,
    id: rid,
    hopLimit,
    record: devices.slice(2),
    avoid,
  }));

const claimArb = fc.record(
  { keys: fc.uint8Array({ maxLength: 64 }), signature: fc.uint8Array({ maxLength: 64 }) },
  { noNullPrototype: true },
);

const routeReply: fc.Arbitrary<RouteReply> = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffffffff }),
    route: fc.uniqueArray(deviceId, { minLength: 2, maxLength: 12 }),
    claim: claimArb,
  })
  .map(({ id: rid, route, claim }) => ({ id: rid, route, claim }));

const routeError: fc.Arbitrary<RouteError> = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffffffff }),
    devices: fc.uniqueArray(deviceId, { minLength: 3, maxLength: 12 }),
    claim: claimArb,
  })
  .map(({ id: eid, devices, claim }) => ({
    id: eid,
    unreachable: devices[0] as string,
    route: devices.slice(1),
    claim,
  }));

function onlyMalformed(decode: (b: Uint8Array) => unknown): fc.IPropertyWithHooks<[Uint8Array]> {
  return fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    try {
      decode(bytes);
    } catch (err) {
      assert.ok(err instanceof VmeshError, String(err));
      assert.equal(err.code, 'VMESH_ERR_MALFORMED');
    }
  });
}

test('source-route codecs: RREQ, RREP and RERR round-trip (property)', () => {
  fc.assert(
    fc.property(routeRequest, (m) =>
      assert.deepEqual(decodeRouteRequest(encodeRouteRequest(m)), m),
    ),
  );
  fc.assert(
    fc.property(routeReply, (m) => assert.deepEqual(decodeRouteReply(encodeRouteReply(m)), m)),
  );
  fc.assert(
    fc.property(routeError, (m) => assert.deepEqual(decodeRouteError(encodeRouteError(m)), m)),
  );
});

test('source-route codecs: arbitrary bytes never throw anything but VMESH_ERR_MALFORMED (property)', () => {
  fc.assert(onlyMalformed(decodeRouteRequest), { numRuns: 500 });
  fc.assert(onlyMalformed(decodeRouteReply), { numRuns: 500 });
  fc.assert(onlyMalformed(decodeRouteError), { numRuns: 500 });
  // Truncated and extended valid messages are malformed too.
  fc.assert(
    fc.property(routeRequest, fc.nat(), (m, cut) => {
      const bytes = encodeRouteRequest(m);
      assert.throws(() => decodeRouteRequest(bytes.subarray(0, cut % bytes.length)), VmeshError);
      assert.throws(() => decodeRouteRequest(Buffer.concat([bytes, Buffer.of(0)])), VmeshError);
    }),
  );
  fc.assert(
    fc.property(routeReply, routeError, fc.nat(), (p, e, cut) => {
      const reply = encodeRouteReply(p);
      assert.throws(() => decodeRouteReply(reply.subarray(0, cut % reply.length)), VmeshError);
      assert.throws(() => decodeRouteReply(Buffer.concat([reply, Buffer.of(0)])), VmeshError);
      const error = encodeRouteError(e);
      assert.throws(() => decodeRouteError(error.subarray(0, cut % error.length)), VmeshError);
      assert.throws(() => decodeRouteError(Buffer.concat([error, Buffer.of(0)])), VmeshError);
    }),
  );
});

test('source-route codecs: routes with loops or impossible fields are rejected both ways', () => {
  const [a, b, c] = [idOf(1), idOf(2), idOf(3)];
  const bad = (f: () => unknown): void =>
    assert.throws(f, (e: unknown) => e instanceof VmeshError && e.code === 'VMESH_ERR_MALFORMED');
  bad(() => encodeRouteReply({ id: 1, route: [a, b, a], claim: unsigned }));
  bad(() => encodeRouteReply({ id: 1, route: [a], claim: unsigned }));
  bad(() =>
    encodeRouteReply({
      id: 1,
      route: [a, b],
      claim: { keys: new Uint8Array(256), signature: new Uint8Array(0) },
    }),
  );
  bad(() =>
    encodeRouteRequest({ initiator: a, target: b, id: 1, hopLimit: 0, record: [], avoid: [] }),
  );
  bad(() =>
    encodeRouteRequest({ initiator: a, target: b, id: 1, hopLimit: 3, record: [a], avoid: [] }),
  );
  bad(() => encodeRouteError({ id: 1, unreachable: c, route: [a, c], claim: unsigned }));
  // Hand-made bodies: a reply whose route repeats a device.
  const body = Buffer.concat([
    Buffer.of(0, 0, 0, 1, 3),
    Buffer.from(a + b + a, 'hex'),
    Buffer.of(0, 0),
  ]);
  bad(() => decodeRouteReply(body));
  const ab = Buffer.concat([Buffer.of(0, 0, 0, 1, 2), Buffer.from(a + b, 'hex')]);
  assert.deepEqual(decodeRouteReply(Buffer.concat([ab, Buffer.of(0, 0)])), {
    id: 1,
    route: [a, b],
    claim: unsigned,
  });
  // The claim block: keys then signature, each with its length; a missing one is malformed.
  assert.deepEqual(decodeRouteReply(Buffer.concat([ab, Buffer.of(1, 5, 2, 6, 7)])).claim, {
    keys: Uint8Array.of(5),
    signature: Uint8Array.of(6, 7),
  });
  bad(() => decodeRouteReply(ab));
  bad(() => decodeRouteReply(Buffer.concat([ab, Buffer.of(0)])));
  bad(() => decodeRouteReply(Buffer.concat([ab, Buffer.of(0, 2, 1)])));
});
