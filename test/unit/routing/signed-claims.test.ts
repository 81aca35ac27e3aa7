// Signed routing claims (src/routing/signing.ts) in the five protocols, in the simulator with real
// Ed25519 identities: signed networks converge as unsigned ones do; a device that forges a claim
// for another device (the victim's origin and a newer sequence number, signed with its own keys,
// a garbage signature, the victim's keys with a wrong signature, or no signature) is dropped and
// counted `badSignature` and routes stay as they were; a relay that changes a signed field is
// dropped, while changes to the mutable fields are taken within their bounds. Each forging test
// ends with a positive control: the same message signed by the victim is taken.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateIdentity, identitySigner } from '../../../src/crypto/index.ts';
import {
  AodvMessage,
  decodeRrep,
  encodeRrep,
  encodeRreq,
  seqClaimData,
} from '../../../src/routing/aodv/index.ts';
import type { Rrep, Rreq } from '../../../src/routing/aodv/index.ts';
import {
  DistanceVectorMessage,
  INFINITY,
  decodeUpdate,
  encodeUpdate,
  seqnoPlus,
  updateSignedData,
} from '../../../src/routing/distance-vector/index.ts';
import type { UpdateTlv } from '../../../src/routing/distance-vector/index.ts';
import {
  FloodingMessage,
  announceSignedData,
  decodeAnnounce,
  encodeAnnounce,
} from '../../../src/routing/flooding/index.ts';
import type { Announce } from '../../../src/routing/flooding/index.ts';
import {
  aodv,
  distanceVector,
  flooding,
  linkState,
  nullSigner,
  sourceRoute,
} from '../../../src/routing/index.ts';
import type {
  Claim,
  ProtocolMessage,
  RoutingProtocol,
  RoutingProtocolFactory,
  RoutingSigner,
} from '../../../src/routing/index.ts';
import {
  LinkStateMessage,
  decodeLsa,
  encodeLsa,
  lsaSignedData,
} from '../../../src/routing/link-state/index.ts';
import type { LsaMessage } from '../../../src/routing/link-state/index.ts';
import {
  SourceRouteMessage,
  decodeRouteError,
  decodeRouteReply,
  decodeRouteRequest,
  encodeRouteError,
  encodeRouteReply,
  errorSignedData,
  replySignedData,
} from '../../../src/routing/source-route/index.ts';
import type { RouteError, RouteReply } from '../../../src/routing/source-route/index.ts';
import { SimNetwork, diamond, grid, line } from '../../../src/sim/index.ts';
import type { Topology } from '../../../src/sim/index.ts';
import type { DeviceId } from '../../../src/wire/index.ts';

// ---- helpers --------------------------------------------------------------------------------

interface Device {
  id: DeviceId;
  signer: RoutingSigner;
}

/** `n` devices with real identities (ids derived from their keys) and Ed25519 claim signers. */
function devices(n: number): Device[] {
  return Array.from({ length: n }, () => {
    const identity = generateIdentity();
    return { id: identity.deviceId, signer: identitySigner(identity) };
  });
}

const EMPTY: Claim = { keys: new Uint8Array(0), signature: new Uint8Array(0) };

const claimBy = (d: Device, data: Uint8Array): Claim => ({
  keys: d.signer.keys,
  signature: d.signer.sign(data),
});

/** Every way `injector` might try to speak for `victim` about `data`. */
function forgeries(data: Uint8Array, victim: Device, injector: Device): [string, Claim][] {
  const flipped = Uint8Array.from(victim.signer.sign(data));
  flipped[10] = (flipped[10] as number) ^ 1;
  return [
    ["signed with the injector's own keys", claimBy(injector, data)],
    ['a garbage signature', { keys: injector.signer.keys, signature: new Uint8Array(64).fill(7) }],
    [
      "the victim's keys with the injector's signature",
      { keys: victim.signer.keys, signature: injector.signer.sign(data) },
    ],
    [
      "the victim's keys with its signature over other data",
      { keys: victim.signer.keys, signature: victim.signer.sign(Buffer.concat([data, data])) },
    ],
    ["the victim's signature with a bit flipped", { keys: victim.signer.keys, signature: flipped }],
    ['no claim at all', EMPTY],
  ];
}

function signedNet(t: Topology, factory: RoutingProtocolFactory, devs: Device[]): SimNetwork {
  return new SimNetwork(t, factory, { seed: 3, identities: devs });
}

const node = (net: SimNetwork, i: number): RoutingProtocol => net.node(i) as RoutingProtocol;

const count = (net: SimNetwork, i: number, name: string): number =>
  node(net, i).snapshot(net.now).counters[name] ?? 0;

const total = (net: SimNetwork, name: string): number =>
  net.ids.reduce((sum, _, i) => sum + count(net, i, name), 0);

