// The network directory: names and keys from certificates, flooded with
// duplicate suppression, signed by their device, checked on arrival.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { identitySigner, verifyCertificate } from '../../../src/crypto/index.ts';
import { Directory, decodeAnnounce, encodeAnnounce } from '../../../src/device/index.ts';
import type { RoutingAction } from '../../../src/routing/index.ts';
import { TestPki } from '../../../src/testbed/index.ts';
import type { Issued } from '../../../src/testbed/index.ts';

const pki = new TestPki('directory');

function directory(issued: Issued, p = pki, options = {}): Directory {
  return new Directory({
    certificate: issued.certificate,
    verify: (bytes) => {
      const c = verifyCertificate(bytes, p.trust, { now: Date.now() });
      return {
        device: c.deviceId,
        name: c.name,
        agreementPublic: c.agreementPublic,
        relay: c.roles.includes('relay'),
      };
    },
    signer: identitySigner(issued.identity),
    options,
  });
}

/** Delivers directory messages on a line until quiet; returns the message count. */
function runLine(dirs: Directory[], ids: string[], now: number): number {
  const queue: { from: number; to: number; type: number; body: Uint8Array }[] = [];
  const push = (from: number, actions: RoutingAction[]): void => {
    for (const a of actions) {
      if (a.type === 'routesChanged') continue;
      const neighbours = [from - 1, from + 1].filter((n) => n >= 0 && n < dirs.length);
      const targets =
        a.type === 'send'
          ? neighbours.filter((n) => ids[n] === a.to)
          : neighbours.filter((n) => ids[n] !== a.except);
      for (const to of targets)
        queue.push({ from, to, type: a.message.type, body: a.message.body });
    }
  };
  dirs.forEach((d, i) => push(i, d.start(now)));
  let delivered = 0;
  while (queue.length > 0 && delivered < 10000) {
    const m = queue.shift();
    if (m === undefined) break;
    delivered++;
    push(m.to, (dirs[m.to] as Directory).receive(ids[m.from] as string, m.type, m.body, now));
  }
  return delivered;
}

test('names and keys flood along a line with duplicate suppression; everyone resolves everyone', () => {
  const issued = ['A', 'B', 'C', 'D'].map((n) => pki.issue(n));
  const dirs = issued.map((i) => directory(i));
  const ids = issued.map((i) => i.identity.deviceId);
  const delivered = runLine(dirs, ids, 0);
  for (const d of dirs) {
    for (const [i, n] of ['A', 'B', 'C', 'D'].entries()) {
      assert.equal(d.resolve(n), ids[i]);
      assert.deepEqual(
        Buffer.from(d.get(ids[i] as string)?.agreementPublic ?? []),
        Buffer.from(issued[i]?.identity.agreementPublic ?? []),
      );
    }
  }
  // 4 origins; each announcement crosses each of the 3 links at most twice (once each way).
  assert.ok(delivered <= 4 * 3 * 2, `delivered ${delivered}`);
  assert.equal((dirs[0] as Directory).resolve('Z'), undefined);
});

/** B's announcement with sequence number `seq`, as B would send it. */
function announceOf(b: Issued, seq: number, p = pki): Uint8Array {
  const d = directory(b, p);
  for (let i = 1; i < seq; i++) d.start(i);
  const [first] = d.start(seq);
  if (first === undefined || first.type === 'routesChanged') throw new Error('no announce');
  return first.message.body;
}

test('an older or repeated announcement is dropped and counted; a newer one is taken', () => {
  const a = directory(pki.issue('A'));
  const b = pki.issue('B');
  const from = b.identity.deviceId;
  a.receive(from, 1, announceOf(b, 5), 0);
  a.receive(from, 1, announceOf(b, 5), 0);
  a.receive(from, 1, announceOf(b, 4), 0);
  assert.equal(a.counters.duplicate, 2);
  assert.equal(a.resolve('B'), from);
  assert.equal(a.get(from)?.seq, 5);
  a.receive(from, 1, announceOf(b, 6), 0);
  assert.equal(a.get(from)?.seq, 6);
});

test('certificates of another network, expired ones and forged signatures are dropped and counted', () => {
  const a = directory(pki.issue('A'));
  const other = new TestPki('other');
  const outsider = other.issue('O');
  a.receive(outsider.identity.deviceId, 1, announceOf(outsider, 1, other), 0);
  const expired = pki.issue('E', { notBefore: Date.now() - 3e6, notAfter: Date.now() - 1e6 });
  const d = new Directory({
    certificate: expired.certificate,
    verify: (bytes) => {
      const c = verifyCertificate(bytes, pki.trust, { now: Date.now() - 2e6 });
      return { device: c.deviceId, name: c.name, agreementPublic: c.agreementPublic, relay: true };
    },
    signer: identitySigner(expired.identity),
  });
  const [first] = d.start(1);
  if (first === undefined || first.type === 'routesChanged') throw new Error('no announce');
  a.receive(expired.identity.deviceId, 1, first.message.body, 0);
  assert.equal(a.counters.badCertificate, 2);
  // B's certificate re-announced by a relay with a higher sequence number: B's signature fails.
  const b = pki.issue('B');
  const m = decodeAnnounce(announceOf(b, 3));
  a.receive(b.identity.deviceId, 1, encodeAnnounce(9, m.hopLimit, m.certificate, m.claim), 0);
  assert.equal(a.counters.badSignature, 1);
  assert.equal(a.resolve('B'), undefined);
  assert.equal(a.resolve('O'), undefined);
  assert.equal(a.resolve('E'), undefined);
});

test('entries expire when not refreshed', () => {
  const a = directory(pki.issue('A'), pki, { expireMs: 1000, refreshMs: 500 });
  const b = pki.issue('B');
  a.receive(b.identity.deviceId, 1, announceOf(b, 1), 0);
  assert.equal(a.resolve('B'), b.identity.deviceId);
  a.tick(2000);
  assert.equal(a.resolve('B'), undefined);
  assert.equal(a.counters.expired, 1);
});

test('random bytes are dropped and counted, never thrown (property)', () => {
  const a = directory(pki.issue('A'));
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.integer({ min: 0, max: 255 }),
      (body, type) => {
        const c = a.counters;
        const before = c.malformed + c.announceReceived;
        a.receive('b'.repeat(32), type, body, 0);
        assert.equal(c.malformed + c.announceReceived, before + 1);
      },
    ),
  );
});

test('announce codec round trips (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 255 }),
      fc.uint8Array({ minLength: 1, maxLength: 300 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 64 }),
      (seq, hopLimit, certificate, keys, signature) => {
        const m = decodeAnnounce(encodeAnnounce(seq, hopLimit, certificate, { keys, signature }));
        assert.equal(m.seq, seq);
        assert.equal(m.hopLimit, hopLimit);
        assert.deepEqual(m.certificate, certificate);
        assert.deepEqual(m.claim, { keys, signature });
      },
    ),
  );
});
