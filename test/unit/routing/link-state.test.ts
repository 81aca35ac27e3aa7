// link-state in depth: HELLO/LSA codecs, link quality (ETX) and hysteresis, MinLSInterval,
// multipoint relays, ageing, and the drop-and-count rules. Deterministic (TestNet, seeded RNG).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VmeshError } from '../../../src/errors/index.ts';
import { linkState } from '../../../src/routing/index.ts';
import type { LinkStateInit } from '../../../src/routing/index.ts';
import {
  LinkStateMessage,
  decodeHello,
  decodeLsa,
  encodeHello,
  encodeLsa,
} from '../../../src/routing/link-state/messages.ts';
import type { HelloMessage, LsaMessage } from '../../../src/routing/link-state/messages.ts';
import type {
  RoutingAction,
  RoutingProtocol,
  RoutingProtocolFactory,
} from '../../../src/routing/types.ts';
import { TestNet, bfs, idOf, seeded, topologies } from './harness.ts';

const deviceId = fc.stringMatching(/^[0-9a-f]{32}$/);

const helloArb: fc.Arbitrary<HelloMessage> = fc.record({
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  intervalMs: fc.integer({ min: 1, max: 0xffffffff }),
  mpr: fc.boolean(),
  neighbours: fc.uniqueArray(deviceId, { maxLength: 20 }).chain((ids) =>
    fc.tuple(
      ...ids.map((id) =>
        fc
          .record({
            symmetric: fc.boolean(),
            mpr: fc.boolean(),
            quality: fc.integer({ min: 0, max: 255 }),
          })
          .map((e) => ({ id, ...e, mpr: e.symmetric && e.mpr })),
      ),
    ),
  ),
});

const claimArb = fc.record(
  { keys: fc.uint8Array({ maxLength: 64 }), signature: fc.uint8Array({ maxLength: 64 }) },
  { noNullPrototype: true },
);

const lsaArb: fc.Arbitrary<LsaMessage> = deviceId.chain((origin) =>
  fc
    .record({
      origin: fc.constant(origin),
      seq: fc.integer({ min: 0, max: 0xffffffff }),
      originLifetimeMs: fc.integer({ min: 0, max: 0xffffffff }),
      originHopLimit: fc.integer({ min: 0, max: 255 }),
      // Remaining lifetime and hop limit as fractions of the originals (never above them).
      lifetimeMs: fc.double({ min: 0, max: 1, noNaN: true }),
      hopLimit: fc.double({ min: 0, max: 1, noNaN: true }),
      claim: claimArb,
      links: fc
        .uniqueArray(
          deviceId.filter((id) => id !== origin),
          { maxLength: 20 },
        )
        .chain((ids) =>
          fc.tuple(
            ...ids.map((neighbour) =>
              fc.integer({ min: 1, max: 0xffffffff }).map((cost) => ({ neighbour, cost })),
            ),
          ),
        ),
    })
    .map((m) => ({
      ...m,
      lifetimeMs: Math.floor(m.lifetimeMs * m.originLifetimeMs),
      hopLimit: Math.floor(m.hopLimit * m.originHopLimit),
    })),
);

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

function throwsMalformed(f: () => unknown): void {
  assert.throws(f, (e: unknown) => e instanceof VmeshError && e.code === 'VMESH_ERR_MALFORMED');
}

const counters = (net: TestNet, i: number): Record<string, number> =>
  (net.nodes[i] as RoutingProtocol).snapshot(net.now).counters;

const neighbourCost = (net: TestNet, i: number, j: number): number | undefined =>
  (net.nodes[i] as RoutingProtocol)
    .snapshot(net.now)
    .neighbours.find((n) => n.device === net.ids[j])?.cost;

const node = (net: TestNet, i: number): RoutingProtocol => net.nodes[i] as RoutingProtocol;

// ---- codecs ---------------------------------------------------------------------------------

