/**
 * link-state: OLSR/OSPF-style routing on point-to-point links.
 *
 * Data structures: `neighbours` (neighbour table: cost, heard, symmetric,
 * last HELLO — RFC 3626 §4.2/§7 sensing, simplified to point-to-point links),
 * `lsdb` (newest advertisement per origin with its expiry — RFC 2328 §12–§13
 * style flooding with sequence numbers and ageing), and the SPF result cache.
 * The route choice is made in spf.ts. See README.md beside this file for the
 * RFC sections followed and left out.
 */
import type { DeviceId } from '../../wire/index.ts';
import { jittered } from '../timers.ts';
import type {
  ForwardingTable,
  ProtocolMessage,
  Route,
  RoutingAction,
  RoutingComponents,
  RoutingProtocol,
  RoutingProtocolFactory,
  RoutingSnapshot,
} from '../types.ts';
import { LinkStateMessage, decodeHello, decodeLsa, encodeHello, encodeLsa } from './messages.ts';
import type { LsaMessage } from './messages.ts';
import { shortestPaths } from './spf.ts';
import type { ShortestPath } from './spf.ts';

export interface LinkStateInit {
  /**
   * Interval between HELLOs to each neighbour, ms.
   * @default 1000
   */
  helloIntervalMs?: number;
  /**
   * A neighbour not heard (HELLO) for this long is no longer symmetric.
   * @default 4000
   */
  neighbourHoldMs?: number;
  /**
   * Own advertisement re-originated this often, ms.
   * @default 30000
   */
  lsaRefreshMs?: number;
  /**
   * Lifetime of an advertisement, ms; expired ones are removed.
   * @default 120000
   */
  lsaMaxAgeMs?: number;
  /**
   * Hop limit of flooded advertisements.
   * @default 32
   */
  hopLimit?: number;
  /**
   * Timer jitter as a fraction of the interval (drawn from the injected RNG).
   * @default 0.1
   */
  jitter?: number;
}

interface Neighbour {
  cost: number;
  heard: boolean;
  symmetric: boolean;
  lastHello: number;
}

interface LsdbEntry {
  lsa: LsaMessage;
  expiresAt: number;
  receivedAt: number;
}

export function linkState(init: LinkStateInit = {}): RoutingProtocolFactory {
  return (components) => new LinkState(components, init);
}

class LinkState implements RoutingProtocol {
  readonly name = 'link-state';
  readonly id = 1;
  readonly mode = 'unicast' as const;
  private readonly self: DeviceId;
  private readonly random: () => number;
  private readonly o: Required<LinkStateInit>;
  private readonly neighbours = new Map<DeviceId, Neighbour>();
  private readonly lsdb = new Map<DeviceId, LsdbEntry>();
  private ownSeq = 0;
  private helloSeq = 0;
  private nextHello = 0;
  private nextRefresh = 0;
  private spfCache: Map<DeviceId, ShortestPath> | undefined;
  private lastDigest = '';
  private readonly counters = {
    helloSent: 0,
    helloReceived: 0,
    lsaSent: 0,
    lsaReceived: 0,
    lsaDuplicate: 0,
    lsaStale: 0,
    malformed: 0,
    expired: 0,
    holdExpired: 0,
  };

  constructor(c: RoutingComponents, init: LinkStateInit) {
    this.self = c.self;
    this.random = c.random;
    this.o = {
      helloIntervalMs: init.helloIntervalMs ?? 1000,
      neighbourHoldMs: init.neighbourHoldMs ?? 4000,
      lsaRefreshMs: init.lsaRefreshMs ?? 30000,
      lsaMaxAgeMs: init.lsaMaxAgeMs ?? 120000,
      hopLimit: init.hopLimit ?? 32,
      jitter: init.jitter ?? 0.1,
    };
  }

  start(now: number): RoutingAction[] {
    this.nextHello = now + this.jitter(this.o.helloIntervalMs);
    return this.originate(now);
  }

  linkUp(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    this.neighbours.set(neighbour, { cost, heard: false, symmetric: false, lastHello: now });
    const actions: RoutingAction[] = [this.helloTo(neighbour)];
    // Database exchange: the new neighbour gets every advertisement we hold.
    for (const e of this.lsdb.values()) {
      this.counters.lsaSent++;
      actions.push({ type: 'send', to: neighbour, message: this.lsaMessage(e.lsa, e, now) });
    }
    return actions;
  }

