/**
 * Topology builders for the simulator: line, ring, grid, diamond, random
 * geometric (unit square, links between devices closer than a radius, made
 * connected), scale-free (Barabási–Albert preferential attachment) and a text
 * file of edges. Devices are numbered 0..size-1; names are d0, d1, ... unless
 * the file names them.
 */
import { readFileSync } from 'node:fs';
import { VmeshError } from '../errors/index.ts';
import { randomInt, seeded } from './rng.ts';
import type { Rng } from './rng.ts';

/** Properties of a simulated link (both directions alike). */
export interface LinkSpec {
  /**
   * One-way propagation delay, ms.
   * @default 5
   */
  delayMs: number;
  /**
   * Probability that a message is lost, 0..1.
   * @default 0
   */
  loss: number;
  /**
   * Bandwidth each way, bits per second (messages queue behind each other).
   * @default 10_000_000
   */
  bandwidthBps: number;
  /**
   * Link cost reported to the protocols (the daemon derives it from measured RTT and loss).
   * @default 1
   */
  cost: number;
}

export const DEFAULT_LINK: LinkSpec = { delayMs: 5, loss: 0, bandwidthBps: 10_000_000, cost: 1 };

export interface Edge {
  a: number;
  b: number;
  link?: Partial<LinkSpec>;
}

export interface Topology {
  /** What built it, e.g. "grid 5x5". */
  label: string;
  size: number;
  names: string[];
  edges: Edge[];
  /** Positions in the unit square, for geometric topologies (mobility uses them). */
  positions?: [number, number][];
  /** Link radius of a geometric topology (mobility keeps links within it). */
  radius?: number;
}

function named(label: string, size: number, edges: [number, number][]): Topology {
  return {
    label,
    size,
    names: Array.from({ length: size }, (_, i) => `d${i}`),
    edges: edges.map(([a, b]) => ({ a, b })),
  };
}

function atLeast(what: string, n: number, min: number): void {
  if (!Number.isInteger(n) || n < min)
    throw new VmeshError('VMESH_ERR_CONFIG', `${what} needs an integer >= ${min} (got ${n})`);
}

export function line(n: number): Topology {
  atLeast('line', n, 2);
  return named(
    `line ${n}`,
    n,
    Array.from({ length: n - 1 }, (_, i) => [i, i + 1]),
  );
}

export function ring(n: number): Topology {
  atLeast('ring', n, 3);
  return named(
    `ring ${n}`,
    n,
    Array.from({ length: n }, (_, i) => [i, (i + 1) % n]),
  );
}

export function grid(w: number, h: number): Topology {
  atLeast('grid width', w, 1);
  atLeast('grid height', h, 1);
  if (w * h < 2) throw new VmeshError('VMESH_ERR_CONFIG', 'a grid needs at least 2 devices');
  const e: [number, number][] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (x + 1 < w) e.push([y * w + x, y * w + x + 1]);
      if (y + 1 < h) e.push([y * w + x, (y + 1) * w + x]);
    }
  }
  return named(`grid ${w}x${h}`, w * h, e);
}

/** A, B, C, D = 0, 1, 2, 3: A–B–D and A–C–D, A and D not linked (the demo's shape). */
export function diamond(): Topology {
  const t = named('diamond', 4, [
    [0, 1],
    [0, 2],
    [1, 3],
    [2, 3],
  ]);
  t.names = ['A', 'B', 'C', 'D'];
  return t;
}

/** Distance between two positions. */
export function distance(p: [number, number], q: [number, number]): number {
  return Math.hypot(p[0] - q[0], p[1] - q[1]);
}

/** Edges between positions closer than `radius`. */
export function geometricEdges(positions: [number, number][], radius: number): [number, number][] {
  const e: [number, number][] = [];
  for (let i = 0; i < positions.length; i++) {
    for (let j = i + 1; j < positions.length; j++) {
      if (distance(positions[i] as [number, number], positions[j] as [number, number]) < radius)
        e.push([i, j]);
    }
  }
  return e;
}

/**
 * Random geometric graph: n devices uniform in the unit square, linked when
 * closer than `radius` (default: about twice the connectivity threshold
 * sqrt(ln n / (π n))); components are then joined by their closest pair so
 * the graph is connected.
 */
export function randomGeometric(n: number, seed: number, radius?: number): Topology {
  atLeast('random geometric', n, 2);
  const random = seeded(seed);
  const positions = Array.from({ length: n }, () => [random(), random()] as [number, number]);
  const r = radius ?? Math.min(1, 2 * Math.sqrt(Math.log(n) / (Math.PI * n)));
  const edges = geometricEdges(positions, r);
  connect(n, edges, (i, j) =>
    distance(positions[i] as [number, number], positions[j] as [number, number]),
  );
  const t = named(`random geometric ${n} (r=${r.toFixed(2)}, seed ${seed})`, n, edges);
  t.positions = positions;
  t.radius = r;
  return t;
}

/** Barabási–Albert: each new device links to `m` existing ones with probability proportional to degree. */
export function scaleFree(n: number, seed: number, m = 2): Topology {
  atLeast('scale-free', n, m + 1);
  const random = seeded(seed);
  const edges: [number, number][] = [];
  const ends: number[] = [];
  for (let i = 0; i <= m; i++) {
    for (let j = 0; j < i; j++) {
      edges.push([j, i]);
      ends.push(i, j);
    }
  }
  for (let i = m + 1; i < n; i++) {
    const targets = new Set<number>();
    while (targets.size < m) targets.add(ends[randomInt(random, ends.length)] as number);
    for (const t of targets) {
      edges.push([t, i]);
      ends.push(t, i);
    }
  }
  return named(`scale-free ${n} (m=${m}, seed ${seed})`, n, edges);
}

