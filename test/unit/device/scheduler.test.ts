// The per-link fair queue: a bulk connection cannot starve another's small
// packets; bounded backlog per connection; straight through when idle.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FairQueue } from '../../../src/device/index.ts';
import { Counters } from '../../../src/observe/index.ts';

/** A link whose socket takes `drainBytes` per tick; records what was written, in order. */
class FakeLink {
  closed = false;
  queuedBytes = 0;
  readonly written: string[] = [];
  private drainListener: (() => void) | undefined;
  send(_type: number, body: Uint8Array): boolean {
    this.queuedBytes += body.length;
    this.written.push(String.fromCharCode(body[0] as number));
    return true;
  }
  onDrain(listener: () => void): void {
    this.drainListener = listener;
  }
  tick(drainBytes: number): void {
    this.queuedBytes = Math.max(0, this.queuedBytes - drainBytes);
    if (this.queuedBytes === 0) this.drainListener?.();
  }
}

const packet = (flow: string, size: number): Uint8Array => {
  const p = new Uint8Array(size);
  p[0] = flow.charCodeAt(0);
  return p;
};

test('an idle link takes packets straight through', () => {
  const link = new FakeLink();
  const q = new FairQueue(link, new Counters(), { lowWaterBytes: 1000 });
  assert.equal(q.send('a', packet('a', 100)), true);
  assert.deepEqual(link.written, ['a']);
  assert.equal(q.waiting, 0);
});

test('behind a bulk backlog, a small flow gets its turn at once, not after the backlog', () => {
  const link = new FakeLink();
  const q = new FairQueue(link, new Counters(), {
    lowWaterBytes: 16 * 1024,
    quantumBytes: 16 * 1024,
    maxQueuedBytes: 10 * 1024 * 1024,
  });
  for (let i = 0; i < 200; i++) q.send('b', packet('b', 16 * 1024)); // 3.2 MB of bulk
  q.send('s', packet('s', 64));
  q.send('s', packet('s', 64));
  // The small packets go out within the next two turns, not after 3.2 MB.
  for (let t = 0; t < 4; t++) link.tick(1e9);
  const firstSmall = link.written.indexOf('s');
  assert.ok(firstSmall >= 0 && firstSmall <= 3, `small packet written at position ${firstSmall}`);
  assert.equal(link.written.filter((x) => x === 's').length, 2);
});

test('flows with backlogs share the link in proportion to the quantum (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 5 }),
      fc.integer({ min: 100, max: 4000 }),
      (flows, size) => {
        const link = new FakeLink();
        const q = new FairQueue(link, new Counters(), {
          lowWaterBytes: 1,
          quantumBytes: 4000,
          maxQueuedBytes: 1e9,
        });
        const names = 'abcde'.slice(0, flows).split('');
        for (let i = 0; i < 50; i++) for (const n of names) q.send(n, packet(n, size));
        for (let t = 0; t < 20; t++) link.tick(1e9);
        // Over every window of one round, each flow sent (nearly) the same count.
        const counts = names.map((n) => link.written.filter((x) => x === n).length);
        assert.ok(
          Math.max(...counts) - Math.min(...counts) <= Math.ceil(4000 / size) + 1,
          JSON.stringify(counts),
        );
      },
    ),
  );
});

test("a connection's backlog is bounded; the excess is dropped and counted", () => {
  const link = new FakeLink();
  const counters = new Counters();
  const q = new FairQueue(link, counters, { lowWaterBytes: 1, maxQueuedBytes: 10_000 });
  q.send('a', packet('a', 5000)); // goes straight out (link idle)
  let refused = 0;
  for (let i = 0; i < 10; i++) if (!q.send('a', packet('a', 3000))) refused++;
  assert.equal(refused, 7);
  assert.equal(counters.get('switch.dropped', { reason: 'fair-queue-full' }), 7);
  // Another connection still has room.
  assert.equal(q.send('b', packet('b', 3000)), true);
});
