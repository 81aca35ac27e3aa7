/**
 * distance-vector: Babel (RFC 8966) on vmesh's point-to-point links.
 *
 * Data structures, named after RFC 8966 §3.2:
 * - `neighbours` — the neighbour table (§3.2.4): per link our Hello seqno, the
 *   neighbour's Hello history and expected seqno, its txcost (from IHUs) and
 *   the link metric derived from them (§3.4, Appendix A).
 * - `sources` — the source table (§3.2.5): per origin the feasibility
 *   distance (seqno, metric) we have advertised, with its GC time.
 * - `routes` — the route table (§3.2.6): per origin, per neighbour, the last
 *   update heard (seqno, advertised metric, hops) and its expiry.
 * - `selected` — the route chosen per origin (§3.6), with the metric we last
 *   advertised for it (to decide when a triggered update is due, §3.7.2).
 * - `requests` — pending seqno requests, own and forwarded (§3.2.7, §3.8).
 *
 * Claims: each route entry keeps its source's signed claim to (origin,
 * seqno), checked once when it first comes (`knownClaim`, `claimed`), and our
 * updates pass on the selected route's claim unchanged (README "Signed claims").
 *
 * The route choice is made in `select()` (the advertised route) and in
 * `route()` (per avoid-set); both only ever take FEASIBLE routes (§3.5.1).
 *
 * Why any feasible route is loop-free, avoid-sets included. Order (seqno,
 * metric) pairs by "better": a newer seqno (modulo 2^16), or the same seqno
 * and a smaller metric. A route from neighbour B, advertised as D_B, is
 * feasible at A when D_B is strictly better than FD(A), A's feasibility
 * distance. FD(B) is at least as good as anything B has ever advertised (FD
 * only improves until it is garbage-collected, and that happens only after
 * every route B advertised has expired at its neighbours: route holds are
 * clamped below half the source GC time). So if A forwards to B on a feasible
 * route, FD(B) >= D_B > FD(A): FD strictly improves at every hop. Following
 * next hops A -> B -> C -> ... therefore never revisits a device, whichever
 * feasible route each device picks — its advertised one or another one chosen
 * because of an avoid-set. Avoided relays only remove candidates; a device
 * whose only feasible routes go through avoided devices has no route.
 *
 * See README.md beside this file for the RFC sections followed and left out.
 */
import { VmeshError } from '../../errors/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { checkClaim, sameClaim, nullSigner } from '../signing.ts';
import type { Claim, RoutingSigner } from '../signing.ts';
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
import {
  DistanceVectorMessage,
  INFINITY,
  decodeHello,
  decodeIhu,
  decodeRouteRequest,
  decodeSeqnoRequest,
  decodeUpdate,
  encodeHello,
  encodeIhu,
  encodeRouteRequest,
  encodeSeqnoRequest,
  encodeUpdate,
  seqnoNewer,
  seqnoPlus,
  updateSignedData,
} from './messages.ts';
import type { HelloTlv, IhuTlv, RouteRequestTlv, SeqnoRequestTlv, UpdateTlv } from './messages.ts';

export {
  DistanceVectorMessage,
  INFINITY,
  decodeHello,
  decodeIhu,
  decodeRouteRequest,
  decodeSeqnoRequest,
  decodeUpdate,
  encodeHello,
  encodeIhu,
  encodeRouteRequest,
  encodeSeqnoRequest,
  encodeUpdate,
  seqnoNewer,
  seqnoPlus,
  updateSignedData,
} from './messages.ts';
export type { HelloTlv, IhuTlv, RouteRequestTlv, SeqnoRequestTlv, UpdateTlv } from './messages.ts';

export interface DistanceVectorInit {
  /**
   * Count a Hello that is late as missed (RFC 8966 §3.4.1, for links that go
   * silent without a link-layer signal). Off by default: vmesh links report
   * their own failure (linkDown) and never lose frames, only delay them — a
   * busy CPU would otherwise take links down. Gaps in Hello seqnos always count.
   * @default false
   */
  countLateHellos?: boolean;
  /**
   * Interval between Hellos on each link, ms (RFC 8966 default: 4 s).
   * @default 1000
   */
  helloIntervalMs?: number;
  /**
   * Interval between periodic IHUs on each link, ms (RFC: 3 x Hello interval).
   * An IHU is also sent at once whenever our rxcost for the link changes.
   * @default 3000
   */
  ihuIntervalMs?: number;
  /**
   * Interval between periodic full route dumps, ms (RFC: 4 x Hello interval).
   * Routes expire 3.5 intervals after their last update (§3.5.3).
   * @default 4000
   */
  updateIntervalMs?: number;
  /**
   * A source table entry (feasibility distance) not refreshed by an update we
   * sent for this long is removed (RFC: 3 minutes). Must be at least 7 x
   * `updateIntervalMs`: loop freedom needs every route we advertised to
   * expire at our neighbours before we forget its feasibility distance.
   * @default 180000
   */
  sourceGcMs?: number;
  /**
   * An unanswered own seqno request is resent after this long, ms; also the
   * window in which a duplicate forwarded request is suppressed.
   * @default 1000
   */
  requestResendMs?: number;
  /**
   * How many times an own seqno request is resent (after the first send).
   * @default 2
   */
  requestRetries?: number;
  /**
   * Hop count of the seqno requests we originate (1..255).
   * @default 64
   */
  seqnoRequestHopCount?: number;
  /**
   * Most route table entries (origin, neighbour); updates for new origins
   * beyond it are dropped and counted (`tableFull`).
   * @default 4096
   */
  maxRoutes?: number;
  /**
   * Most source table entries; a route that would need a new one is not
   * advertised, and counted (`sourceTableFull`).
   * @default 4096
   */
  maxSources?: number;
  /**
   * Most pending seqno requests (own and forwarded); more are dropped and counted (`requestTableFull`).
   * @default 256
   */
  maxRequests?: number;
  /**
   * At most one full dump per neighbour in answer to wildcard route requests per this many ms.
   * @default 500
   */
  dumpMinIntervalMs?: number;
  /**
   * Our own seqno is increased (on a seqno request) at most once per this many ms.
   * @default 500
   */
  seqnoBumpMinIntervalMs?: number;
  /**
   * A change of the selected route's metric by at least this fraction of the
   * metric last advertised sends a triggered update (§3.7.2); a change of
   * next hop or seqno, a new route and a lost route always do.
   * @default 0.25
   */
  triggerThreshold?: number;
  /**
   * Timer jitter as a fraction of each interval (drawn from the injected RNG).
   * @default 0.1
   */
  jitter?: number;
}