test('HELLO: encode/decode round trip (property); arbitrary bytes only ever throw MALFORMED', () => {
  fc.assert(fc.property(helloArb, (m) => assert.deepEqual(decodeHello(encodeHello(m)), { ...m })));
  fc.assert(onlyMalformed(decodeHello));
  // Every truncation of a valid HELLO is malformed too.
  fc.assert(
    fc.property(helloArb, fc.nat(), (m, cut) => {
      const bytes = encodeHello(m);
      const k = cut % bytes.length;
      throwsMalformed(() => decodeHello(bytes.subarray(0, k)));
    }),
  );
});

test('HELLO: reserved bits, MPR without symmetry, a repeated neighbour, interval 0 and trailing bytes are malformed', () => {
  const a = idOf(1);
  const b = idOf(2);
  const good = encodeHello({
    seq: 7,
    intervalMs: 1000,
    mpr: true,
    neighbours: [
      { id: a, symmetric: true, mpr: true, quality: 200 },
      { id: b, symmetric: false, mpr: false, quality: 10 },
    ],
  });
  assert.equal(decodeHello(good).neighbours.length, 2);
  const mutate = (pos: number, value: number): Buffer => {
    const copy = Buffer.from(good);
    copy[pos] = value;
    return copy;
  };
  throwsMalformed(() => decodeHello(mutate(8, 0x02))); // reserved message flag
  throwsMalformed(() => decodeHello(mutate(10 + 16, 0x04))); // reserved link bit
  throwsMalformed(() => decodeHello(mutate(10 + 18 + 16, 0x02))); // MPR on a heard-only link
  const twice = Buffer.from(good);
  Buffer.from(a, 'hex').copy(twice, 10 + 18);
  throwsMalformed(() => decodeHello(twice));
  const zero = Buffer.from(good);
  zero.writeUInt32BE(0, 4);
  throwsMalformed(() => decodeHello(zero));
  throwsMalformed(() => decodeHello(Buffer.concat([good, Buffer.from([0])])));
});

test('LSA: encode/decode round trip (property); arbitrary bytes only ever throw MALFORMED', () => {
  fc.assert(fc.property(lsaArb, (m) => assert.deepEqual(decodeLsa(encodeLsa(m)), { ...m })));
  fc.assert(onlyMalformed(decodeLsa));
  // Every truncation of a valid LSA is malformed too.
  fc.assert(
    fc.property(lsaArb, fc.nat(), (m, cut) => {
      const bytes = encodeLsa(m);
      throwsMalformed(() => decodeLsa(bytes.subarray(0, cut % bytes.length)));
    }),
  );
});

const unsigned = { keys: new Uint8Array(0), signature: new Uint8Array(0) };

test('LSA: cost 0, a link to the origin itself, a repeated neighbour and trailing bytes are malformed', () => {
  const lsa = (links: LsaMessage['links']): Buffer =>
    encodeLsa({
      origin: idOf(1),
      seq: 1,
      originLifetimeMs: 1000,
      originHopLimit: 4,
      links,
      lifetimeMs: 1000,
      hopLimit: 4,
      claim: unsigned,
    });
  assert.equal(decodeLsa(lsa([{ neighbour: idOf(2), cost: 3 }])).links[0]?.cost, 3);
  const zero = lsa([{ neighbour: idOf(2), cost: 3 }]);
  zero.writeUInt32BE(0, 26 + 16);
  throwsMalformed(() => decodeLsa(zero));
  throwsMalformed(() => decodeLsa(lsa([{ neighbour: idOf(1), cost: 3 }])));
  throwsMalformed(() =>
    decodeLsa(
      lsa([
        { neighbour: idOf(2), cost: 3 },
        { neighbour: idOf(2), cost: 4 },
      ]),
    ),
  );
  throwsMalformed(() => decodeLsa(Buffer.concat([lsa([]), Buffer.from([1])])));
});