/** Asks reactive protocols for every pair's route (as the daemon does), then lets it settle. */
function converge(net: SimNetwork, pairs: [number, number][], ms = 15000): void {
  for (let k = 0; k < 5; k++) {
    for (const [a, b] of pairs) {
      const n = node(net, a);
      const dest = net.ids[b] as DeviceId;
      if (n.reactive === true && n.route(dest) === undefined)
        net.apply(a, n.discover?.(dest, new Set(), net.now) ?? []);
    }
    net.run(ms / 5);
  }
}

function allPairs(n: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) out.push([i, j]);
  return out;
}

/** Runs `net` in small steps until `done()` (at most `ms`). */
function runUntil(net: SimNetwork, done: () => boolean, ms = 10000): void {
  const end = net.now + ms;
  while (!done() && net.now < end) net.run(5);
  assert.ok(done(), 'the awaited message never came');
}

// ---- (1) signed networks converge as unsigned ones do ---------------------------------------

const protocols: [string, () => RoutingProtocolFactory, number][] = [
  ['link-state', () => linkState(), LinkStateMessage.LSA],
  ['flooding', () => flooding(), FloodingMessage.ANNOUNCE],
  ['distance-vector', () => distanceVector(), DistanceVectorMessage.UPDATE],
  ['aodv', () => aodv(), AodvMessage.RREP],
  ['source-route', () => sourceRoute(), SourceRouteMessage.RREP],
];

for (const [name, factory, claimType] of protocols) {
  test(`${name}: a signed network converges and routes as with the null signer`, () => {
    const t = grid(3, 3);
    const devs = devices(t.size);
    const signed = signedNet(t, factory(), devs);
    // The same ids and seed, without signatures.
    const plain = new SimNetwork(t, factory(), {
      seed: 3,
      identities: devs.map((d) => ({ id: d.id, signer: nullSigner })),
    });
    let sample: ProtocolMessage | undefined;
    signed.observe({ message: (_f, _t, m) => void (m.type === claimType && (sample ??= m)) });
    const pairs = allPairs(t.size);
    converge(signed, pairs);
    converge(plain, pairs);
    for (const [a, b] of pairs) {
      const s = signed.follow(a, b);
      const p = plain.follow(a, b);
      assert.ok(!('failed' in s), `signed ${a} -> ${b}: ${JSON.stringify(s)}`);
      assert.ok(!('failed' in p), `unsigned ${a} -> ${b}`);
      assert.equal(s.path.length, p.path.length, `${a} -> ${b}: as many hops signed as unsigned`);
      assert.equal(s.path.length - 1, signed.hopsFrom(a).get(b), 'shortest');
    }
    assert.equal(total(signed, 'badSignature'), 0);
    assert.equal(total(plain, 'badSignature'), 0);
    if (name === 'source-route') {
      // Only the target can sign a reply: no replies from caches when signing.
      assert.equal(total(signed, 'rrepFromCache'), 0);
      assert.ok(total(plain, 'rrepFromCache') > 0);
    }
    // The claims really are signed: 64 bytes of keys (Ed25519 ‖ X25519) and a 64-byte signature.
    assert.ok(sample !== undefined);
    const body = sample.body;
    const claimAt = body.length - 130;
    assert.equal(body[claimAt], 64);
    assert.equal(body[claimAt + 65], 64);
  });
}

// ---- (2) forged claims for another device ---------------------------------------------------

test('link-state: a forged advertisement for another device is dropped and counted; routes stay', () => {
  // Diamond: A(0)–B(1)–D(3), A–C(2)–D. B speaks for D.
  const devs = devices(4);
  const [, B, C, D] = devs as [Device, Device, Device, Device];
  const net = signedNet(diamond(), linkState(), devs);
  let last: LsaMessage | undefined;
  net.observe({
    message: (_f, _t, m) => {
      if (m.type !== LinkStateMessage.LSA) return;
      const lsa = decodeLsa(m.body);
      if (lsa.origin === D.id && (last === undefined || lsa.seq > last.seq)) last = lsa;
    },
  });
  net.run(5000);
  assert.ok(last !== undefined);
  // The observer goes on updating `last`; what B forges from is D's advertisement now.
  const base: LsaMessage = last;
  const a = node(net, 0);
  const check = (): void => {
    assert.equal(a.route(D.id)?.hops, 2);
    assert.equal(a.route(D.id, new Set([B.id]))?.nextHop, C.id);
    assert.equal(a.route(D.id, new Set([C.id]))?.nextHop, B.id);
  };
  check();
  // D, as B would have it: a newer advertisement without the link to C.
  const forged: LsaMessage = {
    ...base,
    seq: base.seq + 5,
    links: base.links.filter((l) => l.neighbour !== C.id),
  };
  for (const [why, claim] of forgeries(lsaSignedData(forged), D, B)) {
    const before = count(net, 0, 'badSignature');
    net.inject(1, 0, { type: LinkStateMessage.LSA, body: encodeLsa({ ...forged, claim }) });
    assert.equal(count(net, 0, 'badSignature'), before + 1, why);
  }
  net.run(1000);
  check();
  assert.equal(count(net, 0, 'malformed'), 0, 'counted apart from malformed messages');
  // A forged advertisement of D's own with a huge sequence number does not move D's.
  const own: LsaMessage = { ...base, seq: 0xfffffff0 };
  const before = count(net, 3, 'badSignature');
  net.inject(1, 3, {
    type: LinkStateMessage.LSA,
    body: encodeLsa({ ...own, claim: claimBy(B, lsaSignedData(own)) }),
  });
  assert.equal(count(net, 3, 'badSignature'), before + 1);
  let next: number | undefined;
  net.observe({
    message: (f, _t, m) => {
      if (f !== 3 || m.type !== LinkStateMessage.LSA) return;
      const lsa = decodeLsa(m.body);
      if (lsa.origin === D.id) next ??= lsa.seq;
    },
  });
  net.setCost(1, 3, 5);
  net.run(1000);
  assert.equal(next, base.seq + 1, "D's next advertisement follows its own numbering");
  // Positive control: D's own signature over the same forged content is taken.
  net.inject(1, 0, {
    type: LinkStateMessage.LSA,
    body: encodeLsa({
      ...forged,
      seq: base.seq + 50,
      claim: claimBy(D, lsaSignedData({ ...forged, seq: base.seq + 50 })),
    }),
  });
  assert.equal(a.route(D.id, new Set([B.id])), undefined, 'the signed withdrawal of C was taken');
});