/** Joins the components of a graph by adding, repeatedly, the cheapest edge between two of them. */
function connect(
  n: number,
  edges: [number, number][],
  cost: (i: number, j: number) => number,
): void {
  for (;;) {
    const comp = components(n, edges);
    const count = Math.max(...comp) + 1;
    if (count <= 1) return;
    let best: [number, number, number] | undefined;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (comp[i] !== 0 || comp[j] === 0) continue;
        const c = cost(i, j);
        if (best === undefined || c < best[2]) best = [i, j, c];
      }
    }
    if (best === undefined) return;
    edges.push([best[0], best[1]]);
  }
}

/** Component number of every device (0 is the component of device 0). */
export function components(n: number, edges: readonly [number, number][]): number[] {
  const adj: number[][] = Array.from({ length: n }, () => []);
  for (const [a, b] of edges) {
    adj[a]?.push(b);
    adj[b]?.push(a);
  }
  const comp = new Array<number>(n).fill(-1);
  let next = 0;
  for (let s = 0; s < n; s++) {
    if (comp[s] !== -1) continue;
    const stack = [s];
    comp[s] = next;
    while (stack.length > 0) {
      const u = stack.pop() as number;
      for (const v of adj[u] ?? []) {
        if (comp[v] === -1) {
          comp[v] = next;
          stack.push(v);
        }
      }
    }
    next++;
  }
  return comp;
}

/**
 * Parses an edges file: one link per line, `NAME NAME [delay=MS] [loss=P]
 * [rate=BPS] [cost=C]`; `#` starts a comment. Names become devices in order
 * of first appearance.
 */
export function parseEdges(text: string, label = 'edges file'): Topology {
  const names: string[] = [];
  const index = new Map<string, number>();
  const idOf = (name: string): number => {
    let i = index.get(name);
    if (i === undefined) {
      i = names.length;
      names.push(name);
      index.set(name, i);
    }
    return i;
  };
  const edges: Edge[] = [];
  text.split('\n').forEach((raw, lineNo) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const where = `${label} line ${lineNo + 1}`;
    const [a, b, ...opts] = line.split(/\s+/);
    if (a === undefined || b === undefined)
      throw new VmeshError('VMESH_ERR_CONFIG', `${where}: expected "NAME NAME [key=value ...]"`);
    if (a === b) throw new VmeshError('VMESH_ERR_CONFIG', `${where}: a link needs two devices`);
    const link: Partial<LinkSpec> = {};
    for (const opt of opts) {
      const m = /^(delay|loss|rate|cost)=([0-9.eE+-]+)$/.exec(opt);
      const v = m === null ? NaN : Number(m[2]);
      if (m === null || !Number.isFinite(v) || v < 0)
        throw new VmeshError(
          'VMESH_ERR_CONFIG',
          `${where}: bad option "${opt}" (delay=, loss=, rate=, cost=)`,
        );
      if (m[1] === 'delay') link.delayMs = v;
      else if (m[1] === 'loss') {
        if (v > 1) throw new VmeshError('VMESH_ERR_CONFIG', `${where}: loss must be 0..1`);
        link.loss = v;
      } else if (m[1] === 'rate') link.bandwidthBps = v;
      else link.cost = Math.max(1, v);
    }
    edges.push({ a: idOf(a), b: idOf(b), link });
  });
  if (names.length < 2)
    throw new VmeshError('VMESH_ERR_CONFIG', `${label}: needs at least one link`);
  return { label, size: names.length, names, edges };
}

/**
 * A topology from a spec string: `line:N`, `ring:N`, `grid:WxH`, `diamond`,
 * `geometric:N`, `scale-free:N`, or `file:PATH`. `seed` drives the random ones.
 */
export function topologyFrom(spec: string, seed: number): Topology {
  const [kind, arg = ''] = spec.split(/:(.*)/s) as [string, string?];
  const num = (): number => {
    const v = Number(arg);
    if (arg === '' || !Number.isInteger(v))
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `topology "${spec}": expected a device count, e.g. ${kind}:20`,
      );
    return v;
  };
  switch (kind) {
    case 'line':
      return line(num());
    case 'ring':
      return ring(num());
    case 'grid': {
      const m = /^(\d+)x(\d+)$/.exec(arg);
      if (m === null)
        throw new VmeshError(
          'VMESH_ERR_CONFIG',
          `topology "${spec}": expected grid:WxH, e.g. grid:5x5`,
        );
      return grid(Number(m[1]), Number(m[2]));
    }
    case 'diamond':
      return diamond();
    case 'geometric':
      return randomGeometric(num(), seed);
    case 'scale-free':
      return scaleFree(num(), seed);
    case 'file': {
      let text: string;
      try {
        text = readFileSync(arg, 'utf8');
      } catch (err) {
        throw new VmeshError(
          'VMESH_ERR_CONFIG',
          `cannot read edges file "${arg}": ${(err as Error).message}`,
        );
      }
      return parseEdges(text, arg);
    }
    default:
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `unknown topology "${spec}" (line:N, ring:N, grid:WxH, diamond, geometric:N, scale-free:N, file:PATH)`,
      );
  }
}

export type { Rng };