test('LSA: the remaining lifetime and hop limit may not exceed the signed originals; a claim block that overruns is malformed', () => {
  const base: LsaMessage = {
    origin: idOf(1),
    seq: 1,
    originLifetimeMs: 1000,
    originHopLimit: 4,
    links: [{ neighbour: idOf(2), cost: 3 }],
    lifetimeMs: 600,
    hopLimit: 2,
    claim: { keys: Uint8Array.of(1, 2), signature: Uint8Array.of(3) },
  };
  const good = encodeLsa(base);
  assert.deepEqual(decodeLsa(good), base);
  // The encoder clamps; a decoder meeting larger values refuses them.
  assert.equal(decodeLsa(encodeLsa({ ...base, lifetimeMs: 5000, hopLimit: 9 })).hopLimit, 4);
  const tail = 26 + 20;
  const longer = Buffer.from(good);
  longer.writeUInt32BE(1001, tail);
  throwsMalformed(() => decodeLsa(longer));
  const higher = Buffer.from(good);
  higher[tail + 4] = 5;
  throwsMalformed(() => decodeLsa(higher));
  const overrun = Buffer.from(good);
  overrun[tail + 5] = 3; // keysLen 3: the signature length byte is eaten, the rest overruns
  throwsMalformed(() => decodeLsa(overrun));
  assert.throws(
    () =>
      encodeLsa({ ...base, claim: { keys: new Uint8Array(256), signature: new Uint8Array(0) } }),
    (e: unknown) => e instanceof VmeshError && e.code === 'VMESH_ERR_MALFORMED',
  );
});

// ---- drop and count -------------------------------------------------------------------------

test('malformed messages, strangers and replayed HELLOs are dropped and counted, never thrown', () => {
  const net = new TestNet(2, linkState()).edges([[0, 1]]);
  let lastHello: Uint8Array | undefined;
  net.onDeliver = (from, _to, m) => {
    if (from === 0 && m.type === LinkStateMessage.HELLO) lastHello = m.body;
  };
  net.run(3000);
  assert.ok(lastHello !== undefined);
  const before = counters(net, 1);
  net.inject(0, 1, { type: LinkStateMessage.HELLO, body: new Uint8Array(3) });
  net.inject(0, 1, { type: LinkStateMessage.LSA, body: new Uint8Array(30) });
  net.inject(0, 1, { type: 9, body: new Uint8Array(0) });
  node(net, 1).receive('f'.repeat(32), { type: LinkStateMessage.HELLO, body: lastHello }, net.now);
  assert.equal(counters(net, 1).malformed, (before.malformed ?? 0) + 4);
  // The last HELLO again: a replay (same per-link sequence number).
  net.inject(0, 1, { type: LinkStateMessage.HELLO, body: lastHello });
  assert.equal(counters(net, 1).helloStale, (before.helloStale ?? 0) + 1);
  net.run(3000);
  assert.equal(node(net, 1).snapshot(net.now).neighbours[0]?.state, 'symmetric');
  assert.equal(node(net, 0).route(net.ids[1] as string)?.cost, 1);
});

// ---- link quality ---------------------------------------------------------------------------

test('quality drops on a link losing half its HELLOs, and the route moves to a clean 2-hop path', () => {
  // A(0)–B(1) direct but lossy; A–C(2)–B clean.
  const edges: [number, number][] = [
    [0, 1],
    [0, 2],
    [2, 1],
  ];
  const clean = new TestNet(3, linkState()).edges(edges);
  clean.run(30000);
  assert.equal(node(clean, 0).route(clean.ids[1] as string)?.nextHop, clean.ids[1]);

  const net = new TestNet(3, linkState()).edges(edges);
  const coin = seeded(42);
  const lossy = (a: number, b: number): boolean => (a === 0 && b === 1) || (a === 1 && b === 0);
  net.drop = (from, to, m) => m.type === LinkStateMessage.HELLO && lossy(from, to) && coin() < 0.5;
  net.run(30000);
  // From then on (the qualities have settled near 0.5) every one-second sample avoids the lossy link.
  for (let s = 30; s < 90; s++) {
    net.run(1000);
    assert.equal(node(net, 0).route(net.ids[1] as string)?.nextHop, net.ids[2], `at ${s} s`);
  }
  for (const [a, b] of [
    [0, 1],
    [1, 0],
  ] as const) {
    // ETX ≈ 1 / (0.5 × 0.5): the cost of the lossy link is well above its base cost of 1.
    assert.ok((neighbourCost(net, a, b) ?? 0) >= 2, `cost ${a}->${b}: ${neighbourCost(net, a, b)}`);
    assert.ok((counters(net, a).helloMissed ?? 0) > 10);
    const r = node(net, a).route(net.ids[b] as string);
    assert.equal(r?.nextHop, net.ids[2], `${a} -> ${b} should go through the clean relay`);
    assert.equal(r?.hops, 2);
    assert.deepEqual(net.follow(a, b), [a, 2, b]);
  }
  // The clean links keep their base cost.
  assert.equal(neighbourCost(net, 0, 2), 1);
  assert.equal(neighbourCost(net, 2, 1), 1);
});