test('flooding: a forged announcement for another device is dropped and counted; routes stay', () => {
  const devs = devices(4);
  const [, B, , D] = devs as [Device, Device, Device, Device];
  const net = signedNet(diamond(), flooding(), devs);
  let last: Announce | undefined;
  net.observe({
    message: (_f, _t, m) => {
      if (m.type !== FloodingMessage.ANNOUNCE) return;
      const an = decodeAnnounce(m.body);
      if (an.origin === D.id && (last === undefined || an.seq > last.seq)) last = an;
    },
  });
  net.run(3000);
  assert.ok(last !== undefined);
  const a = node(net, 0);
  assert.equal(a.route(D.id)?.hops, 2);
  // B claims to be D's neighbour with a newer announcement of D's.
  const forged: Announce = {
    ...last,
    seq: last.seq + 5,
    hopLimit: last.originHopLimit,
    hops: 0,
  };
  for (const [why, claim] of forgeries(announceSignedData(forged), D, B)) {
    const before = count(net, 0, 'badSignature');
    net.inject(1, 0, {
      type: FloodingMessage.ANNOUNCE,
      body: encodeAnnounce({ ...forged, claim }),
    });
    assert.equal(count(net, 0, 'badSignature'), before + 1, why);
  }
  net.run(1000);
  assert.equal(a.route(D.id)?.hops, 2);
  assert.equal(count(net, 0, 'malformed'), 0);
  // Positive control: D's signature is taken (the hop count is B's to give).
  net.inject(1, 0, {
    type: FloodingMessage.ANNOUNCE,
    body: encodeAnnounce({ ...forged, claim: claimBy(D, announceSignedData(forged)) }),
  });
  assert.equal(a.route(D.id)?.hops, 1);
});

test("distance-vector: an update with another device's seqno that it never signed is dropped and counted; routes stay", () => {
  const devs = devices(4);
  const [, B, , D] = devs as [Device, Device, Device, Device];
  const net = signedNet(diamond(), distanceVector(), devs);
  net.run(8000);
  const a = node(net, 0);
  assert.equal(a.route(D.id)?.cost, 2);
  const seqno = count(net, 3, 'seqno');
  // B advertises D with a seqno D has not issued, as if D were its neighbour.
  const forged: UpdateTlv = {
    intervalCs: 400,
    seqno: seqnoPlus(seqno, 5),
    metric: 0,
    hops: 0,
    origin: D.id,
    claim: EMPTY,
  };
  for (const [why, claim] of forgeries(updateSignedData(D.id, forged.seqno), D, B)) {
    const before = count(net, 0, 'badSignature');
    net.inject(1, 0, {
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({ ...forged, claim }),
    });
    assert.equal(count(net, 0, 'badSignature'), before + 1, why);
  }
  net.run(1000);
  assert.equal(a.route(D.id)?.cost, 2);
  assert.equal(count(net, 0, 'malformed'), 0);
  // An update for D's own id with a newer seqno that D did not sign does not move D's seqno.
  const before = count(net, 3, 'badSignature');
  const own = { ...forged, seqno: seqnoPlus(seqno, 1000) };
  net.inject(1, 3, {
    type: DistanceVectorMessage.UPDATE,
    body: encodeUpdate({ ...own, claim: claimBy(B, updateSignedData(D.id, own.seqno)) }),
  });
  assert.equal(count(net, 3, 'badSignature'), before + 1);
  assert.equal(count(net, 3, 'seqno'), seqno);
  // Positive control: D's signature over that seqno is taken (B's metric is B's to give).
  net.inject(1, 0, {
    type: DistanceVectorMessage.UPDATE,
    body: encodeUpdate({ ...forged, claim: claimBy(D, updateSignedData(D.id, forged.seqno)) }),
  });
  assert.equal(a.route(D.id)?.cost, 1);
});

