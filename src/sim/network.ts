/**
 * SimNetwork: one routing protocol instance per simulated device, on a
 * virtual clock, joined by simulated links with delay, loss and bandwidth.
 * It drives the same sans-I/O protocol code the daemon runs: it calls
 * start/linkUp/linkDown/linkCost/receive/tick with virtual `now` and carries
 * out the actions they return. Nothing here reads the wall clock; all
 * randomness comes from the seed, so a run is reproducible.
 *
 * Data structures: `heap` (pending message deliveries and scheduled calls,
 * ordered by time then FIFO), `links` (per pair: spec, administrative state,
 * an epoch that invalidates in-flight messages when the link goes down, and a
 * busy-until time per direction for bandwidth), `nodes` (the protocol
 * instance, or undefined while the device is crashed).
 */
import { VmeshError } from '../errors/index.ts';
import type {
  ProtocolMessage,
  RoutingAction,
  RoutingSigner,
  RoutingProtocol,
  RoutingProtocolFactory,
} from '../routing/index.ts';
import { CONTROL_HEADER_BYTES, FRAME_PREFIX_BYTES } from '../wire/index.ts';
import type { DeviceId } from '../wire/index.ts';
import { EventHeap } from './heap.ts';
import { fork, seeded } from './rng.ts';
import type { Rng } from './rng.ts';
import { DEFAULT_LINK } from './topology.ts';
import type { LinkSpec, Topology } from './topology.ts';

/** Device id of simulated device `i` (16 bytes of hex; ids order like indexes). */
export const simId = (i: number): DeviceId => (i + 1).toString(16).padStart(32, '0');

/** Bytes a control message costs on a link beyond its body (frame prefix + control envelope). */
export const CONTROL_OVERHEAD_BYTES = FRAME_PREFIX_BYTES + CONTROL_HEADER_BYTES;

/** Per-device traffic counters. */
export interface DeviceStats {
  messagesSent: number;
  bytesSent: number;
  messagesReceived: number;
  /** Messages lost on a link (loss probability) from this device. */
  messagesLost: number;
  routeChanges: number;
}

interface SimLink {
  a: number;
  b: number;
  spec: LinkSpec;
  /** Administratively up (not cut by a script). */
  admin: boolean;
  /** Up as the protocols see it (admin and both ends alive). */
  up: boolean;
  epoch: number;
  busyUntil: [number, number];
}

type SimEvent =
  | {
      kind: 'msg';
      from: number;
      to: number;
      link: SimLink;
      epoch: number;
      message: ProtocolMessage;
    }
  | { kind: 'call'; fn: () => void };

export interface SimOptions {
  /**
   * Seed of every random choice (protocol jitter, loss).
   * @default 1
   */
  seed?: number;
  /** Link properties for edges that do not set their own. */
  link?: Partial<LinkSpec>;
  /**
   * Guard against a protocol that keeps asking for a tick at the same instant.
   * @default 100000
   */
  maxStepsPerInstant?: number;
  /**
   * Real identities for the devices (id and signer each), for runs with signed
   * routing claims; default: ids from `simId` and no signatures.
   */
  identities?: { id: DeviceId; signer: RoutingSigner }[];
}

/** Hooks for observers (metrics, the compliance suite). */
export interface SimObserver {
  /** A control message was delivered. */
  message?(from: number, to: number, message: ProtocolMessage): void;
  /** A protocol reported routesChanged. */
  routesChanged?(device: number, destinations: DeviceId[] | undefined): void;
  /** Called after every instant of virtual time was processed. */
  step?(now: number): void;
}

export class SimNetwork {
  now = 0;
  readonly size: number;
  readonly ids: DeviceId[];
  readonly names: string[];
  readonly stats: DeviceStats[];
  private readonly nodes: (RoutingProtocol | undefined)[];
  private readonly links = new Map<string, SimLink>();
  private readonly adjacency: Set<number>[];
  private readonly heap = new EventHeap<SimEvent>();
  /** Protocol deadlines, lazily invalidated: an entry counts only if its generation is current. */
  private readonly timers = new EventHeap<{ i: number; gen: number }>();
  private readonly timerGen: number[];
  private readonly random: Rng;
  private readonly lossRandom: Rng;
  /** Random stream for data traffic (loss of data packets, flow choice). */
  readonly dataRandom: Rng;
  private readonly defaults: LinkSpec;
  private readonly maxSteps: number;
  private readonly observers: SimObserver[] = [];
  private readonly index = new Map<DeviceId, number>();
  private readonly identities: { id: DeviceId; signer: RoutingSigner }[] | undefined;
  /** Drop hook: messages for which it returns true are lost (tests). */
  drop: ((from: number, to: number, message: ProtocolMessage) => boolean) | undefined;