  linkDown(neighbour: DeviceId, now: number): RoutingAction[] {
    const n = this.neighbours.get(neighbour);
    if (n === undefined) return [];
    this.neighbours.delete(neighbour);
    return n.symmetric ? [...this.originate(now), ...this.recompute()] : this.recompute();
  }

  linkCost(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    const n = this.neighbours.get(neighbour);
    if (n === undefined || n.cost === cost) return [];
    n.cost = cost;
    return n.symmetric ? this.originate(now) : [];
  }

  receive(from: DeviceId, message: ProtocolMessage, now: number): RoutingAction[] {
    const n = this.neighbours.get(from);
    if (n === undefined) {
      this.counters.malformed++;
      return [];
    }
    try {
      if (message.type === LinkStateMessage.HELLO)
        return this.onHello(from, n, decodeHello(message.body), now);
      if (message.type === LinkStateMessage.LSA) {
        const lsa = decodeLsa(message.body);
        // Any valid message proves the neighbour alive (the hold timer waits for HELLOs otherwise).
        if (n.heard) n.lastHello = now;
        return this.onLsa(from, lsa, now);
      }
    } catch {
      // fall through: malformed
    }
    this.counters.malformed++;
    return [];
  }

  tick(now: number): RoutingAction[] {
    const actions: RoutingAction[] = [];
    if (now >= this.nextHello) {
      this.nextHello = now + this.jitter(this.o.helloIntervalMs);
      for (const id of this.neighbours.keys()) actions.push(this.helloTo(id));
    }
    let lostSymmetric = false;
    for (const n of this.neighbours.values()) {
      if (n.symmetric && now - n.lastHello > this.o.neighbourHoldMs) {
        n.symmetric = false;
        n.heard = false;
        this.counters.holdExpired++;
        lostSymmetric = true;
      }
    }
    let expired = false;
    for (const [origin, e] of this.lsdb) {
      if (origin !== this.self && now >= e.expiresAt) {
        this.lsdb.delete(origin);
        this.counters.expired++;
        expired = true;
      }
    }
    if (lostSymmetric || now >= this.nextRefresh) actions.push(...this.originate(now));
    else if (expired) actions.push(...this.recompute());
    return actions;
  }

  nextDeadline(): number {
    let next = Math.min(this.nextHello, this.nextRefresh);
    for (const [origin, e] of this.lsdb)
      if (origin !== this.self) next = Math.min(next, e.expiresAt);
    return next;
  }

  route(destination: DeviceId, avoid?: ReadonlySet<DeviceId>): Route | undefined {
    const sp = this.paths(avoid).get(destination);
    if (sp === undefined) return undefined;
    return {
      destination,
      nextHop: sp.path[1] as DeviceId,
      cost: sp.cost,
      hops: sp.path.length - 1,
      path: sp.path,
    };
  }

  forwardingTable(avoid?: ReadonlySet<DeviceId>): Omit<ForwardingTable, 'version'> {
    const nextHops: Record<DeviceId, DeviceId> = {};
    for (const [dest, sp] of this.paths(avoid)) nextHops[dest] = sp.path[1] as DeviceId;
    return {
      protocol: this.id,
      self: this.self,
      mode: this.mode,
      avoid: [...(avoid ?? [])].sort(),
      neighbours: [...this.neighbours]
        .filter(([id, n]) => n.symmetric && !avoid?.has(id))
        .map(([id]) => id)
        .sort(),
      nextHops,
    };
  }

  snapshot(now: number): RoutingSnapshot {
    return {
      protocol: this.name,
      self: this.self,
      neighbours: [...this.neighbours].map(([device, n]) => ({
        device,
        cost: n.cost,
        state: n.symmetric ? 'symmetric' : n.heard ? 'heard' : 'link-up',
      })),
      routes: [...this.paths()].map(([destination, sp]) => ({
        destination,
        nextHop: sp.path[1] as DeviceId,
        cost: sp.cost,
        hops: sp.path.length - 1,
        path: sp.path,
        updatedAt: this.lsdb.get(destination)?.receivedAt ?? now,
      })),
      counters: { ...this.counters, lsdbSize: this.lsdb.size },
    };
  }

  private jitter(interval: number): number {
    return jittered(interval, this.o.jitter, this.random);
  }

  // ---- internals ------------------------------------------------------------------