/** RFC 8966 §3.4.1: the Hello history covers the last 16 expected Hellos. */
const HISTORY = 16;
/** RFC 8966 §3.5.3: a route expires 3.5 update intervals after its last update. */
const HOLD_FACTOR = 3.5;
/** Missed-Hello timer: a Hello is late after 1.5 announced intervals. */
const HELLO_GRACE = 1.5;

interface Neighbour {
  /** Nominal cost from the driver (linkUp/linkCost), an integer >= 1. */
  cost: number;
  /** Seqno of the next Hello we send on this link. */
  helloSeqno: number;
  /** Hello history, newest last; true = received (§3.4.1). */
  history: boolean[];
  /** Seqno expected in the neighbour's next Hello; undefined before the first. */
  expected: number | undefined;
  /** The neighbour's announced Hello interval, ms. */
  helloIntervalMs: number;
  /** When the next Hello is late (a miss is recorded). */
  helloDeadline: number;
  /** Our cost of receiving from it, sent in IHUs (Appendix A.2). */
  rxcost: number;
  /** Its cost of receiving from us, from its IHU; INFINITY until one arrives. */
  txcost: number;
  /** When the last IHU's information expires (3.5 IHU intervals, §3.4.2). */
  ihuExpires: number;
  /** Link metric C(link), INFINITY when the link is not usable. */
  metric: number;
  /** Last full dump sent in answer to a wildcard request. */
  lastDump: number;
}

interface RouteEntry {
  /** The neighbour's seqno for the origin. */
  seqno: number;
  /** The neighbour's advertised metric (INFINITY: retracted). */
  metric: number;
  /** The neighbour's hop count to the origin. */
  hops: number;
  updatedAt: number;
  expiresAt: number;
  holdMs: number;
  /** A route request was sent because this (selected) route is about to expire. */
  requested: boolean;
  /**
   * The origin's claim for `seqno`, checked when it came (so copies with the
   * same bytes need no new check); undefined after a retraction.
   */
  claim: Claim | undefined;
}

interface Selected {
  neighbour: DeviceId;
  seqno: number;
  /** Metric through the neighbour: its advertised metric plus the link metric. */
  metric: number;
  hops: number;
  /** Metric we last advertised for this origin. */
  advertised: number;
  /** The origin's claim for `seqno`, passed on unchanged in our updates. */
  claim: Claim;
}

interface Source {
  seqno: number;
  metric: number;
  gcAt: number;
}

interface PendingRequest {
  seqno: number;
  /** True when we asked (starving); false when only forwarded for someone else. */
  own: boolean;
  resendAt: number;
  retriesLeft: number;
  expiresAt: number;
}

export function distanceVector(init: DistanceVectorInit = {}): RoutingProtocolFactory {
  return (components) => new DistanceVector(components, init);
}

function config(why: string): never {
  throw new VmeshError('VMESH_ERR_CONFIG', `distance-vector: ${why}`);
}

const NO_CLAIM: Claim = { keys: new Uint8Array(0), signature: new Uint8Array(0) };

function toCs(ms: number): number {
  return Math.max(1, Math.min(0xffff, Math.round(ms / 10)));
}

class DistanceVector implements RoutingProtocol {
  readonly name = 'distance-vector';
  readonly id = 3;
  readonly mode = 'unicast' as const;
  private readonly self: DeviceId;
  private readonly random: () => number;
  private readonly signer: RoutingSigner;
  /** Our claim for our current seqno (signed once per seqno). */
  private ownClaim: { seqno: number; claim: Claim } | undefined;
  private readonly o: Required<DistanceVectorInit>;
  private readonly neighbours = new Map<DeviceId, Neighbour>();
  private readonly routes = new Map<DeviceId, Map<DeviceId, RouteEntry>>();
  private routeCount = 0;
  private readonly selected = new Map<DeviceId, Selected>();
  private readonly sources = new Map<DeviceId, Source>();
  private readonly requests = new Map<DeviceId, PendingRequest>();
  private ownSeqno = 0;
  private lastBump = -Infinity;
  private nextHello = 0;
  private nextIhu = 0;
  private nextUpdate = 0;
  private deadline: number | undefined;
  /** Origins whose route()/forwardingTable() answer may have changed since the last report. */
  private readonly dirty = new Set<DeviceId>();
  private readonly digests = new Map<DeviceId, string>();
  private neighbourDigest = '';
  private readonly counters = {
    helloSent: 0,
    helloReceived: 0,
    helloLate: 0,
    helloMissed: 0,
    ihuSent: 0,
    ihuReceived: 0,
    ihuExpired: 0,
    updateSent: 0,
    updateReceived: 0,
    retractionSent: 0,
    triggeredUpdates: 0,
    unfeasible: 0,
    updateStale: 0,
    routeRequestSent: 0,
    routeRequestReceived: 0,
    seqnoRequestSent: 0,
    seqnoRequestReceived: 0,
    seqnoRequestForwarded: 0,
    seqnoRequestUnroutable: 0,
    requestDuplicate: 0,
    rateLimited: 0,
    seqnoBumped: 0,
    ownSeqnoJump: 0,
    tableFull: 0,
    sourceTableFull: 0,
    requestTableFull: 0,
    expired: 0,
    flushed: 0,
    sourceGc: 0,
    malformed: 0,
    badSignature: 0,
  };