test('aodv: forged route requests and replies for another device are dropped and counted; routes stay', () => {
  const devs = devices(4);
  const [A, B, C, D] = devs as [Device, Device, Device, Device];
  const net = signedNet(diamond(), aodv(), devs);
  converge(net, [[0, 3]], 3000);
  const a = node(net, 0);
  assert.equal(a.route(D.id)?.hops, 2);
  const seq = (a.snapshot(net.now).routes.find((r) => r.destination === D.id) as { seq?: number })
    .seq as number;
  // A reply for D with a newer sequence number, as if D were B's neighbour.
  const rrep: Rrep = {
    hopCount: 0,
    destination: D.id,
    destSeq: seq + 5,
    originator: A.id,
    lifetimeMs: 60000,
    avoid: [],
    claim: EMPTY,
  };
  for (const [why, claim] of forgeries(seqClaimData(D.id, rrep.destSeq), D, B)) {
    const before = count(net, 0, 'badSignature');
    net.inject(1, 0, { type: AodvMessage.RREP, body: encodeRrep({ ...rrep, claim }) });
    assert.equal(count(net, 0, 'badSignature'), before + 1, `RREP: ${why}`);
  }
  // A request from D (a reverse route to D through B).
  const rreq: Rreq = {
    gratuitous: false,
    destinationOnly: true,
    unknownSeq: true,
    ttl: 5,
    hopCount: 0,
    rreqId: 4242,
    destination: C.id,
    destSeq: 0,
    originator: D.id,
    origSeq: seq + 7,
    avoid: [],
    claim: EMPTY,
  };
  for (const [why, claim] of forgeries(seqClaimData(D.id, rreq.origSeq), D, B)) {
    const before = count(net, 0, 'badSignature');
    net.inject(1, 0, { type: AodvMessage.RREQ, body: encodeRreq({ ...rreq, claim }) });
    assert.equal(count(net, 0, 'badSignature'), before + 1, `RREQ: ${why}`);
  }
  net.run(500);
  assert.equal(a.route(D.id)?.hops, 2);
  assert.equal(count(net, 0, 'malformed'), 0);
  // A forged copy did not take the RREQ ID: D's own request with it still goes through.
  net.inject(1, 0, {
    type: AodvMessage.RREQ,
    body: encodeRreq({ ...rreq, claim: claimBy(D, seqClaimData(D.id, rreq.origSeq)) }),
  });
  assert.equal(a.route(D.id)?.hops, 1, "the request D signed is taken (B's hop count is B's own)");
  // Positive control for the reply too.
  net.inject(1, 0, {
    type: AodvMessage.RREP,
    body: encodeRrep({ ...rrep, destSeq: seq + 9, claim: claimBy(D, seqClaimData(D.id, seq + 9)) }),
  });
  assert.equal(count(net, 0, 'badSignature'), 12);
  assert.equal(a.route(D.id)?.hops, 1);
});

test("aodv: with intermediate replies on, a relay passes on the destination's signed claim", () => {
  const devs = devices(4);
  const net = signedNet(line(4), aodv({ destinationOnly: false }), devs);
  converge(net, [[1, 3]], 2000);
  assert.equal(node(net, 1).route(devs[3]?.id as DeviceId)?.hops, 2);
  converge(net, [[0, 3]], 2000);
  assert.equal(node(net, 0).route(devs[3]?.id as DeviceId)?.hops, 3);
  assert.ok(count(net, 1, 'rrepIntermediate') >= 1, 'device 1 answered from its route');
  // The gratuitous reply (G flag) carried 0's claim from its request to 3.
  assert.ok(count(net, 1, 'rrepGratuitous') >= 1);
  assert.equal(node(net, 3).route(devs[0]?.id as DeviceId)?.hops, 3);
  assert.equal(total(net, 'badSignature'), 0);
});