test('countLateHellos: a neighbour that falls silent loses quality per missed HELLO interval before its hold time runs out', () => {
  const net = new TestNet(2, linkState({ countLateHellos: true })).edges([]);
  net.up(0, 1, 100);
  net.run(5000);
  assert.equal(neighbourCost(net, 0, 1), 100);
  const silentAt = net.now;
  net.drop = (from) => from === 1;
  net.runUntil(silentAt + 3700);
  // Three intervals missed (at 1.5, 2.5 and 3.5 intervals): quality 0.9^3, cost 100 / 0.729.
  assert.equal(counters(net, 0).helloMissed, 3);
  assert.equal(neighbourCost(net, 0, 1), 137);
  assert.equal(node(net, 0).snapshot(net.now).neighbours[0]?.state, 'symmetric');
  // The second miss moved the cost past the hysteresis (123 > 100 × 1.2): re-advertised and used;
  // the third (137 < 123 × 1.2) did not.
  assert.equal(node(net, 0).route(net.ids[1] as string)?.cost, 123);
  net.runUntil(silentAt + 5200);
  assert.notEqual(node(net, 0).snapshot(net.now).neighbours[0]?.state, 'symmetric');
  assert.equal(node(net, 0).route(net.ids[1] as string), undefined);
  // Back: symmetric again, and the quality recovers towards 1.
  net.drop = undefined;
  net.run(40000);
  assert.equal(node(net, 0).snapshot(net.now).neighbours[0]?.state, 'symmetric');
  assert.ok((neighbourCost(net, 0, 1) ?? 0) <= 110);
});

test('hysteresis: small cost fluctuations do not re-originate; big ones do, at most once per MinLSInterval', () => {
  const init: LinkStateInit = { minLsaIntervalMs: 500 };
  const net = new TestNet(2, linkState(init)).edges([]);
  net.up(0, 1, 100);
  net.run(5000);
  const originated = (): number => counters(net, 0).lsaOriginated ?? 0;
  const start = originated();
  // One lost HELLO: quality 0.91, cost 110 < 100 × 1.2.
  let dropped = false;
  net.drop = (from, _to, m) => {
    if (dropped || from !== 1 || m.type !== LinkStateMessage.HELLO) return false;
    dropped = true;
    return true;
  };
  net.run(4000);
  assert.ok(dropped);
  const cost = neighbourCost(net, 0, 1) ?? 0;
  assert.ok(cost > 100 && cost <= 120, `cost ${cost}`);
  assert.equal(originated(), start, 'a small fluctuation re-originated');
  assert.equal(node(net, 0).route(net.ids[1] as string)?.cost, 100);
  // A base cost change within the threshold: nothing.
  net.apply(0, node(net, 0).linkCost(net.ids[1] as string, 105, net.now));
  assert.equal(originated(), start);
  // A big one: re-originated at once.
  net.run(10000);
  const before = originated();
  net.apply(0, node(net, 0).linkCost(net.ids[1] as string, 300, net.now));
  assert.equal(originated(), before + 1);
  assert.ok((node(net, 1).route(net.ids[0] as string)?.cost ?? 0) < 300);
  net.run(50);
  // base 300 × ETX (the lost HELLO is almost forgotten by now)
  const at300 = node(net, 0).route(net.ids[1] as string)?.cost ?? 0;
  assert.ok(at300 >= 300 && at300 < 320, `cost ${at300}`);
  // Another big one 50 ms later: deferred to MinLSInterval, but used locally at once.
  const deferred = counters(net, 0).lsaDeferred ?? 0;
  net.apply(0, node(net, 0).linkCost(net.ids[1] as string, 1000, net.now));
  assert.equal(originated(), before + 1);
  assert.equal(counters(net, 0).lsaDeferred, deferred + 1);
  assert.equal(node(net, 0).route(net.ids[1] as string)?.cost, neighbourCost(net, 0, 1));
  assert.ok((neighbourCost(net, 0, 1) ?? 0) >= 1000);
  net.run(500);
  assert.equal(originated(), before + 2);
});