  constructor(c: RoutingComponents, init: DistanceVectorInit) {
    this.self = c.self;
    this.random = c.random;
    this.signer = c.signer ?? nullSigner;
    this.o = {
      helloIntervalMs: init.helloIntervalMs ?? 1000,
      countLateHellos: init.countLateHellos ?? false,
      ihuIntervalMs: init.ihuIntervalMs ?? 3000,
      updateIntervalMs: init.updateIntervalMs ?? 4000,
      sourceGcMs: init.sourceGcMs ?? 180000,
      requestResendMs: init.requestResendMs ?? 1000,
      requestRetries: init.requestRetries ?? 2,
      seqnoRequestHopCount: init.seqnoRequestHopCount ?? 64,
      maxRoutes: init.maxRoutes ?? 4096,
      maxSources: init.maxSources ?? 4096,
      maxRequests: init.maxRequests ?? 256,
      dumpMinIntervalMs: init.dumpMinIntervalMs ?? 500,
      seqnoBumpMinIntervalMs: init.seqnoBumpMinIntervalMs ?? 500,
      triggerThreshold: init.triggerThreshold ?? 0.25,
      jitter: init.jitter ?? 0.1,
    };
    const o = this.o;
    for (const k of [
      'helloIntervalMs',
      'ihuIntervalMs',
      'updateIntervalMs',
      'sourceGcMs',
      'requestResendMs',
    ] as const) {
      if (!(o[k] > 0 && o[k] <= 655350)) config(`${k} must be in (0, 655350] ms`);
    }
    for (const k of ['maxRoutes', 'maxSources', 'maxRequests'] as const) {
      if (!(Number.isInteger(o[k]) && o[k] >= 1)) config(`${k} must be a positive integer`);
    }
    if (!(Number.isInteger(o.requestRetries) && o.requestRetries >= 0))
      config('requestRetries must be a non-negative integer');
    if (!(Number.isInteger(o.seqnoRequestHopCount) && o.seqnoRequestHopCount >= 1))
      config('seqnoRequestHopCount must be 1..255');
    if (o.seqnoRequestHopCount > 255) config('seqnoRequestHopCount must be 1..255');
    if (!(o.dumpMinIntervalMs >= 0 && o.seqnoBumpMinIntervalMs >= 0 && o.triggerThreshold >= 0))
      config('dumpMinIntervalMs, seqnoBumpMinIntervalMs and triggerThreshold must be >= 0');
    if (!(o.jitter >= 0 && o.jitter < 1)) config('jitter must be in [0, 1)');
    if (HOLD_FACTOR * o.updateIntervalMs > o.sourceGcMs / 2)
      config('sourceGcMs must be at least 7 x updateIntervalMs (loop freedom)');
  }

  // ---- events ----------------------------------------------------------------------

  start(now: number): RoutingAction[] {
    // babeld starts from a random seqno; a restarted device catches up on the
    // first seqno request for it (see onSeqnoRequest).
    this.ownSeqno = Math.floor(this.random() * 0x10000) & 0xffff;
    this.nextHello = now + this.jitter(this.o.helloIntervalMs);
    this.nextIhu = now + this.jitter(this.o.ihuIntervalMs);
    this.nextUpdate = now + this.jitter(this.o.updateIntervalMs);
    return this.done([]);
  }

  linkUp(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    if (neighbour === this.self) return [];
    if (this.neighbours.has(neighbour)) return this.linkCost(neighbour, cost, now);
    const n: Neighbour = {
      cost: this.nominal(cost),
      helloSeqno: 0,
      history: [],
      expected: undefined,
      helloIntervalMs: this.o.helloIntervalMs,
      helloDeadline: Infinity,
      rxcost: INFINITY,
      txcost: INFINITY,
      ihuExpires: Infinity,
      metric: INFINITY,
      lastDump: -Infinity,
    };
    this.neighbours.set(neighbour, n);
    // Neighbour acquisition (§3.4): a first Hello at once; the neighbour
    // answers with an IHU as soon as it has heard it.
    return this.done([this.helloTo(neighbour, n)]);
  }

  linkDown(neighbour: DeviceId, now: number): RoutingAction[] {
    if (!this.neighbours.delete(neighbour)) return [];
    const touched: DeviceId[] = [];
    for (const [origin, entries] of this.routes) {
      if (entries.delete(neighbour)) {
        this.routeCount--;
        touched.push(origin);
      }
    }
    return this.done(this.refresh(touched, now));
  }

  linkCost(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    const n = this.neighbours.get(neighbour);
    if (n === undefined) return [];
    n.cost = this.nominal(cost);
    return this.done(this.linkChanged(neighbour, n, now));
  }

  receive(from: DeviceId, message: ProtocolMessage, now: number): RoutingAction[] {
    const n = this.neighbours.get(from);
    if (n === undefined) {
      this.counters.malformed++;
      return [];
    }
    const m = decode(message);
    if (m === undefined) {
      this.counters.malformed++;
      return [];
    }
    switch (m.kind) {
      case 'hello':
        return this.done(this.onHello(from, n, m.tlv, now));
      case 'ihu':
        return this.done(this.onIhu(from, n, m.tlv, now));
      case 'update':
        return this.done(this.onUpdate(from, m.tlv, now));
      case 'routeRequest':
        return this.done(this.onRouteRequest(from, n, m.tlv, now));
      case 'seqnoRequest':
        return this.done(this.onSeqnoRequest(from, m.tlv, now));
    }
  }