test('source-route: forged replies and route errors for another device are dropped and counted; routes stay', () => {
  // A(0)–B(1)–D(3), A–C(2)–D, C–E(4): E is reached through C only. B speaks for E and for C.
  const t: Topology = {
    label: 'diamond and a tail',
    size: 5,
    names: ['A', 'B', 'C', 'D', 'E'],
    edges: [
      { a: 0, b: 1 },
      { a: 0, b: 2 },
      { a: 1, b: 3 },
      { a: 2, b: 3 },
      { a: 2, b: 4 },
    ],
  };
  const devs = devices(5);
  const [A, B, C, , E] = devs as [Device, Device, Device, Device, Device];
  const net = signedNet(t, sourceRoute(), devs);
  net.run(100);
  const a = node(net, 0);
  const actions = a.discover?.(E.id, new Set(), net.now) ?? [];
  const sent = actions.find((x) => x.type === 'send' && x.message.type === SourceRouteMessage.RREQ);
  assert.ok(sent?.type === 'send');
  const id = decodeRouteRequest(sent.message.body).id;
  net.apply(0, actions);
  // B answers A's request with a route to E through itself.
  const reply: RouteReply = { id, route: [A.id, B.id, E.id], claim: EMPTY };
  for (const [why, claim] of forgeries(replySignedData(reply), E, B)) {
    const before = count(net, 0, 'badSignature');
    net.inject(1, 0, {
      type: SourceRouteMessage.RREP,
      body: encodeRouteReply({ ...reply, claim }),
    });
    assert.equal(count(net, 0, 'badSignature'), before + 1, `RREP: ${why}`);
  }
  net.run(3000);
  assert.equal(a.route(E.id)?.hops, 2);
  assert.equal(a.route(E.id)?.nextHop, C.id);
  assert.equal(a.route(E.id, new Set([C.id])), undefined, 'no route to E but through C');
  // B reports, as if it were C, that the link C–E broke.
  const error: RouteError = { id: 77, unreachable: E.id, route: [C.id, B.id, A.id], claim: EMPTY };
  for (const [why, claim] of forgeries(errorSignedData(error), C, B)) {
    const before = count(net, 0, 'badSignature');
    net.inject(1, 0, {
      type: SourceRouteMessage.RERR,
      body: encodeRouteError({ ...error, claim }),
    });
    assert.equal(count(net, 0, 'badSignature'), before + 1, `RERR: ${why}`);
  }
  assert.equal(a.route(E.id)?.nextHop, C.id);
  assert.equal(count(net, 0, 'malformed'), 0);
  // Positive controls: E's signature on the reply, and C's on the error, are taken. (The forged
  // copies did not take the reply's digest nor the error's id.)
  net.inject(1, 0, {
    type: SourceRouteMessage.RREP,
    body: encodeRouteReply({ ...reply, claim: claimBy(E, replySignedData(reply)) }),
  });
  assert.deepEqual(a.route(E.id, new Set([C.id]))?.path, [A.id, B.id, E.id]);
  net.inject(1, 0, {
    type: SourceRouteMessage.RERR,
    body: encodeRouteError({ ...error, claim: claimBy(C, errorSignedData(error)) }),
  });
  assert.equal(count(net, 0, 'rerrReceived'), 1);
  assert.notEqual(a.route(E.id)?.nextHop, C.id, 'the link C–E is gone from A’s cache');
});

// ---- (3) relays changing signed and mutable fields ------------------------------------------

test('link-state: a relay that changes a signed field is dropped; a lower hop limit and lifetime are taken, never a higher one', () => {
  const devs = devices(4);
  const net = signedNet(line(4), linkState(), devs);
  const origin = devs[0]?.id as DeviceId;
  let held: LsaMessage | undefined;
  // Device 1 relays 0's advertisements to 2: hold them back.
  net.drop = (f, t, m) => {
    if (f !== 1 || t !== 2 || m.type !== LinkStateMessage.LSA) return false;
    const lsa = decodeLsa(m.body);
    if (lsa.origin !== origin) return false;
    held = lsa;
    return true;
  };
  net.run(3000);
  net.drop = undefined;
  assert.ok(held !== undefined);
  const c = node(net, 2);
  assert.equal(c.route(origin), undefined);
  const inject = (m: LsaMessage): void =>
    net.inject(1, 2, { type: LinkStateMessage.LSA, body: encodeLsa(m) });
  const links = held.links.map((l) => ({ ...l, cost: l.cost + 1 }));
  for (const changed of [
    { ...held, links },
    { ...held, originLifetimeMs: held.originLifetimeMs + 1000, lifetimeMs: held.lifetimeMs + 1000 },
    { ...held, originHopLimit: 255, hopLimit: 255 },
    { ...held, seq: held.seq + 1 },
  ]) {
    const before = count(net, 2, 'badSignature');
    inject(changed);
    assert.equal(count(net, 2, 'badSignature'), before + 1);
  }
  assert.equal(c.route(origin), undefined);
  // A hop limit above the signed one cannot even be encoded; on the wire it is malformed.
  const raised = encodeLsa(held);
  raised[raised.length - 130 - 1] = held.originHopLimit + 1;
  const malformed = count(net, 2, 'malformed');
  net.inject(1, 2, { type: LinkStateMessage.LSA, body: raised });
  assert.equal(count(net, 2, 'malformed'), malformed + 1);
  // The mutable fields, lowered: taken, and the relay passes on what is left.
  let relayed: LsaMessage | undefined;
  net.observe({
    message: (f, t, m) => {
      if (f === 2 && t === 3 && m.type === LinkStateMessage.LSA) relayed = decodeLsa(m.body);
    },
  });
  inject({ ...held, hopLimit: 3, lifetimeMs: 2000 });
  assert.equal(c.route(origin)?.hops, 2);
  net.run(100);
  assert.ok(relayed !== undefined);
  assert.equal(relayed.hopLimit, 2);
  assert.ok(relayed.lifetimeMs <= 2000);
  assert.equal(count(net, 2, 'badSignature'), 4);
  // The advertisement lives only as long as the relay said.
  net.run(2000);
  assert.equal(c.route(origin), undefined);
  assert.ok(count(net, 2, 'expired') >= 1);
});