// ---- multipoint relays ----------------------------------------------------------------------

/** A grid with diagonals (each device linked to its 8 surrounding devices). */
function kingGrid(w: number, h: number): [number, number][] {
  const e = topologies.grid(w, h);
  for (let y = 0; y + 1 < h; y++) {
    for (let x = 0; x < w; x++) {
      if (x + 1 < w) e.push([y * w + x, (y + 1) * w + x + 1]);
      if (x > 0) e.push([y * w + x, (y + 1) * w + x - 1]);
    }
  }
  return e;
}

function randomGraph(n: number, extra: number, seed: number): [number, number][] {
  const random = seeded(seed);
  const e = topologies.line(n);
  const have = new Set(e.map(([a, b]) => `${a}-${b}`));
  while (e.length < n - 1 + extra) {
    const a = Math.floor(random() * n);
    const b = Math.floor(random() * n);
    const key = a < b ? `${a}-${b}` : `${b}-${a}`;
    if (a === b || have.has(key)) continue;
    have.add(key);
    e.push([Math.min(a, b), Math.max(a, b)]);
  }
  return e;
}

function floodRun(
  size: number,
  edges: [number, number][],
  mpr: boolean,
): { net: TestNet; lsaTransmissions: number } {
  const net = new TestNet(size, linkState({ mpr, lsaRefreshMs: 15000 }), { seed: 11 });
  let lsaTransmissions = 0;
  net.onDeliver = (_from, _to, m) => {
    if (m.type === LinkStateMessage.LSA) lsaTransmissions++;
  };
  net.edges(edges);
  // Long enough for two refreshes of every advertisement.
  net.run(35000);
  return { net, lsaTransmissions };
}

for (const [name, size, edges] of [
  ['a 5x5 grid', 25, topologies.grid(5, 5)],
  ['a 5x5 grid with diagonals', 25, kingGrid(5, 5)],
  ['a random graph', 24, randomGraph(24, 50, 5)],
] as const) {
  test(`MPR on ${name}: every advertisement reaches every device, the same shortest paths, fewer LSA transmissions`, () => {
    const plain = floodRun(size, [...edges], false);
    const relayed = floodRun(size, [...edges], true);
    for (let i = 0; i < size; i++) {
      assert.equal(counters(relayed.net, i).lsdbSize, size, `device ${i} misses advertisements`);
      const dist = bfs(relayed.net, i);
      for (let j = 0; j < size; j++) {
        if (i === j) continue;
        const dest = relayed.net.ids[j] as string;
        const r = node(relayed.net, i).route(dest);
        assert.deepEqual(r?.path, node(plain.net, i).route(dest)?.path, `path ${i}->${j}`);
        assert.equal(r?.hops, dist.get(j));
        assert.ok(relayed.net.follow(i, j) !== undefined, `loop or dead end ${i}->${j}`);
      }
    }
    const relays = relayed.net.nodes.reduce(
      (sum, _, i) => sum + (counters(relayed.net, i).mprs ?? 0),
      0,
    );
    assert.ok(relays > 0);
    assert.equal(counters(plain.net, 0).mprs, 0);
    // (In a plain grid only the devices near the border have redundant neighbours; with
    // diagonals every inner device needs 4 relays out of 8.)
    assert.ok(
      relayed.lsaTransmissions < plain.lsaTransmissions * 0.8,
      `${relayed.lsaTransmissions} LSA transmissions with MPR, ${plain.lsaTransmissions} without`,
    );
  });
}

test('MPR selection (RFC 3626 §8.3.1): in a grid with diagonals an inner device picks its 4 diagonal neighbours', () => {
  const net = new TestNet(25, linkState({ mpr: true }), { seed: 2 }).edges(kingGrid(5, 5));
  net.run(5000);
  assert.equal(counters(net, 12).mprs, 4);
  // The diagonal neighbours of the centre (6, 8, 16, 18) each have it as an MPR selector.
  for (const d of [6, 8, 16, 18]) assert.ok((counters(net, d).mprSelectors ?? 0) >= 1);
});

