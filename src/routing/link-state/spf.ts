/**
 * Shortest paths over the link-state database (Dijkstra; OSPF RFC 2328 §16.1
 * in spirit). A link u–v is used only when both u's and v's advertisements
 * list each other (the bidirectional check of RFC 2328 §16.1 step 2b / OLSR
 * symmetric links); its cost is the one u advertises. Devices in `avoid` are
 * never intermediate hops (the destination itself may be one). Ties are
 * broken deterministically: lower cost, then fewer hops, then the smaller
 * device id at the first point of difference.
 */
import type { DeviceId } from '../../wire/index.ts';

/** origin -> (neighbour -> cost) */
export type Graph = ReadonlyMap<DeviceId, ReadonlyMap<DeviceId, number>>;

export interface ShortestPath {
  cost: number;
  path: DeviceId[];
}

export function shortestPaths(
  graph: Graph,
  self: DeviceId,
  avoid?: ReadonlySet<DeviceId>,
): Map<DeviceId, ShortestPath> {
  const best = new Map<DeviceId, ShortestPath>([[self, { cost: 0, path: [self] }]]);
  const done = new Set<DeviceId>();
  for (;;) {
    let u: DeviceId | undefined;
    let uBest: ShortestPath | undefined;
    for (const [id, sp] of best) {
      if (done.has(id)) continue;
      if (uBest === undefined || better(sp, uBest)) {
        u = id;
        uBest = sp;
      }
    }
    if (u === undefined || uBest === undefined) break;
    done.add(u);
    if (u !== self && avoid?.has(u)) continue;
    for (const [v, cost] of graph.get(u) ?? []) {
      if (done.has(v) || graph.get(v)?.has(u) !== true) continue;
      const candidate = { cost: uBest.cost + cost, path: [...uBest.path, v] };
      const known = best.get(v);
      if (known === undefined || better(candidate, known)) best.set(v, candidate);
    }
  }
  best.delete(self);
  return best;
}

function better(a: ShortestPath, b: ShortestPath): boolean {
  if (a.cost !== b.cost) return a.cost < b.cost;
  if (a.path.length !== b.path.length) return a.path.length < b.path.length;
  for (let i = 0; i < a.path.length; i++) {
    const x = a.path[i] as string;
    const y = b.path[i] as string;
    if (x !== y) return x < y;
  }
  return false;
}