test('flooding: a relay that changes a signed field is dropped; the hop count and a lower hop limit are taken', () => {
  const devs = devices(4);
  const net = signedNet(line(4), flooding(), devs);
  const origin = devs[0]?.id as DeviceId;
  let held: Announce | undefined;
  net.drop = (f, t, m) => {
    if (f !== 1 || t !== 2 || m.type !== FloodingMessage.ANNOUNCE) return false;
    const an = decodeAnnounce(m.body);
    if (an.origin !== origin) return false;
    held = an;
    return true;
  };
  net.run(3000);
  net.drop = undefined;
  assert.ok(held !== undefined);
  assert.equal(node(net, 2).route(origin), undefined);
  const inject = (an: Announce): void =>
    net.inject(1, 2, { type: FloodingMessage.ANNOUNCE, body: encodeAnnounce(an) });
  for (const changed of [
    { ...held, seq: held.seq + 1 },
    { ...held, originHopLimit: 255, hopLimit: 255 },
  ]) {
    const before = count(net, 2, 'badSignature');
    inject(changed);
    assert.equal(count(net, 2, 'badSignature'), before + 1);
  }
  assert.equal(node(net, 2).route(origin), undefined);
  const raised = encodeAnnounce(held);
  raised[21] = held.originHopLimit + 1;
  const malformed = count(net, 2, 'malformed');
  net.inject(1, 2, { type: FloodingMessage.ANNOUNCE, body: raised });
  assert.equal(count(net, 2, 'malformed'), malformed + 1);
  // Mutable: 1 may lie about its own distance, and lower the hop limit.
  let relayed: Announce | undefined;
  net.observe({
    message: (f, t, m) => {
      if (f === 2 && t === 3 && m.type === FloodingMessage.ANNOUNCE)
        relayed = decodeAnnounce(m.body);
    },
  });
  inject({ ...held, hops: 0, hopLimit: 2 });
  assert.equal(node(net, 2).route(origin)?.hops, 1);
  net.run(100);
  assert.equal(relayed?.hopLimit, 1);
  assert.equal(count(net, 3, 'hopLimitDropped'), 1, 'the flood stops where the hop limit says');
});

test('distance-vector: a relay cannot advertise a seqno the source never issued; its own metric is taken', () => {
  const devs = devices(3);
  const net = signedNet(line(3), distanceVector(), devs);
  const origin = devs[0]?.id as DeviceId;
  let held: UpdateTlv | undefined;
  net.observe({
    message: (f, t, m) => {
      if (f !== 1 || t !== 2 || m.type !== DistanceVectorMessage.UPDATE) return;
      const u = decodeUpdate(m.body);
      if (u.origin === origin && u.metric < INFINITY) held = u;
    },
  });
  net.run(8000);
  assert.ok(held !== undefined);
  const c = node(net, 2);
  assert.equal(c.route(origin)?.cost, 2);
  const inject = (u: UpdateTlv): void =>
    net.inject(1, 2, { type: DistanceVectorMessage.UPDATE, body: encodeUpdate(u) });
  for (const changed of [
    { ...held, seqno: seqnoPlus(held.seqno, 1) },
    { ...held, origin: devs[1]?.id as DeviceId },
  ]) {
    const before = count(net, 2, 'badSignature');
    inject(changed);
    assert.equal(count(net, 2, 'badSignature'), before + 1);
  }
  assert.equal(c.route(origin)?.cost, 2);
  // A retraction claims nothing: one with a claim is malformed.
  const retraction = Buffer.concat([
    encodeUpdate({ ...held, metric: INFINITY, claim: EMPTY }).subarray(0, 23),
    encodeUpdate(held).subarray(23),
  ]);
  const malformed = count(net, 2, 'malformed');
  net.inject(1, 2, { type: DistanceVectorMessage.UPDATE, body: retraction });
  assert.equal(count(net, 2, 'malformed'), malformed + 1);
  // The metric and hop count are the relay's own: taken with the source's claim as it was (here
  // the relay claims to be the source's neighbour twice over; feasibility still holds).
  inject({ ...held, metric: 0, hops: 0 });
  assert.equal(c.route(origin)?.cost, 1);
  assert.equal(c.route(origin)?.hops, 1);
  assert.equal(count(net, 2, 'badSignature'), 2);
});

