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

  /** Index of the first range whose end is >= n (the one that may hold or touch n). */
  private search(n: number): number {
    const r = this.ranges;
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((r[mid] as [number, number])[1] < n) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  has(n: number): boolean {
    const r = this.ranges[this.search(n + 1)];
    return r !== undefined && r[0] <= n && n < r[1];
  }

  /** Adds [start, end); returns the number of values that were not in the set. */
  add(start: number, end: number): number {
    if (end <= start) return 0;
    const r = this.ranges;
    const i = this.search(start);
    const first = r[i];
    if (first !== undefined && first[0] <= start && first[1] >= end) return 0;
    let added = end - start;
    let s = start;
    let e = end;
    let j = i;
    for (; j < r.length; j++) {
      const x = r[j] as [number, number];
      if (x[0] > end) break;
      added -= Math.max(0, Math.min(x[1], end) - Math.max(x[0], start));
      s = Math.min(s, x[0]);
      e = Math.max(e, x[1]);
    }
    r.splice(i, j - i, [s, e]);
    return added;
  }

  /** Removes [start, end). */
  remove(start: number, end: number): void {
    if (end <= start) return;
    const r = this.ranges;
    const i = this.search(start + 1);
    const out: [number, number][] = [];
    let j = i;
    for (; j < r.length; j++) {
      const [s, e] = r[j] as [number, number];
      if (s >= end) break;
      if (s < start) out.push([s, start]);
      if (e > end) out.push([end, e]);
    }
    if (j > i || out.length > 0) r.splice(i, j - i, ...out);
  }

  /** Does any value in [start, end) belong to the set? */
  intersects(start: number, end: number): boolean {
    if (end <= start) return false;
    const r = this.ranges[this.search(start + 1)];
    return r !== undefined && r[0] < end;
  }

  /** End of the range starting at `from` (i.e. the first value >= from not in the set). */
  contiguousFrom(from: number): number {
    const r = this.ranges[this.search(from + 1)];
    return r !== undefined && r[0] <= from ? r[1] : from;
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
