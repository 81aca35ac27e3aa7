import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PacketWindow } from '../../../src/vm/engine.ts';

test('PacketWindow accepts each number once and refuses numbers older than the window', () => {
  const w = new PacketWindow(64);
  assert.equal(w.add(5), true);
  assert.equal(w.add(5), false);
  assert.equal(w.add(3), true);
  assert.equal(w.add(3), false);
  assert.equal(w.add(200), true);
  assert.equal(w.add(100), false, 'older than the window: refused');
  assert.equal(w.add(199), true);
});

test('PacketWindow agrees with a Set within the window (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 400 }), (numbers) => {
      const w = new PacketWindow(64);
      const seen = new Set<number>();
      let highest = -1;
      for (const n of numbers) {
        const fresh = !seen.has(n) && highest - n < 64;
        assert.equal(w.add(n), fresh, `number ${n}`);
        if (fresh) seen.add(n);
        highest = Math.max(highest, n);
      }
    }),
  );
});