  tick(now: number): RoutingAction[] {
    const actions: RoutingAction[] = [];
    if (now >= this.nextHello) {
      this.nextHello = now + this.jitter(this.o.helloIntervalMs);
      for (const [id, n] of this.neighbours) actions.push(this.helloTo(id, n));
    }
    if (now >= this.nextIhu) {
      this.nextIhu = now + this.jitter(this.o.ihuIntervalMs);
      for (const [id, n] of this.neighbours)
        if (n.history.length > 0) actions.push(this.ihuTo(id, n));
    }
    for (const [id, n] of this.neighbours) {
      let changed = false;
      // Missed Hellos (§3.4.1): each late Hello shifts a miss into the history (only with
      // countLateHellos: vmesh links delay but never lose frames, and report their own failure).
      for (let i = 0; this.o.countLateHellos && n.helloDeadline <= now && i <= HISTORY; i++) {
        n.history.push(false);
        if (n.history.length > HISTORY) n.history.shift();
        if (n.expected !== undefined) n.expected = seqnoPlus(n.expected, 1);
        n.helloDeadline += n.helloIntervalMs;
        this.counters.helloMissed++;
        changed = true;
      }
      if (n.helloDeadline <= now) n.helloDeadline = now + n.helloIntervalMs;
      // IHU hold (§3.4.2): without fresh IHUs the link is not known bidirectional.
      if (n.ihuExpires <= now) {
        n.ihuExpires = Infinity;
        n.txcost = INFINITY;
        this.counters.ihuExpired++;
        changed = true;
      }
      if (changed) actions.push(...this.linkChanged(id, n, now));
    }
    const touched = new Set<DeviceId>();
    for (const [origin, entries] of this.routes) {
      const sel = this.selected.get(origin);
      for (const [nb, e] of entries) {
        if (e.expiresAt <= now) {
          touched.add(origin);
          if (e.metric < INFINITY) {
            // Expiry (§3.5.3): a finite route is first retracted, then flushed.
            e.metric = INFINITY;
            e.expiresAt = now + e.holdMs;
            this.counters.expired++;
          } else {
            entries.delete(nb);
            this.routeCount--;
            this.counters.flushed++;
          }
        } else if (sel?.neighbour === nb && !e.requested && now >= this.requestAt(e)) {
          // The selected route is about to expire: ask its next hop (§3.8.2.3).
          e.requested = true;
          actions.push(this.routeRequestTo(nb, origin));
        }
      }
    }
    for (const [origin, s] of this.sources) {
      if (s.gcAt <= now) {
        this.sources.delete(origin);
        this.counters.sourceGc++;
        touched.add(origin);
      }
    }
    for (const [origin, r] of this.requests) {
      if (r.expiresAt <= now) {
        this.requests.delete(origin);
        touched.add(origin);
      } else if (r.own && r.retriesLeft > 0 && r.resendAt <= now) {
        r.resendAt = now + this.o.requestResendMs;
        if (this.selected.has(origin)) continue;
        r.retriesLeft--;
        actions.push(...this.seqnoRequestMessages(origin, r.seqno));
      }
    }
    actions.push(...this.refresh(touched, now));
    if (now >= this.nextUpdate) {
      // Periodic full dump (§3.7.1), split horizon towards each route's next hop (§3.7.4).
      this.nextUpdate = now + this.jitter(this.o.updateIntervalMs);
      actions.push(this.ownUpdate());
      for (const [origin, sel] of this.selected) actions.push(...this.advertise(origin, sel, now));
    }
    return this.done(actions);
  }

  nextDeadline(): number {
    if (this.deadline !== undefined) return this.deadline;
    let next = Math.min(this.nextHello, this.nextIhu, this.nextUpdate);
    for (const n of this.neighbours.values()) next = Math.min(next, n.helloDeadline, n.ihuExpires);
    for (const [origin, entries] of this.routes) {
      const sel = this.selected.get(origin);
      for (const [nb, e] of entries) {
        next = Math.min(next, e.expiresAt);
        if (sel?.neighbour === nb && !e.requested) next = Math.min(next, this.requestAt(e));
      }
    }
    for (const s of this.sources.values()) next = Math.min(next, s.gcAt);
    for (const r of this.requests.values()) {
      next = Math.min(next, r.expiresAt);
      if (r.own && r.retriesLeft > 0) next = Math.min(next, r.resendAt);
    }
    this.deadline = next;
    return next;
  }

  // ---- queries ---------------------------------------------------------------------

  route(destination: DeviceId, avoid?: ReadonlySet<DeviceId>): Route | undefined {
    if (destination === this.self) return undefined;
    const entries = this.routes.get(destination);
    if (entries === undefined) return undefined;
    const allowed = (nb: DeviceId): boolean =>
      nb === destination || avoid === undefined || !avoid.has(nb);
    // The advertised route when the avoid-set allows it, so tables agree with updates.
    const sel = this.selected.get(destination);
    if (sel !== undefined && allowed(sel.neighbour)) {
      const e = entries.get(sel.neighbour);
      if (e !== undefined && this.usable(destination, sel.neighbour, e)) {
        return this.toRoute(destination, sel.neighbour, e);
      }
    }
    let best: [DeviceId, RouteEntry, number] | undefined;
    for (const [nb, e] of entries) {
      if (!allowed(nb) || !this.usable(destination, nb, e)) continue;
      const m = this.total(nb, e);
      if (best === undefined || m < best[2] || (m === best[2] && nb < best[0])) best = [nb, e, m];
    }
    return best === undefined ? undefined : this.toRoute(destination, best[0], best[1]);
  }

  forwardingTable(avoid?: ReadonlySet<DeviceId>): Omit<ForwardingTable, 'version'> {
    const nextHops: Record<DeviceId, DeviceId> = {};
    for (const origin of this.routes.keys()) {
      const r = this.route(origin, avoid);
      if (r !== undefined) nextHops[origin] = r.nextHop;
    }
    return {
      protocol: this.id,
      self: this.self,
      mode: this.mode,
      avoid: [...(avoid ?? [])].sort(),
      neighbours: this.usableNeighbours().filter((id) => avoid === undefined || !avoid.has(id)),
      nextHops,
    };
  }

  snapshot(_now: number): RoutingSnapshot {
    const routes = [];
    for (const [destination, sel] of this.selected) {
      const e = this.routes.get(destination)?.get(sel.neighbour);
      routes.push({
        destination,
        nextHop: sel.neighbour,
        cost: sel.metric,
        hops: sel.hops,
        updatedAt: e?.updatedAt ?? 0,
      });
    }
    return {
      protocol: this.name,
      self: this.self,
      neighbours: [...this.neighbours].map(([device, n]) => ({
        device,
        cost: n.metric,
        state: n.metric < INFINITY ? 'bidirectional' : n.history.length > 0 ? 'heard' : 'link-up',
      })),
      routes,
      counters: {
        ...this.counters,
        routes: this.routeCount,
        sources: this.sources.size,
        requests: this.requests.size,
        seqno: this.ownSeqno,
      },
    };
  }

  // ---- neighbour acquisition (§3.4, Appendix A) -------------------------------------

