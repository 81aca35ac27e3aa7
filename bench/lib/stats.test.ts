// The benches' statistics: run with node --import tsx --test bench/lib/stats.test.ts
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { median, percentile, ratio, round } from './stats.ts';

test('median of odd and even counts, NaN for none', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('percentile by nearest rank', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('a percentile is always one of the samples, and grows with p', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1 }),
      fc.integer({ min: 0, max: 100 }),
      (xs, p) => {
        const v = percentile(xs, p);
        assert.ok(xs.includes(v));
        assert.ok(percentile(xs, Math.min(100, p + 1)) >= v);
      },
    ),
  );
});

test('ratio and round give null for what cannot be computed', () => {
  assert.equal(ratio(3, 2), 1.5);
  assert.equal(ratio(1, 0), null);
  assert.equal(ratio(null, 2), null);
  assert.equal(ratio(Number.NaN, 2), null);
  assert.equal(round(1.23456, 2), 1.23);
  assert.equal(round(Number.NaN), null);
  assert.equal(round(undefined), null);
});
