// A deterministic network of routing protocol instances on a virtual clock:
// messages are delivered in order after `delayMs`, links go down and up on
// command, and every action the protocols return is carried out. The
// simulator (a later issue) grows out of this.
import type {
  ProtocolMessage,
  RoutingAction,
  RoutingProtocol,
  RoutingProtocolFactory,
} from '../../../src/routing/index.ts';

export const idOf = (i: number): string => i.toString(16).padStart(32, '0');

import { seeded } from '../../helpers/rng.ts';

export { seeded };

export class TestNet {
  readonly nodes: RoutingProtocol[];
  readonly ids: string[];
  now = 0;
  delivered = 0;
  /** Messages sent, by sender index. */
  readonly sentBy: number[];
  private readonly links = new Set<string>();
  private queue: { at: number; from: number; to: number; message: ProtocolMessage }[] = [];
  private readonly delayMs: number;
  /** Called with every message delivered (for counting floods). */
  onDeliver: ((from: number, to: number, message: ProtocolMessage) => void) | undefined;
  /** Drop messages for which this returns true. */
  drop: ((from: number, to: number, message: ProtocolMessage) => boolean) | undefined;

  constructor(
    size: number,
    factory: RoutingProtocolFactory,
    opts: { delayMs?: number; seed?: number } = {},
  ) {
    const random = seeded(opts.seed ?? 7);
    this.ids = Array.from({ length: size }, (_, i) => idOf(i + 1));
    this.nodes = this.ids.map((self) => factory({ self, random }));
    this.sentBy = this.ids.map(() => 0);
    this.delayMs = opts.delayMs ?? 5;
    this.nodes.forEach((n, i) => this.apply(i, n.start(this.now)));
  }

  private key(a: number, b: number): string {
    return a < b ? `${a}-${b}` : `${b}-${a}`;
  }

  linked(a: number, b: number): boolean {
    return this.links.has(this.key(a, b));
  }

  neighboursOf(i: number): number[] {
    return this.ids.map((_, j) => j).filter((j) => j !== i && this.linked(i, j));
  }

  up(a: number, b: number, cost = 1): void {
    if (this.linked(a, b)) return;
    this.links.add(this.key(a, b));
    this.apply(a, (this.nodes[a] as RoutingProtocol).linkUp(this.ids[b] as string, cost, this.now));
    this.apply(b, (this.nodes[b] as RoutingProtocol).linkUp(this.ids[a] as string, cost, this.now));
  }

  down(a: number, b: number): void {
    if (!this.links.delete(this.key(a, b))) return;
    this.queue = this.queue.filter((m) => this.key(m.from, m.to) !== this.key(a, b));
    this.apply(a, (this.nodes[a] as RoutingProtocol).linkDown(this.ids[b] as string, this.now));
    this.apply(b, (this.nodes[b] as RoutingProtocol).linkDown(this.ids[a] as string, this.now));
  }

  /** Takes every link of device i down (a crash). */
  crash(i: number): void {
    for (const j of this.neighboursOf(i)) this.down(i, j);
  }

  edges(list: [number, number][]): this {
    for (const [a, b] of list) this.up(a, b);
    return this;
  }

  /** Injects a message as if neighbour `from` had sent it to `to`. */
  inject(from: number, to: number, message: ProtocolMessage): void {
    this.apply(
      to,
      (this.nodes[to] as RoutingProtocol).receive(this.ids[from] as string, message, this.now),
    );
  }

  apply(from: number, actions: RoutingAction[]): void {
    for (const a of actions) {
      if (a.type === 'routesChanged') continue;
      const targets =
        a.type === 'send'
          ? [this.ids.indexOf(a.to)]
          : this.neighboursOf(from).filter((j) => this.ids[j] !== a.except);
      for (const to of targets) {
        if (to < 0 || !this.linked(from, to)) continue;
        this.sentBy[from] = (this.sentBy[from] ?? 0) + 1;
        this.queue.push({ at: this.now + this.delayMs, from, to, message: a.message });
      }
    }
  }

  /** Runs the network until virtual time `until` (ms). */
  runUntil(until: number): void {
    while (this.now < until) {
      this.queue.sort((x, y) => x.at - y.at);
      const nextMsg = this.queue[0]?.at ?? Infinity;
      const nextTimer = Math.min(...this.nodes.map((n) => n.nextDeadline()));
      const next = Math.min(nextMsg, nextTimer, until);
      this.now = Math.max(this.now, next);
      while ((this.queue[0]?.at ?? Infinity) <= this.now) {
        const m = this.queue.shift();
        if (m === undefined) break;
        if (!this.linked(m.from, m.to)) continue;
        if (this.drop?.(m.from, m.to, m.message) === true) continue;
        this.delivered++;
        this.onDeliver?.(m.from, m.to, m.message);
        this.apply(
          m.to,
          (this.nodes[m.to] as RoutingProtocol).receive(
            this.ids[m.from] as string,
            m.message,
            this.now,
          ),
        );
      }
      this.nodes.forEach((n, i) => {
        if (n.nextDeadline() <= this.now) this.apply(i, n.tick(this.now));
      });
      if (next === until) break;
    }
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  /** Follows unicast next hops from `from` to `to`; returns the path or undefined on a loop or dead end. */
  follow(from: number, to: number, avoid?: ReadonlySet<string>): number[] | undefined {
    const path = [from];
    let at = from;
    for (let hops = 0; hops <= this.nodes.length; hops++) {
      if (at === to) return path;
      const table = (this.nodes[at] as RoutingProtocol).forwardingTable(avoid);
      const next = table.nextHops[this.ids[to] as string];
      if (next === undefined) return undefined;
      at = this.ids.indexOf(next);
      if (path.includes(at)) return undefined;
      path.push(at);
    }
    return undefined;
  }
}

/** Hop distances by BFS over the live links. */
export function bfs(net: TestNet, from: number): Map<number, number> {
  const dist = new Map([[from, 0]]);
  const queue = [from];
  while (queue.length > 0) {
    const u = queue.shift() as number;
    for (const v of net.neighboursOf(u)) {
      if (!dist.has(v)) {
        dist.set(v, (dist.get(u) as number) + 1);
        queue.push(v);
      }
    }
  }
  return dist;
}

export const topologies = {
  line: (n: number): [number, number][] => Array.from({ length: n - 1 }, (_, i) => [i, i + 1]),
  ring: (n: number): [number, number][] => Array.from({ length: n }, (_, i) => [i, (i + 1) % n]),
  grid: (w: number, h: number): [number, number][] => {
    const e: [number, number][] = [];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (x + 1 < w) e.push([y * w + x, y * w + x + 1]);
        if (y + 1 < h) e.push([y * w + x, (y + 1) * w + x]);
      }
    }
    return e;
  },
  /** A, B, C, D = 0, 1, 2, 3: A–B–D, A–C–D. */
  diamond: (): [number, number][] => [
    [0, 1],
    [0, 2],
    [1, 3],
    [2, 3],
  ],
};