  private onHello(from: DeviceId, n: Neighbour, h: HelloTlv, now: number): RoutingAction[] {
    this.counters.helloReceived++;
    n.helloIntervalMs = h.intervalCs * 10;
    const ne = n.expected;
    if (ne === undefined || h.seqno === ne) {
      n.history.push(true);
    } else {
      const ahead = (h.seqno - ne) & 0xffff;
      const behind = (ne - h.seqno) & 0xffff;
      if (ahead <= HISTORY) {
        // Hellos we never saw (§3.4.1): record them as missed.
        for (let i = 0; i < ahead; i++) n.history.push(false);
        n.history.push(true);
      } else if (behind <= HISTORY) {
        // A late or replayed Hello: undo the misses recorded since, as if it had come in time.
        this.counters.helloLate++;
        n.history.splice(Math.max(0, n.history.length - behind), behind);
        n.history.push(true);
      } else {
        // The neighbour restarted its seqnos: the history means nothing any more.
        n.history = [true];
      }
    }
    while (n.history.length > HISTORY) n.history.shift();
    n.expected = seqnoPlus(h.seqno, 1);
    n.helloDeadline = now + HELLO_GRACE * n.helloIntervalMs;
    return this.linkChanged(from, n, now);
  }

  private onIhu(from: DeviceId, n: Neighbour, ihu: IhuTlv, now: number): RoutingAction[] {
    this.counters.ihuReceived++;
    n.txcost = ihu.rxcost;
    n.ihuExpires = now + HOLD_FACTOR * ihu.intervalCs * 10;
    return this.linkChanged(from, n, now);
  }

  /**
   * Recomputes rxcost (sending an IHU when it changed) and the link metric;
   * when the metric changed, every route through the link is re-selected, and
   * a link that just became usable is asked for its whole table.
   */
  private linkChanged(id: DeviceId, n: Neighbour, now: number): RoutingAction[] {
    const actions: RoutingAction[] = [];
    const rx = rxcostOf(n.history);
    if (rx !== n.rxcost) {
      n.rxcost = rx;
      actions.push(this.ihuTo(id, n));
    }
    const metric = linkMetric(n);
    if (metric === n.metric) return actions;
    const wasUsable = n.metric < INFINITY;
    n.metric = metric;
    if (!wasUsable && metric < INFINITY) {
      this.counters.routeRequestSent++;
      actions.push({
        type: 'send',
        to: id,
        message: { type: DistanceVectorMessage.ROUTE_REQUEST, body: encodeRouteRequest({}) },
      });
    }
    const touched: DeviceId[] = [];
    for (const [origin, entries] of this.routes) if (entries.has(id)) touched.push(origin);
    actions.push(...this.refresh(touched, now));
    return actions;
  }

  // ---- route acquisition (§3.5.3) ---------------------------------------------------

  private onUpdate(from: DeviceId, u: UpdateTlv, now: number): RoutingAction[] {
    this.counters.updateReceived++;
    if (u.origin === this.self) {
      // Our own route from an earlier life with a newer seqno: jump past it — only for a seqno
      // we signed (a forged one could push ours anywhere).
      if (seqnoNewer(u.seqno, this.ownSeqno)) {
        if (now - this.lastBump < this.o.seqnoBumpMinIntervalMs) {
          this.counters.rateLimited++;
          return [];
        }
        if (!this.claimed(u)) return [];
        this.lastBump = now;
        this.ownSeqno = seqnoPlus(u.seqno, 1);
        this.counters.ownSeqnoJump++;
        return [this.ownUpdate()];
      }
      return [];
    }
    let entries = this.routes.get(u.origin);
    const e = entries?.get(from);
    if (e !== undefined && seqnoNewer(e.seqno, u.seqno)) {
      // Older than what this neighbour already told us: stale or replayed.
      this.counters.updateStale++;
      return [];
    }
    // A route carries the origin's claim to its seqno, so that no relay can advertise a seqno the
    // origin never issued. Checked after the staleness check, and only for claims we do not hold
    // already (periodic updates repeat them); a retraction claims nothing.
    if (u.metric < INFINITY && !this.knownClaim(u) && !this.claimed(u)) return [];
    const feasible = this.feasible(u.origin, u.seqno, u.metric);
    const sel = this.selected.get(u.origin);
    const actions: RoutingAction[] = [];
    if (!feasible) {
      this.counters.unfeasible++;
      // §3.8.2.1/§3.8.2.2: ask the sender for a newer seqno (which would make the
      // route feasible) when we are starving, when the update is for the selected
      // route, or when it would be better than the selected route.
      const link = this.neighbours.get(from)?.metric ?? INFINITY;
      if (
        sel === undefined ||
        sel.neighbour === from ||
        Math.min(INFINITY, u.metric + link) < sel.metric
      ) {
        actions.push(...this.requestSeqno(u.origin, now, from));
      }
      // No entry to update: ignored (§3.5.3). An unfeasible update for the
      // selected route may be ignored too (§3.5.3): the route as last accepted
      // stays loop-free until it expires. Otherwise it is recorded; an
      // unfeasible entry is never used.
      if (e === undefined || sel?.neighbour === from) return actions;
    }
    const holdMs = Math.min(HOLD_FACTOR * u.intervalCs * 10, this.o.sourceGcMs / 2);
    if (e === undefined) {
      if (u.metric >= INFINITY) return actions;
      if (this.routeCount >= this.o.maxRoutes) {
        this.counters.tableFull++;
        return [];
      }
      if (entries === undefined) {
        entries = new Map();
        this.routes.set(u.origin, entries);
      }
      entries.set(from, {
        seqno: u.seqno,
        metric: u.metric,
        hops: u.hops,
        updatedAt: now,
        expiresAt: now + holdMs,
        holdMs,
        requested: false,
        claim: u.claim,
      });
      this.routeCount++;
    } else {
      e.seqno = u.seqno;
      e.metric = u.metric;
      e.hops = u.hops;
      e.updatedAt = now;
      e.expiresAt = now + holdMs;
      e.holdMs = holdMs;
      e.requested = false;
      e.claim = u.metric < INFINITY ? u.claim : undefined;
    }
    actions.push(...this.refresh([u.origin], now));
    return actions;
  }

  /** Whether an entry holds `u`'s claim already (same origin, seqno and bytes: checked before). */
  private knownClaim(u: UpdateTlv): boolean {
    for (const e of this.routes.get(u.origin)?.values() ?? [])
      if (e.claim !== undefined && e.seqno === u.seqno && sameClaim(e.claim, u.claim)) return true;
    return false;
  }

  /** Whether `u`'s claim is its origin's signature over (origin, seqno); counted when not. */
  private claimed(u: UpdateTlv): boolean {
    if (checkClaim(this.signer, u.origin, updateSignedData(u.origin, u.seqno), u.claim))
      return true;
    this.counters.badSignature++;
    return false;
  }

