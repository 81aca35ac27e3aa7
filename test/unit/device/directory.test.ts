import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Directory, decodeAnnounce, encodeAnnounce } from '../../../src/device/index.ts';
import type { RoutingAction } from '../../../src/routing/index.ts';

const id = (c: string): string => c.repeat(32);

/** Delivers directory messages on a line A-B-C-D until quiet; returns message count. */
function runLine(dirs: Directory[], now: number): number {
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
  const ids = dirs.map((_, i) => id('abcd'[i] as string));
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

test('names flood along a line with duplicate suppression; everyone resolves everyone', () => {
  const dirs = ['A', 'B', 'C', 'D'].map((n, i) => new Directory(id('abcd'[i] as string), n));
  const delivered = runLine(dirs, 0);
  for (const d of dirs) {
    for (const [i, n] of ['A', 'B', 'C', 'D'].entries())
      assert.equal(d.resolve(n), id('abcd'[i] as string));
  }
  // 4 origins; each announcement crosses each of the 3 links at most twice (once each way).
  assert.ok(delivered <= 4 * 3 * 2, `delivered ${delivered}`);
  assert.ok((dirs[1] as Directory).counters.duplicate >= 0);
  assert.equal((dirs[0] as Directory).resolve('Z'), undefined);
});

test('an older or repeated announcement is dropped and counted; a newer one replaces the name', () => {
  const d = new Directory(id('a'), 'A');
  const b = id('b');
  d.receive(b, 1, encodeAnnounce({ origin: b, seq: 5, hopLimit: 4, name: 'B' }), 0);
  d.receive(b, 1, encodeAnnounce({ origin: b, seq: 5, hopLimit: 4, name: 'B' }), 0);
  d.receive(b, 1, encodeAnnounce({ origin: b, seq: 4, hopLimit: 4, name: 'old' }), 0);
  assert.equal(d.counters.duplicate, 2);
  assert.equal(d.resolve('B'), b);
  d.receive(b, 1, encodeAnnounce({ origin: b, seq: 6, hopLimit: 4, name: 'B2' }), 0);
  assert.equal(d.resolve('B2'), b);
  assert.equal(d.resolve('B'), undefined);
});

test('entries expire when not refreshed', () => {
  const d = new Directory(id('a'), 'A', { expireMs: 1000, refreshMs: 500 });
  d.receive(id('b'), 1, encodeAnnounce({ origin: id('b'), seq: 1, hopLimit: 4, name: 'B' }), 0);
  d.tick(2000);
  assert.equal(d.resolve('B'), undefined);
  assert.equal(d.counters.expired, 1);
});

test('random bytes are dropped and counted, never thrown (property)', () => {
  const d = new Directory(id('a'), 'A');
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 100 }),
      fc.integer({ min: 0, max: 255 }),
      (body, type) => {
        const before = d.counters.malformed + d.counters.announceReceived;
        d.receive(id('b'), type, body, 0);
        assert.equal(d.counters.malformed + d.counters.announceReceived, before + 1);
      },
    ),
  );
});

test('announce codec round trips (property)', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[0-9a-f]{32}$/),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 255 }),
      fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
      (origin, seq, hopLimit, name) => {
        assert.deepEqual(decodeAnnounce(encodeAnnounce({ origin, seq, hopLimit, name })), {
          origin,
          seq,
          hopLimit,
          name,
        });
      },
    ),
  );
});