  constructor(
    readonly topology: Topology,
    private readonly factory: RoutingProtocolFactory,
    opts: SimOptions = {},
  ) {
    this.size = topology.size;
    this.random = seeded(opts.seed ?? 1);
    this.lossRandom = fork(this.random);
    this.dataRandom = fork(this.random);
    this.defaults = { ...DEFAULT_LINK, ...opts.link };
    this.maxSteps = opts.maxStepsPerInstant ?? 100000;
    if (opts.identities !== undefined && opts.identities.length !== this.size)
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `${opts.identities.length} identities for ${this.size} devices`,
      );
    this.identities = opts.identities;
    this.ids = Array.from({ length: this.size }, (_, i) => opts.identities?.[i]?.id ?? simId(i));
    this.ids.forEach((id, i) => this.index.set(id, i));
    this.names = topology.names.slice();
    this.stats = this.ids.map(() => ({
      messagesSent: 0,
      bytesSent: 0,
      messagesReceived: 0,
      messagesLost: 0,
      routeChanges: 0,
    }));
    this.adjacency = this.ids.map(() => new Set<number>());
    this.nodes = this.ids.map(() => undefined);
    this.timerGen = this.ids.map(() => 0);
    for (let i = 0; i < this.size; i++) this.boot(i);
    for (const e of topology.edges) this.addLink(e.a, e.b, e.link);
  }

  observe(o: SimObserver): () => void {
    this.observers.push(o);
    return () => {
      const i = this.observers.indexOf(o);
      if (i >= 0) this.observers.splice(i, 1);
    };
  }

  /** Index of a device id (or -1). */
  indexOf(id: DeviceId): number {
    return this.index.get(id) ?? -1;
  }

  /** The protocol instance of device `i`, or undefined while it is crashed. */
  node(i: number): RoutingProtocol | undefined {
    return this.nodes[i];
  }

  alive(i: number): boolean {
    return this.nodes[i] !== undefined;
  }

  private key(a: number, b: number): string {
    return a < b ? `${a}-${b}` : `${b}-${a}`;
  }

  private boot(i: number): void {
    const signer = this.identities?.[i]?.signer;
    const node = this.factory({
      self: this.ids[i] as DeviceId,
      random: fork(this.random),
      ...(signer === undefined ? {} : { signer }),
    });
    this.nodes[i] = node;
    this.apply(i, node.start(this.now));
  }

  /** Adds a link (administratively up) between a and b. */
  addLink(a: number, b: number, spec?: Partial<LinkSpec>): void {
    this.check(a);
    this.check(b);
    if (a === b)
      throw new VmeshError('VMESH_ERR_CONFIG', `a link needs two devices (got ${a} twice)`);
    const k = this.key(a, b);
    let link = this.links.get(k);
    if (link === undefined) {
      link = {
        a: Math.min(a, b),
        b: Math.max(a, b),
        spec: { ...this.defaults, ...spec },
        admin: true,
        up: false,
        epoch: 0,
        busyUntil: [0, 0],
      };
      this.links.set(k, link);
    } else {
      link.admin = true;
      if (spec !== undefined) link.spec = { ...link.spec, ...spec };
    }
    this.sync(link);
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size)
      throw new VmeshError(
        'VMESH_ERR_UNKNOWN_DEVICE',
        `no simulated device ${i} (0..${this.size - 1})`,
      );
  }

  /** Brings the link between a and b down (it stays known and can come up again). */
  linkDown(a: number, b: number): void {
    const link = this.links.get(this.key(a, b));
    if (link === undefined) return;
    link.admin = false;
    this.sync(link);
  }

  /** Brings a known link up again, or adds it. */
  linkUp(a: number, b: number, spec?: Partial<LinkSpec>): void {
    this.addLink(a, b, spec);
  }

  /** Changes a link's cost (and reports it to both ends). */
  setCost(a: number, b: number, cost: number): void {
    const link = this.links.get(this.key(a, b));
    if (link === undefined) return;
    link.spec.cost = cost;
    if (!link.up) return;
    this.apply(
      a,
      (this.nodes[a] as RoutingProtocol).linkCost(this.ids[b] as DeviceId, cost, this.now),
    );
    this.apply(
      b,
      (this.nodes[b] as RoutingProtocol).linkCost(this.ids[a] as DeviceId, cost, this.now),
    );
  }

  /** Device i stops: its state is lost and its neighbours see its links go down. */
  crash(i: number): void {
    this.check(i);
    if (this.nodes[i] === undefined) return;
    this.nodes[i] = undefined;
    (this.timerGen[i] as number)++;
    for (const j of [...(this.adjacency[i] as Set<number>)])
      this.sync(this.links.get(this.key(i, j)) as SimLink);
  }

  /** Device i starts again with fresh state; its administratively-up links come back. */
  restart(i: number): void {
    this.check(i);
    if (this.nodes[i] !== undefined) return;
    this.boot(i);
    for (const link of this.links.values()) if (link.a === i || link.b === i) this.sync(link);
  }

  /** Cuts every link between `group` and the rest. */
  partition(group: readonly number[]): void {
    const inside = new Set(group);
    for (const link of this.links.values())
      if (inside.has(link.a) !== inside.has(link.b)) {
        link.admin = false;
        this.sync(link);
      }
  }

  /** Brings every known link administratively up. */
  heal(): void {
    for (const link of this.links.values()) {
      link.admin = true;
      this.sync(link);
    }
  }

  /** Reconciles a link's protocol-visible state with its admin state and its ends' liveness. */
  private sync(link: SimLink): void {
    const want = link.admin && this.alive(link.a) && this.alive(link.b);
    if (want === link.up) return;
    link.up = want;
    link.epoch++;
    const { a, b } = link;
    if (want) {
      this.adjacency[a]?.add(b);
      this.adjacency[b]?.add(a);
      this.apply(
        a,
        (this.nodes[a] as RoutingProtocol).linkUp(
          this.ids[b] as DeviceId,
          link.spec.cost,
          this.now,
        ),
      );
      this.apply(
        b,
        (this.nodes[b] as RoutingProtocol).linkUp(
          this.ids[a] as DeviceId,
          link.spec.cost,
          this.now,
        ),
      );
    } else {
      this.adjacency[a]?.delete(b);
      this.adjacency[b]?.delete(a);
      const na = this.nodes[a];
      const nb = this.nodes[b];
      if (na !== undefined) this.apply(a, na.linkDown(this.ids[b] as DeviceId, this.now));
      if (nb !== undefined) this.apply(b, nb.linkDown(this.ids[a] as DeviceId, this.now));
    }
  }

  /** Live neighbours of device i. */
  neighbours(i: number): number[] {
    return [...(this.adjacency[i] ?? [])].sort((x, y) => x - y);
  }

  linked(a: number, b: number): boolean {
    return this.adjacency[a]?.has(b) === true;
  }

  /** The live link's properties between a and b. */
  linkSpec(a: number, b: number): LinkSpec | undefined {
    const link = this.links.get(this.key(a, b));
    return link?.up === true ? link.spec : undefined;
  }

  /** Every known link and whether it is up. */
  allLinks(): { a: number; b: number; up: boolean; spec: LinkSpec }[] {
    return [...this.links.values()].map((l) => ({ a: l.a, b: l.b, up: l.up, spec: { ...l.spec } }));
  }

  /** Runs `fn` at virtual time `at` (scripted events, traffic). */
  at(at: number, fn: () => void): void {
    this.heap.push(Math.max(at, this.now), { kind: 'call', fn });
  }

  /** Delivers `message` to `to` as if neighbour `from` had sent it (tests, storms). */
  inject(from: number, to: number, message: ProtocolMessage): void {
    const node = this.nodes[to];
    if (node === undefined) return;
    this.apply(to, node.receive(this.ids[from] as DeviceId, message, this.now));
  }

  /**
   * Carries out a device's actions: messages onto links, route changes to
   * observers; then re-reads the device's next deadline. Whoever calls a
   * device's protocol directly passes the actions here.
   */
  apply(from: number, actions: readonly RoutingAction[]): void {
    this.act(from, actions);
    const node = this.nodes[from];
    if (node === undefined) return;
    const gen = (this.timerGen[from] ?? 0) + 1;
    this.timerGen[from] = gen;
    this.timers.push(node.nextDeadline(), { i: from, gen });
  }

  private act(from: number, actions: readonly RoutingAction[]): void {
    for (const a of actions) {
      if (a.type === 'routesChanged') {
        (this.stats[from] as DeviceStats).routeChanges++;
        for (const o of this.observers) o.routesChanged?.(from, a.destinations);
        continue;
      }
      if (a.type === 'send') {
        const to = this.indexOf(a.to);
        if (to >= 0) this.transmit(from, to, a.message);
        continue;
      }
      for (const to of this.neighbours(from))
        if (this.ids[to] !== a.except) this.transmit(from, to, a.message);
    }
  }

  private transmit(from: number, to: number, message: ProtocolMessage): void {
    const link = this.links.get(this.key(from, to));
    if (link?.up !== true) return;
    const stats = this.stats[from] as DeviceStats;
    const bytes = message.body.length + CONTROL_OVERHEAD_BYTES;
    stats.messagesSent++;
    stats.bytesSent += bytes;
    const dir = from === link.a ? 0 : 1;
    const start = Math.max(this.now, link.busyUntil[dir]);
    const done = start + (bytes * 8 * 1000) / link.spec.bandwidthBps;
    link.busyUntil[dir] = done;
    if (link.spec.loss > 0 && this.lossRandom() < link.spec.loss) {
      stats.messagesLost++;
      return;
    }
    // The body is copied: a protocol must not be able to change a message after sending it.
    this.heap.push(done + link.spec.delayMs, {
      kind: 'msg',
      from,
      to,
      link,
      epoch: link.epoch,
      message: { type: message.type, body: Uint8Array.from(message.body) },
    });
  }

  /** Earliest time anything happens (event or protocol timer). */
  nextEventTime(): number {
    for (;;) {
      const top = this.timers.peek();
      if (top === undefined || top.gen === this.timerGen[top.i]) break;
      this.timers.pop();
    }
    return Math.min(this.heap.peekTime(), this.timers.peekTime());
  }

  /** Runs the network until virtual time `until` (ms), processing everything due by then. */
  runUntil(until: number): void {
    let steps = 0;
    let instant = -1;
    for (;;) {
      const next = this.nextEventTime();
      if (next > until) break;
      this.now = Math.max(this.now, next);
      if (this.now !== instant) {
        instant = this.now;
        steps = 0;
      }
      if (++steps > this.maxSteps)
        throw new VmeshError(
          'VMESH_ERR_INTERNAL',
          `simulation makes no progress at t=${this.now} ms (a protocol keeps asking for ticks)`,
        );
      while (this.heap.peekTime() <= this.now) {
        const ev = (this.heap.pop() as { value: SimEvent }).value;
        if (ev.kind === 'call') ev.fn();
        else this.deliver(ev);
      }
      while (this.timers.peekTime() <= this.now) {
        const { i, gen } = (this.timers.pop() as { value: { i: number; gen: number } }).value;
        const n = this.nodes[i];
        if (n !== undefined && gen === this.timerGen[i]) this.apply(i, n.tick(this.now));
      }
      for (const o of this.observers) o.step?.(this.now);
    }
    this.now = Math.max(this.now, until);
  }

  run(ms: number): void {
    this.runUntil(this.now + ms);
  }

  private deliver(ev: Extract<SimEvent, { kind: 'msg' }>): void {
    if (ev.epoch !== ev.link.epoch || !ev.link.up) return;
    const node = this.nodes[ev.to];
    if (node === undefined) return;
    if (this.drop?.(ev.from, ev.to, ev.message) === true) return;
    (this.stats[ev.to] as DeviceStats).messagesReceived++;
    for (const o of this.observers) o.message?.(ev.from, ev.to, ev.message);
    this.apply(ev.to, node.receive(this.ids[ev.from] as DeviceId, ev.message, this.now));
  }

  /** Hop distances from `from` over live links (BFS). */
  hopsFrom(from: number, avoid?: ReadonlySet<number>): Map<number, number> {
    const dist = new Map([[from, 0]]);
    const queue = [from];
    for (let q = 0; q < queue.length; q++) {
      const u = queue[q] as number;
      for (const v of this.neighbours(u)) {
        if (dist.has(v)) continue;
        dist.set(v, (dist.get(u) as number) + 1);
        if (!avoid?.has(v)) queue.push(v);
      }
    }
    return dist;
  }

  /**
   * Follows the protocols' forwarding decisions from `from` to `to` (unicast
   * next hops, or the source's path in source mode). Result: the path, or why
   * it failed ('loop' when a device repeats, 'no-route' at a dead end).
   */
  follow(
    from: number,
    to: number,
    avoid?: ReadonlySet<DeviceId>,
  ): { path: number[] } | { failed: 'loop' | 'no-route'; path: number[] } {
    const path = [from];
    const source = this.nodes[from];
    if (source?.mode === 'source') {
      const ids = source.route(this.ids[to] as DeviceId, avoid)?.path;
      if (ids === undefined) return { failed: 'no-route', path };
      const route = ids.map((id) => this.indexOf(id));
      for (let k = 1; k < route.length; k++) {
        if (!this.linked(route[k - 1] as number, route[k] as number))
          return { failed: 'no-route', path };
        path.push(route[k] as number);
      }
      return new Set(path).size === path.length ? { path } : { failed: 'loop', path };
    }
    let at = from;
    const seen = new Set([from]);
    while (at !== to) {
      const hop = this.nodes[at]?.route(this.ids[to] as DeviceId, avoid)?.nextHop;
      const next = hop === undefined ? -1 : this.indexOf(hop);
      if (next < 0 || !this.linked(at, next)) return { failed: 'no-route', path };
      path.push(next);
      if (seen.has(next)) return { failed: 'loop', path };
      seen.add(next);
      at = next;
    }
    return { path };
  }
}