test('aodv: a relay that changes the claimed sequence number is dropped; its hop count is bound by the record, its lifetime taken', () => {
  const devs = devices(3);
  const net = signedNet(line(3), aodv(), devs);
  const dest = devs[2]?.id as DeviceId;
  let held: Rrep | undefined;
  net.drop = (f, t, m) => {
    if (f !== 1 || t !== 0 || m.type !== AodvMessage.RREP) return false;
    held ??= decodeRrep(m.body);
    return true;
  };
  net.apply(0, node(net, 0).discover?.(dest, new Set(), net.now) ?? []);
  runUntil(net, () => held !== undefined);
  net.drop = undefined;
  assert.ok(held !== undefined);
  const a = node(net, 0);
  assert.equal(a.route(dest), undefined);
  const inject = (m: Rrep): void =>
    net.inject(1, 0, { type: AodvMessage.RREP, body: encodeRrep(m) });
  for (const changed of [{ ...held, destSeq: held.destSeq + 1 }]) {
    const before = count(net, 0, 'badSignature');
    inject(changed);
    assert.equal(count(net, 0, 'badSignature'), before + 1);
  }
  assert.equal(a.route(dest), undefined);
  // A shorter hop count than the recorded path is malformed.
  const malformed = count(net, 0, 'malformed');
  inject({ ...held, hopCount: 0 });
  assert.equal(count(net, 0, 'malformed'), malformed + 1);
  assert.equal(a.route(dest), undefined);
  // A shorter lifetime is the relay's to give: taken, and the route lives that long.
  inject({ ...held, lifetimeMs: 500 });
  assert.equal(a.route(dest)?.hops, 2);
  net.run(600);
  assert.equal(a.route(dest), undefined);
  assert.equal(count(net, 0, 'badSignature'), 1);
});

test('source-route: a relay that changes a reply or a route error is dropped', () => {
  // Nothing in a reply or an error changes in flight: all of it is signed.
  const devs = devices(4);
  const ids = devs.map((d) => d.id);
  const net = signedNet(line(4), sourceRoute(), devs);
  let reply: RouteReply | undefined;
  net.drop = (f, t, m) => {
    if (f !== 1 || t !== 0 || m.type !== SourceRouteMessage.RREP) return false;
    reply ??= decodeRouteReply(m.body);
    return true;
  };
  net.run(100);
  net.apply(0, node(net, 0).discover?.(ids[3] as DeviceId, new Set(), net.now) ?? []);
  runUntil(net, () => reply !== undefined);
  net.drop = undefined;
  assert.ok(reply !== undefined);
  const a = node(net, 0);
  assert.equal(a.route(ids[3] as DeviceId), undefined);
  const before = count(net, 0, 'badSignature');
  // A shortcut through the relay, and the same route for another request.
  net.inject(1, 0, {
    type: SourceRouteMessage.RREP,
    body: encodeRouteReply({ ...reply, route: [ids[0], ids[1], ids[3]] as DeviceId[] }),
  });
  assert.equal(count(net, 0, 'badSignature'), before + 1);
  assert.equal(a.route(ids[3] as DeviceId), undefined);
  net.inject(1, 0, { type: SourceRouteMessage.RREP, body: encodeRouteReply(reply) });
  assert.deepEqual(a.route(ids[3] as DeviceId)?.path, ids);
  // The link 2–3 breaks: 2 reports it to 0 along [2, 1, 0].
  let error: RouteError | undefined;
  net.drop = (f, t, m) => {
    if (f !== 1 || t !== 0 || m.type !== SourceRouteMessage.RERR) return false;
    error ??= decodeRouteError(m.body);
    return true;
  };
  net.linkDown(2, 3);
  runUntil(net, () => error !== undefined);
  net.drop = undefined;
  assert.ok(error !== undefined);
  const other = devices(1)[0]?.id as DeviceId;
  for (const changed of [
    { ...error, unreachable: other },
    { ...error, id: error.id + 1 },
  ]) {
    const n = count(net, 0, 'badSignature');
    net.inject(1, 0, { type: SourceRouteMessage.RERR, body: encodeRouteError(changed) });
    assert.equal(count(net, 0, 'badSignature'), n + 1);
  }
  assert.deepEqual(a.route(ids[3] as DeviceId)?.path, ids, 'the cached route is still there');
  net.inject(1, 0, { type: SourceRouteMessage.RERR, body: encodeRouteError(error) });
  assert.equal(a.route(ids[3] as DeviceId), undefined);
});

// ---- null signer vs real signer ----------------------------------------------------------