  /** Our claim for our current seqno. */
  private ownSeqnoClaim(): Claim {
    if (this.ownClaim?.seqno !== this.ownSeqno) {
      const data = updateSignedData(this.self, this.ownSeqno);
      this.ownClaim = {
        seqno: this.ownSeqno,
        claim: { keys: this.signer.keys, signature: this.signer.sign(data) },
      };
    }
    return this.ownClaim.claim;
  }

  // ---- requests (§3.8) --------------------------------------------------------------

  private onRouteRequest(
    from: DeviceId,
    n: Neighbour,
    rr: RouteRequestTlv,
    now: number,
  ): RoutingAction[] {
    this.counters.routeRequestReceived++;
    if (rr.origin === undefined) {
      // Wildcard (§3.8.1.1): a full dump to the requester, rate-limited per neighbour.
      if (now - n.lastDump < this.o.dumpMinIntervalMs) {
        this.counters.rateLimited++;
        return [];
      }
      n.lastDump = now;
      const actions: RoutingAction[] = [this.ownUpdate(from)];
      for (const [origin, sel] of this.selected) {
        if (sel.neighbour !== from) actions.push(...this.advertise(origin, sel, now, from));
      }
      return actions;
    }
    if (rr.origin === this.self) return [this.ownUpdate(from)];
    const sel = this.selected.get(rr.origin);
    if (sel !== undefined) return this.advertise(rr.origin, sel, now, from);
    // No route: answer with a retraction (§3.8.1.1).
    return [this.retraction(rr.origin, this.sources.get(rr.origin)?.seqno ?? 0, from)];
  }

  private onSeqnoRequest(from: DeviceId, sr: SeqnoRequestTlv, now: number): RoutingAction[] {
    this.counters.seqnoRequestReceived++;
    if (sr.origin === this.self) {
      if (!seqnoNewer(sr.seqno, this.ownSeqno)) return [this.ownUpdate(from)];
      if (now - this.lastBump < this.o.seqnoBumpMinIntervalMs) {
        this.counters.rateLimited++;
        return [];
      }
      // §3.8.1.2 increases by 1; we go straight to the seqno asked for (normally
      // the same thing) so a restarted device, which cannot keep its seqno in a
      // sans-I/O core, is usable again after one request rather than after 3 minutes.
      this.ownSeqno = sr.seqno;
      this.lastBump = now;
      this.counters.seqnoBumped++;
      return [this.ownUpdate()];
    }
    const sel = this.selected.get(sr.origin);
    if (sel !== undefined && !seqnoNewer(sr.seqno, sel.seqno)) {
      return this.advertise(sr.origin, sel, now, from);
    }
    if (sr.hopCount < 2) return [];
    // Forward (§3.8.1.2) to a neighbour with a finite route (feasible or not)
    // other than the requester: the selected one if possible, else the cheapest.
    let target: DeviceId | undefined;
    if (sel !== undefined && sel.neighbour !== from) target = sel.neighbour;
    else {
      let bestMetric = INFINITY;
      for (const [nb, e] of this.routes.get(sr.origin) ?? []) {
        const m = this.total(nb, e);
        if (nb !== from && m < bestMetric) [target, bestMetric] = [nb, m];
      }
    }
    if (target === undefined) {
      this.counters.seqnoRequestUnroutable++;
      return [];
    }
    const r = this.requests.get(sr.origin);
    if (r !== undefined && now < r.expiresAt && !seqnoNewer(sr.seqno, r.seqno)) {
      this.counters.requestDuplicate++;
      return [];
    }
    if (r === undefined && this.requests.size >= this.o.maxRequests) {
      this.counters.requestTableFull++;
      return [];
    }
    if (r === undefined) {
      this.requests.set(sr.origin, {
        seqno: sr.seqno,
        own: false,
        resendAt: Infinity,
        retriesLeft: 0,
        expiresAt: now + this.o.requestResendMs,
      });
    } else {
      r.seqno = sr.seqno;
      r.expiresAt = Math.max(r.expiresAt, now + this.o.requestResendMs);
    }
    this.dirty.add(sr.origin);
    this.counters.seqnoRequestForwarded++;
    return [
      {
        type: 'send',
        to: target,
        message: {
          type: DistanceVectorMessage.SEQNO_REQUEST,
          body: encodeSeqnoRequest({ ...sr, hopCount: sr.hopCount - 1 }),
        },
      },
    ];
  }

  /**
   * Starvation (§3.8.2.1): we have advertised `origin` (a source entry
   * exists) but hold no feasible route to it. Ask for the next seqno, at
   * most once per pending request; resent by tick().
   */
  private requestSeqno(origin: DeviceId, now: number, to?: DeviceId): RoutingAction[] {
    const src = this.sources.get(origin);
    if (src === undefined) return [];
    const want = seqnoPlus(src.seqno, 1);
    const r = this.requests.get(origin);
    if (r !== undefined && now < r.expiresAt && !seqnoNewer(want, r.seqno)) return [];
    if (r === undefined && this.requests.size >= this.o.maxRequests) {
      this.counters.requestTableFull++;
      return [];
    }
    const resend = this.o.requestResendMs;
    this.requests.set(origin, {
      seqno: want,
      own: true,
      resendAt: now + resend,
      retriesLeft: this.o.requestRetries,
      expiresAt: now + resend * (this.o.requestRetries + 1),
    });
    this.dirty.add(origin);
    return this.seqnoRequestMessages(origin, want, to);
  }

  /** To `to`, else to every neighbour with a finite route to `origin`, else to all. */
  private seqnoRequestMessages(origin: DeviceId, seqno: number, to?: DeviceId): RoutingAction[] {
    const message = {
      type: DistanceVectorMessage.SEQNO_REQUEST,
      body: encodeSeqnoRequest({ seqno, hopCount: this.o.seqnoRequestHopCount, origin }),
    };
    const targets: DeviceId[] =
      to !== undefined
        ? [to]
        : [...(this.routes.get(origin) ?? [])]
            .filter(([nb, e]) => this.total(nb, e) < INFINITY)
            .map(([nb]) => nb);
    if (targets.length === 0) {
      this.counters.seqnoRequestSent += this.neighbours.size;
      return [{ type: 'broadcast', message }];
    }
    this.counters.seqnoRequestSent += targets.length;
    return targets.map((t) => ({ type: 'send', to: t, message }));
  }