  private onHello(
    from: DeviceId,
    n: Neighbour,
    hello: { heard: DeviceId[] },
    now: number,
  ): RoutingAction[] {
    this.counters.helloReceived++;
    const wasHeard = n.heard;
    const wasSymmetric = n.symmetric;
    n.heard = true;
    n.lastHello = now;
    n.symmetric = hello.heard.includes(this.self);
    const actions: RoutingAction[] = [];
    // Answer a first HELLO at once, so the neighbour sees itself listed within one round trip.
    if (!wasHeard) actions.push(this.helloTo(from));
    if (n.symmetric !== wasSymmetric) actions.push(...this.originate(now));
    return actions;
  }

  private onLsa(from: DeviceId, lsa: LsaMessage, now: number): RoutingAction[] {
    this.counters.lsaReceived++;
    if (lsa.origin === this.self) {
      // Our own advertisement from an earlier life: jump past its sequence number (RFC 2328 §13.4).
      if (lsa.seq > this.ownSeq) {
        this.ownSeq = lsa.seq;
        return this.originate(now);
      }
      this.counters.lsaDuplicate++;
      return [];
    }
    const known = this.lsdb.get(lsa.origin);
    if (known !== undefined && lsa.seq <= known.lsa.seq) {
      if (lsa.seq === known.lsa.seq) this.counters.lsaDuplicate++;
      else this.counters.lsaStale++;
      return [];
    }
    const lifetime = Math.min(lsa.lifetimeMs, this.o.lsaMaxAgeMs);
    const entry = { lsa, expiresAt: now + lifetime, receivedAt: now };
    this.lsdb.set(lsa.origin, entry);
    const actions: RoutingAction[] = [];
    if (lsa.hopLimit > 1) {
      this.counters.lsaSent++;
      actions.push({
        type: 'broadcast',
        except: from,
        message: this.lsaMessage({ ...lsa, hopLimit: lsa.hopLimit - 1 }, entry, now),
      });
    }
    actions.push(...this.recompute());
    return actions;
  }

  private lsaMessage(lsa: LsaMessage, entry: LsdbEntry, now: number): ProtocolMessage {
    const remaining = Math.max(0, Math.round(entry.expiresAt - now));
    return { type: LinkStateMessage.LSA, body: encodeLsa({ ...lsa, lifetimeMs: remaining }) };
  }

  private originate(now: number): RoutingAction[] {
    this.ownSeq = (this.ownSeq + 1) >>> 0;
    this.nextRefresh = now + this.jitter(this.o.lsaRefreshMs);
    const lsa: LsaMessage = {
      origin: this.self,
      seq: this.ownSeq,
      lifetimeMs: this.o.lsaMaxAgeMs,
      hopLimit: this.o.hopLimit,
      links: [...this.neighbours]
        .filter(([, n]) => n.symmetric)
        .map(([neighbour, n]) => ({ neighbour, cost: n.cost }))
        .sort((a, b) => (a.neighbour < b.neighbour ? -1 : 1)),
    };
    const entry = { lsa, expiresAt: now + this.o.lsaMaxAgeMs, receivedAt: now };
    this.lsdb.set(this.self, entry);
    this.counters.lsaSent++;
    return [{ type: 'broadcast', message: this.lsaMessage(lsa, entry, now) }, ...this.recompute()];
  }

  private helloTo(neighbour: DeviceId): RoutingAction {
    this.counters.helloSent++;
    const heard = [...this.neighbours].filter(([, n]) => n.heard).map(([id]) => id);
    return {
      type: 'send',
      to: neighbour,
      message: { type: LinkStateMessage.HELLO, body: encodeHello({ seq: ++this.helloSeq, heard }) },
    };
  }

  private paths(avoid?: ReadonlySet<DeviceId>): Map<DeviceId, ShortestPath> {
    if (avoid !== undefined && avoid.size > 0) return shortestPaths(this.graph(), this.self, avoid);
    this.spfCache ??= shortestPaths(this.graph(), this.self);
    return this.spfCache;
  }

  private graph(): Map<DeviceId, Map<DeviceId, number>> {
    const g = new Map<DeviceId, Map<DeviceId, number>>();
    for (const [origin, e] of this.lsdb)
      g.set(origin, new Map(e.lsa.links.map((l) => [l.neighbour, l.cost])));
    return g;
  }

  /** Recomputes routes; reports routesChanged when any next hop changed. */
  private recompute(): RoutingAction[] {
    this.spfCache = undefined;
    const digest = JSON.stringify(
      [...this.paths()].map(([d, sp]) => [d, sp.path[1], sp.cost]).sort(),
    );
    if (digest === this.lastDigest) return [];
    this.lastDigest = digest;
    return [{ type: 'routesChanged' }];
  }
}
