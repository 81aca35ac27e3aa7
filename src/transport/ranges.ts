/**
 * A set of non-overlapping half-open integer ranges [start, end), kept sorted
 * and merged. Used for received packet numbers (duplicates and ACK ranges)
 * and for acknowledged / to-retransmit stream byte ranges.
 */
export class RangeSet {
  /** Sorted, merged, non-empty ranges. */
  private ranges: [number, number][] = [];

  get size(): number {
    return this.ranges.length;
  }

  list(): readonly (readonly [number, number])[] {
    return this.ranges;
  }

  has(n: number): boolean {
    for (const [s, e] of this.ranges) {
      if (n < s) return false;
      if (n < e) return true;
    }
    return false;
  }

  /** Adds [start, end); returns the number of values that were not in the set. */
  add(start: number, end: number): number {
    if (end <= start) return 0;
    let added = end - start;
    const out: [number, number][] = [];
    let s = start;
    let e = end;
    for (const r of this.ranges) {
      if (r[1] < s || r[0] > e) {
        out.push(r);
        continue;
      }
      added -= Math.max(0, Math.min(r[1], end) - Math.max(r[0], start));
      s = Math.min(s, r[0]);
      e = Math.max(e, r[1]);
    }
    out.push([s, e]);
    out.sort((a, b) => a[0] - b[0]);
    this.ranges = out;
    return added;
  }

  /** Removes [start, end). */
  remove(start: number, end: number): void {
    if (end <= start) return;
    const out: [number, number][] = [];
    for (const [s, e] of this.ranges) {
      if (e <= start || s >= end) out.push([s, e]);
      else {
        if (s < start) out.push([s, start]);
        if (e > end) out.push([end, e]);
      }
    }
    this.ranges = out;
  }

  /** End of the range starting at `from` (i.e. the first value >= from not in the set). */
  contiguousFrom(from: number): number {
    for (const [s, e] of this.ranges) if (s <= from && from < e) return e;
    return from;
  }

  /** First range, if any. */
  first(): readonly [number, number] | undefined {
    return this.ranges[0];
  }

  /** Keeps only the `keep` highest ranges (bounded memory); returns the lowest value still tracked. */
  trim(keep: number): void {
    if (this.ranges.length > keep) this.ranges = this.ranges.slice(this.ranges.length - keep);
  }
}