test('MPR: a network mixing MPR and plain devices still floods everywhere', () => {
  const mixed: RoutingProtocolFactory = (c) =>
    linkState({ mpr: parseInt(c.self, 16) % 2 === 0 })(c);
  const edges = randomGraph(16, 30, 8);
  const net = new TestNet(16, mixed, { seed: 4 }).edges(edges);
  net.run(5000);
  for (let i = 0; i < 16; i++) {
    const dist = bfs(net, i);
    for (let j = 0; j < 16; j++)
      if (i !== j) assert.equal(node(net, i).route(net.ids[j] as string)?.hops, dist.get(j));
  }
});

test('MPR: after a link failure the network reconverges and every device drops the dead link', () => {
  const net = new TestNet(16, linkState({ mpr: true }), { seed: 6 }).edges(kingGrid(4, 4));
  net.run(5000);
  net.down(5, 6);
  net.down(9, 10);
  net.run(3000);
  for (let i = 0; i < 16; i++) {
    const dist = bfs(net, i);
    for (let j = 0; j < 16; j++) {
      if (i === j) continue;
      assert.equal(node(net, i).route(net.ids[j] as string)?.hops, dist.get(j), `${i}->${j}`);
      assert.ok(net.follow(i, j) !== undefined);
    }
  }
});

// ---- ageing ---------------------------------------------------------------------------------

test("a crashed device's advertisement ages out everywhere after its lifetime, and a database exchange does not extend it", () => {
  const init: LinkStateInit = { lsaRefreshMs: 3000, lsaMaxAgeMs: 10000 };
  // Diamond A B C D = 0..3, and E (4) that joins later.
  const net = new TestNet(5, linkState(init)).edges(topologies.diamond());
  net.run(5000);
  const B = net.ids[1] as string;
  assert.equal(counters(net, 0).lsdbSize, 4);
  net.crash(1);
  const crashedAt = net.now;
  net.run(1000);
  // Unreachable at once, but its last advertisement is still held until it expires.
  assert.equal(node(net, 0).route(B), undefined);
  assert.equal(counters(net, 0).lsdbSize, 4);
  // E joins 5 s later and gets the database with the remaining lifetime, not a fresh one.
  net.runUntil(crashedAt + 5000);
  net.up(0, 4);
  net.run(100);
  assert.equal(counters(net, 4).lsdbSize, 5); // A, B, C, D and its own
  const expiredBefore = counters(net, 4).expired ?? 0;
  net.runUntil(crashedAt + 10000 + 200);
  for (const i of [0, 2, 3, 4]) {
    assert.equal(counters(net, i).lsdbSize, 4, `device ${i} still holds the crashed advertisement`);
    assert.ok((counters(net, i).expired ?? 0) >= 1);
    assert.equal(node(net, i).route(B), undefined);
  }
  assert.equal(counters(net, 4).expired, expiredBefore + 1);
  // The living devices' advertisements are refreshed and never expire.
  net.run(30000);
  assert.equal(counters(net, 0).lsdbSize, 4);
  assert.equal(node(net, 0).route(net.ids[3] as string)?.hops, 2);
});

// ---- route changes --------------------------------------------------------------------------

test('routesChanged names the destinations whose route changed', () => {
  const seen: { device: string; actions: RoutingAction[] }[] = [];
  const recording: RoutingProtocolFactory = (c) => {
    const p = linkState()(c);
    const linkDown = p.linkDown.bind(p);
    p.linkDown = (neighbour, now) => {
      const actions = linkDown(neighbour, now);
      seen.push({ device: c.self, actions });
      return actions;
    };
    return p;
  };
  const net = new TestNet(4, recording).edges(topologies.line(4));
  net.run(3000);
  net.down(2, 3);
  const at2 = seen.find((s) => s.device === net.ids[2]);
  const changed = at2?.actions.find((a) => a.type === 'routesChanged');
  assert.deepEqual(changed, { type: 'routesChanged', destinations: [net.ids[3]] });
});