  // ---- route selection (§3.6) and triggered updates (§3.7.2) -------------------------

  /**
   * Re-selects the route of each origin; sends triggered updates, retractions
   * and starvation seqno requests as needed.
   */
  private refresh(origins: Iterable<DeviceId>, now: number): RoutingAction[] {
    const actions: RoutingAction[] = [];
    for (const origin of origins) {
      if (origin === this.self) continue;
      this.dirty.add(origin);
      const entries = this.routes.get(origin);
      if (entries !== undefined && entries.size === 0) this.routes.delete(origin);
      const old = this.selected.get(origin);
      const best = this.select(origin, old?.neighbour);
      if (best === undefined) {
        if (old !== undefined) {
          this.selected.delete(origin);
          actions.push(this.retraction(origin, old.seqno));
        }
        const starving = [...(entries ?? [])].some(([nb, e]) => this.total(nb, e) < INFINITY);
        if (old !== undefined || starving) actions.push(...this.requestSeqno(origin, now));
        continue;
      }
      const r = this.requests.get(origin);
      if (r !== undefined && !seqnoNewer(r.seqno, best.seqno)) this.requests.delete(origin);
      const trigger =
        old === undefined ||
        old.neighbour !== best.neighbour ||
        old.seqno !== best.seqno ||
        Math.abs(best.metric - old.advertised) >=
          Math.max(1, old.advertised * this.o.triggerThreshold);
      const sel: Selected = { ...best, advertised: old?.advertised ?? best.metric };
      this.selected.set(origin, sel);
      if (trigger) {
        this.counters.triggeredUpdates++;
        actions.push(...this.advertise(origin, sel, now));
      }
    }
    return actions;
  }

  /**
   * The best feasible route with a finite metric: a pending seqno request's
   * answer first (so it propagates), then the smaller metric, then the current
   * choice, then the smaller neighbour id.
   */
  private select(
    origin: DeviceId,
    current: DeviceId | undefined,
  ): Omit<Selected, 'advertised'> | undefined {
    const entries = this.routes.get(origin);
    if (entries === undefined) return undefined;
    const want = this.requests.get(origin)?.seqno;
    type Candidate = { nb: DeviceId; e: RouteEntry; m: number; fresh: boolean };
    const better = (a: Candidate, b: Candidate): boolean => {
      if (a.fresh !== b.fresh) return a.fresh;
      if (a.m !== b.m) return a.m < b.m;
      if ((a.nb === current) !== (b.nb === current)) return a.nb === current;
      return a.nb < b.nb;
    };
    let best: Candidate | undefined;
    for (const [nb, e] of entries) {
      if (!this.usable(origin, nb, e)) continue;
      const c = {
        nb,
        e,
        m: this.total(nb, e),
        fresh: want === undefined || !seqnoNewer(want, e.seqno),
      };
      if (best === undefined || better(c, best)) best = c;
    }
    if (best === undefined) return undefined;
    return {
      neighbour: best.nb,
      seqno: best.e.seqno,
      metric: best.m,
      hops: Math.min(255, best.e.hops + 1),
      claim: best.e.claim ?? NO_CLAIM,
    };
  }

  /** Feasibility condition (§3.5.1) against the source table. */
  private feasible(origin: DeviceId, seqno: number, metric: number): boolean {
    if (metric >= INFINITY) return true;
    const s = this.sources.get(origin);
    if (s === undefined) return true;
    return seqnoNewer(seqno, s.seqno) || (seqno === s.seqno && metric < s.metric);
  }

  /** A route entry we may forward on: finite metric over a usable link, and feasible. */
  private usable(origin: DeviceId, nb: DeviceId, e: RouteEntry): boolean {
    return this.total(nb, e) < INFINITY && this.feasible(origin, e.seqno, e.metric);
  }

  /** M(c, m) = c + m, saturating at INFINITY (§3.5.2). */
  private total(nb: DeviceId, e: RouteEntry): number {
    const link = this.neighbours.get(nb)?.metric ?? INFINITY;
    if (e.metric >= INFINITY || link >= INFINITY) return INFINITY;
    return Math.min(INFINITY, e.metric + link);
  }

  // ---- sending updates (§3.7) -------------------------------------------------------

  /**
   * Sends `origin`'s selected route (to `to`, or to every neighbour but its
   * next hop), first updating the feasibility distance (§3.7.3). A route
   * whose source entry cannot be created is not advertised.
   */
  private advertise(origin: DeviceId, sel: Selected, now: number, to?: DeviceId): RoutingAction[] {
    const s = this.sources.get(origin);
    if (s === undefined) {
      if (this.sources.size >= this.o.maxSources) {
        this.counters.sourceTableFull++;
        return [];
      }
      this.sources.set(origin, {
        seqno: sel.seqno,
        metric: sel.metric,
        gcAt: now + this.o.sourceGcMs,
      });
    } else {
      if (seqnoNewer(sel.seqno, s.seqno)) [s.seqno, s.metric] = [sel.seqno, sel.metric];
      else if (sel.seqno === s.seqno && sel.metric < s.metric) s.metric = sel.metric;
      s.gcAt = now + this.o.sourceGcMs;
    }
    this.dirty.add(origin);
    sel.advertised = sel.metric;
    this.counters.updateSent++;
    const message = {
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({
        intervalCs: toCs(this.o.updateIntervalMs),
        seqno: sel.seqno,
        metric: sel.metric,
        hops: sel.hops,
        origin,
        claim: sel.claim,
      }),
    };
    return [
      to !== undefined
        ? { type: 'send', to, message }
        : { type: 'broadcast', message, except: sel.neighbour },
    ];
  }

  private ownUpdate(to?: DeviceId): RoutingAction {
    this.counters.updateSent++;
    const message = {
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({
        intervalCs: toCs(this.o.updateIntervalMs),
        seqno: this.ownSeqno,
        metric: 0,
        hops: 0,
        origin: this.self,
        claim: this.ownSeqnoClaim(),
      }),
    };
    return to !== undefined ? { type: 'send', to, message } : { type: 'broadcast', message };
  }