/** Per protocol: a message from neighbour `from` in which `origin` claims something, and its data. */
interface Probe {
  name: string;
  factory: () => RoutingProtocolFactory;
  message(origin: DeviceId, from: DeviceId, to: DeviceId, claim: Claim): ProtocolMessage;
  data(origin: DeviceId, from: DeviceId, to: DeviceId): Uint8Array;
  /** Whether device `at` took the claim. */
  taken(net: SimNetwork, at: number, origin: DeviceId): boolean;
}

const lsa = (origin: DeviceId, from: DeviceId): LsaMessage => ({
  origin,
  seq: 1,
  originLifetimeMs: 60000,
  originHopLimit: 8,
  links: [{ neighbour: from, cost: 1 }],
  lifetimeMs: 60000,
  hopLimit: 8,
  claim: EMPTY,
});
const announce = (origin: DeviceId): Announce => ({
  origin,
  seq: 1,
  originHopLimit: 8,
  hopLimit: 8,
  hops: 0,
  claim: EMPTY,
});
const rreqFrom = (origin: DeviceId, to: DeviceId): Rreq => ({
  gratuitous: false,
  destinationOnly: true,
  unknownSeq: true,
  ttl: 1,
  hopCount: 0,
  rreqId: 1,
  destination: to,
  destSeq: 0,
  originator: origin,
  origSeq: 1,
  avoid: [],
  claim: EMPTY,
});
const errorFrom = (origin: DeviceId, from: DeviceId, to: DeviceId): RouteError => ({
  id: 1,
  unreachable: 'ee'.repeat(16),
  route: [origin, from, to],
  claim: EMPTY,
});

const probes: Probe[] = [
  {
    name: 'link-state',
    factory: () => linkState(),
    message: (origin, from, _to, claim) => ({
      type: LinkStateMessage.LSA,
      body: encodeLsa({ ...lsa(origin, from), claim }),
    }),
    data: (origin, from) => lsaSignedData(lsa(origin, from)),
    taken: (net, at) => count(net, at, 'lsdbSize') === 3,
  },
  {
    name: 'flooding',
    factory: () => flooding(),
    message: (origin, _from, _to, claim) => ({
      type: FloodingMessage.ANNOUNCE,
      body: encodeAnnounce({ ...announce(origin), claim }),
    }),
    data: (origin) => announceSignedData(announce(origin)),
    taken: (net, at, origin) => node(net, at).route(origin) !== undefined,
  },
  {
    name: 'distance-vector',
    factory: () => distanceVector(),
    message: (origin, _from, _to, claim) => ({
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({ intervalCs: 400, seqno: 1, metric: 1, hops: 1, origin, claim }),
    }),
    data: (origin) => updateSignedData(origin, 1),
    taken: (net, at, origin) => node(net, at).route(origin) !== undefined,
  },
  {
    name: 'aodv',
    factory: () => aodv(),
    message: (origin, _from, to, claim) => ({
      type: AodvMessage.RREQ,
      body: encodeRreq({ ...rreqFrom(origin, to), claim }),
    }),
    data: (origin) => seqClaimData(origin, 1),
    taken: (net, at, origin) => node(net, at).route(origin) !== undefined,
  },
  {
    name: 'source-route',
    factory: () => sourceRoute(),
    message: (origin, from, to, claim) => ({
      type: SourceRouteMessage.RERR,
      body: encodeRouteError({ ...errorFrom(origin, from, to), claim }),
    }),
    data: (origin, from, to) => errorSignedData(errorFrom(origin, from, to)),
    taken: (net, at) => count(net, at, 'rerrReceived') === 1,
  },
];

for (const p of probes) {
  test(`${p.name}: the null signer refuses a non-empty claim, a real signer an empty one`, () => {
    // An outsider with a real identity makes the claim; 1 passes it to 0.
    const outsider = devices(1)[0] as Device;
    const signature = claimBy(outsider, new Uint8Array(1));
    for (const signing of [false, true]) {
      const devs = devices(2);
      const net = signing
        ? signedNet(line(2), p.factory(), devs)
        : new SimNetwork(line(2), p.factory(), { seed: 3 });
      net.run(3000);
      const [to, from] = [net.ids[0] as DeviceId, net.ids[1] as DeviceId];
      const good = signing ? claimBy(outsider, p.data(outsider.id, from, to)) : EMPTY;
      const bad = signing ? EMPTY : signature;
      const what = signing ? 'real signer, empty claim' : 'null signer, non-empty claim';
      net.inject(1, 0, p.message(outsider.id, from, to, bad));
      assert.equal(count(net, 0, 'badSignature'), 1, what);
      assert.equal(count(net, 0, 'malformed'), 0, what);
      assert.ok(!p.taken(net, 0, outsider.id), what);
      net.inject(1, 0, p.message(outsider.id, from, to, good));
      assert.equal(count(net, 0, 'badSignature'), 1);
      assert.ok(p.taken(net, 0, outsider.id), `${what}: the right claim is taken`);
    }
  });
}