  private retraction(origin: DeviceId, seqno: number, to?: DeviceId): RoutingAction {
    this.counters.retractionSent++;
    const message = {
      type: DistanceVectorMessage.UPDATE,
      body: encodeUpdate({
        intervalCs: toCs(this.o.updateIntervalMs),
        seqno,
        metric: INFINITY,
        hops: 0,
        origin,
        claim: NO_CLAIM,
      }),
    };
    return to !== undefined ? { type: 'send', to, message } : { type: 'broadcast', message };
  }

  private helloTo(id: DeviceId, n: Neighbour): RoutingAction {
    this.counters.helloSent++;
    const seqno = n.helloSeqno;
    n.helloSeqno = seqnoPlus(seqno, 1);
    return {
      type: 'send',
      to: id,
      message: {
        type: DistanceVectorMessage.HELLO,
        body: encodeHello({ seqno, intervalCs: toCs(this.o.helloIntervalMs) }),
      },
    };
  }

  private ihuTo(id: DeviceId, n: Neighbour): RoutingAction {
    this.counters.ihuSent++;
    return {
      type: 'send',
      to: id,
      message: {
        type: DistanceVectorMessage.IHU,
        body: encodeIhu({ rxcost: n.rxcost, intervalCs: toCs(this.o.ihuIntervalMs) }),
      },
    };
  }

  private routeRequestTo(id: DeviceId, origin: DeviceId): RoutingAction {
    this.counters.routeRequestSent++;
    return {
      type: 'send',
      to: id,
      message: { type: DistanceVectorMessage.ROUTE_REQUEST, body: encodeRouteRequest({ origin }) },
    };
  }

  // ---- helpers ----------------------------------------------------------------------

  private requestAt(e: RouteEntry): number {
    return e.expiresAt - e.holdMs / HOLD_FACTOR;
  }

  private toRoute(destination: DeviceId, nb: DeviceId, e: RouteEntry): Route {
    return {
      destination,
      nextHop: nb,
      cost: this.total(nb, e),
      hops: Math.min(255, e.hops + 1),
    };
  }

  private usableNeighbours(): DeviceId[] {
    return [...this.neighbours]
      .filter(([, n]) => n.metric < INFINITY)
      .map(([id]) => id)
      .sort();
  }

  private nominal(cost: number): number {
    return Number.isFinite(cost) ? Math.max(1, Math.min(INFINITY - 1, Math.round(cost))) : 1;
  }

  private jitter(interval: number): number {
    return jittered(interval, this.o.jitter, this.random);
  }

  /**
   * Ends every event: invalidates the cached deadline and appends a
   * routesChanged naming the origins whose route()/forwardingTable() answer
   * changed (none named when the usable neighbour set changed).
   */
  private done(actions: RoutingAction[]): RoutingAction[] {
    this.deadline = undefined;
    const destinations: DeviceId[] = [];
    for (const origin of this.dirty) {
      const entries = this.routes.get(origin);
      const parts: string[] = [];
      for (const [nb, e] of entries ?? []) {
        if (this.usable(origin, nb, e)) parts.push(`${nb}/${this.total(nb, e)}/${e.hops}`);
      }
      const sel = this.selected.get(origin)?.neighbour ?? '';
      const digest = parts.length === 0 ? '' : `${sel}|${parts.sort().join(',')}`;
      if (digest !== (this.digests.get(origin) ?? '')) {
        destinations.push(origin);
        if (digest === '') this.digests.delete(origin);
        else this.digests.set(origin, digest);
      }
    }
    this.dirty.clear();
    const neighbours = this.usableNeighbours().join(',');
    const neighboursChanged = neighbours !== this.neighbourDigest;
    this.neighbourDigest = neighbours;
    if (neighboursChanged) actions.push({ type: 'routesChanged' });
    else if (destinations.length > 0)
      actions.push({ type: 'routesChanged', destinations: destinations.sort() });
    return actions;
  }
}

type Decoded =
  | { kind: 'hello'; tlv: HelloTlv }
  | { kind: 'ihu'; tlv: IhuTlv }
  | { kind: 'update'; tlv: UpdateTlv }
  | { kind: 'routeRequest'; tlv: RouteRequestTlv }
  | { kind: 'seqnoRequest'; tlv: SeqnoRequestTlv };

function decode(m: ProtocolMessage): Decoded | undefined {
  try {
    switch (m.type) {
      case DistanceVectorMessage.HELLO:
        return { kind: 'hello', tlv: decodeHello(m.body) };
      case DistanceVectorMessage.IHU:
        return { kind: 'ihu', tlv: decodeIhu(m.body) };
      case DistanceVectorMessage.UPDATE:
        return { kind: 'update', tlv: decodeUpdate(m.body) };
      case DistanceVectorMessage.ROUTE_REQUEST:
        return { kind: 'routeRequest', tlv: decodeRouteRequest(m.body) };
      case DistanceVectorMessage.SEQNO_REQUEST:
        return { kind: 'seqnoRequest', tlv: decodeSeqnoRequest(m.body) };
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/**
 * rxcost from the Hello history (Appendix A): the link is down while 2 of the
 * last 3 expected Hellos were missed (A.2.1, "2-out-of-3"); otherwise
 * 256 / beta, beta the fraction of Hellos received (A.2.2, ETX).
 */
function rxcostOf(history: readonly boolean[]): number {
  if (history.length === 0) return INFINITY;
  const misses = history.slice(-3).filter((h) => !h).length;
  if (misses >= 2) return INFINITY;
  const received = history.filter((h) => h).length;
  if (received === 0) return INFINITY;
  return Math.min(INFINITY - 1, Math.round((256 * history.length) / received));
}

/**
 * Link metric: the driver's nominal cost times the ETX loss factor
 * 1 / (alpha * beta) = max(txcost, 256)/256 * rxcost/256 (Appendix A.2.2),
 * at least 1; INFINITY when either direction is down.
 */
function linkMetric(n: Neighbour): number {
  if (n.rxcost >= INFINITY || n.txcost >= INFINITY) return INFINITY;
  const factor = (Math.max(256, n.txcost) * n.rxcost) / 65536;
  return Math.max(1, Math.min(INFINITY - 1, Math.round(n.cost * factor)));
}
