/**
 * aodv: Ad hoc On-Demand Distance Vector routing (RFC 3561) on vmesh's
 * point-to-point links, with vmesh's avoid-sets.
 *
 * Data structures: `routes` (the route table of §6.2, one entry per
 * (destination, avoid-key): destination sequence number, state, hop count,
 * next hop, precursors, lifetime and the recorded path), `discoveries` (route
 * discoveries this device originated, §6.3/§6.4, and local repairs, §6.12),
 * `seen` (RREQ (originator, RREQ ID) pairs for PATH_DISCOVERY_TIME, §6.5),
 * the RREQ/RERR rate windows and `pendingRerr` (RERRs held back by
 * RERR_RATELIMIT). Neighbours (linkUp/linkDown replace Hello messages, §6.9)
 * are direct routes for every avoid-set. `routeInUse` refreshes a route and
 * sends a KEEPALIVE along it, which does at each relay what data packets do
 * in §6.2 (vmesh data is forwarded by VMs the protocol does not see).
 *
 * Route choice: a RREQ floods (expanding ring) until the destination (or, with
 * the D flag off, an intermediate device with a fresh enough route for the
 * same avoid-set) answers; the RREP sets up forward routes hop by hop (`onRrep`). Which of two
 * routes wins is decided by `fresher()` (§6.1/§6.2: newer sequence number,
 * then fewer hops). Sequence numbers come with the signed claim of the device
 * they belong to (RREQ: originator, RREP: destination), checked before they
 * enter the table (`claimed`) and kept with each entry (`Entry.claim`) for the
 * replies made from it. See README.md beside this file for the sections
 * followed and left out, and for what is signed and why RERRs are not.
 */
import { VmeshError } from '../../errors/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { checkClaim, sameClaim, nullSigner } from '../signing.ts';
import type { Claim, RoutingSigner } from '../signing.ts';
import type {
  ForwardingTable,
  Route,
  RouteEntry,
  RoutingAction,
  RoutingComponents,
  RoutingProtocol,
  RoutingProtocolFactory,
  RoutingSnapshot,
  ProtocolMessage,
} from '../types.ts';
import {
  AodvMessage,
  decodeKeepalive,
  decodeRerr,
  decodeRrep,
  decodeRreq,
  encodeKeepalive,
  encodeRerr,
  encodeRrep,
  encodeRreq,
  seqClaimData,
} from './messages.ts';
import type { Keepalive, Rerr, Rrep, Rreq } from './messages.ts';

export {
  AodvExtension,
  AodvMessage,
  decodeKeepalive,
  decodeRerr,
  decodeRrep,
  decodeRreq,
  encodeKeepalive,
  encodeRerr,
  encodeRrep,
  encodeRreq,
  seqClaimData,
} from './messages.ts';
export type { Keepalive, Rerr, Rrep, Rreq } from './messages.ts';

/** Options; names follow RFC 3561 §10, defaults scaled for data-centre and loopback links. */
export interface AodvInit {
  /**
   * ACTIVE_ROUTE_TIMEOUT: a route not used (`routeInUse`) for this long expires, ms
   * (RFC: 3000, for radio links that vanish silently; vmesh links report breaks at once,
   * so lifetimes only reclaim idle state).
   * @default 30000
   */
  activeRouteTimeoutMs?: number;
  /**
   * A route in use sends a KEEPALIVE along its path at most this often, ms, refreshing
   * every relay's lifetime as data packets do in RFC 3561 §6.2.
   * @default activeRouteTimeoutMs / 3
   */
  keepaliveIntervalMs?: number;
  /**
   * MY_ROUTE_TIMEOUT: lifetime a destination puts in its own RREPs, ms.
   * @default 2 * activeRouteTimeoutMs
   */
  myRouteTimeoutMs?: number;
  /**
   * DELETE_PERIOD: an invalid route (kept for its sequence number) is deleted after this long, ms.
   * @default 5 * activeRouteTimeoutMs
   */
  deletePeriodMs?: number;
  /**
   * NODE_TRAVERSAL_TIME: conservative one-hop traversal time, ms (RFC: 40 for radio links).
   * @default 10
   */
  nodeTraversalTimeMs?: number;
  /**
   * NET_DIAMETER: the largest hop count of a route (1..254).
   * @default 35
   */
  netDiameter?: number;
  /**
   * TTL_START: TTL of the first RREQ of an expanding ring search.
   * @default 1
   */
  ttlStart?: number;
  /**
   * TTL_INCREMENT: TTL added on each ring retry.
   * @default 2
   */
  ttlIncrement?: number;
  /**
   * TTL_THRESHOLD: beyond this TTL the search uses NET_DIAMETER.
   * @default 7
   */
  ttlThreshold?: number;
  /**
   * TIMEOUT_BUFFER in RING_TRAVERSAL_TIME = 2 * NODE_TRAVERSAL_TIME * (TTL + TIMEOUT_BUFFER).
   * @default 2
   */
  timeoutBuffer?: number;
  /**
   * RREQ_RETRIES: retries at TTL = NET_DIAMETER (with binary exponential backoff) before giving up.
   * @default 2
   */
  rreqRetries?: number;
  /**
   * RREQ_RATELIMIT: RREQs this device originates per second at most (discoveries beyond wait).
   * @default 10
   */
  rreqRateLimit?: number;
  /**
   * RREQs of one originator this device forwards per second at most (vmesh bound on relayed
   * floods, room for twice RREQ_RATELIMIT; excess dropped). Tracked for up to `maxSeen / 4` originators.
   * @default 20
   */
  rreqForwardRateLimit?: number;
  /**
   * RREQs of all originators together this device forwards per second at most.
   * @default 1000
   */
  rreqForwardTotalRateLimit?: number;
  /**
   * RERR_RATELIMIT: RERR messages per second at most (excess wait and merge).
   * @default 10
   */
  rerrRateLimit?: number;
  /**
   * Local repair (§6.12): a relay whose next hop breaks rediscovers nearby destinations itself.
   * @default true
   */
  localRepair?: boolean;
  /**
   * MAX_REPAIR_TTL: only destinations at most this many hops away are repaired locally.
   * @default floor(0.3 * netDiameter)
   */
  maxRepairTtl?: number;
  /**
   * LOCAL_ADD_TTL: added to the last known hop count for the repair RREQ's TTL.
   * @default 2
   */
  localAddTtl?: number;
  /**
   * Set the G flag in RREQs: an intermediate device that answers also tells the destination (§6.6.3).
   * @default true
   */
  gratuitousRrep?: boolean;
  /**
   * Set the D flag in RREQs: only the destination answers, so routes are shortest-hop
   * and as fresh as can be; false lets intermediate devices with a fresh route answer (§6.6.2).
   * @default true
   */
  destinationOnly?: boolean;
  /**
   * Record the path in RREQs and RREPs (ROUTE_RECORD extension) so `route()` can return it.
   * @default true
   */
  recordRoute?: boolean;
  /**
   * Route table size (entries over all avoid-sets); beyond it the soonest-expiring entry goes.
   * @default 2048
   */
  maxRoutes?: number;
  /**
   * Discoveries (and local repairs) under way or waiting for the rate limit; more are dropped.
   * @default 64
   */
  maxDiscoveries?: number;
  /**
   * Size of the RREQ duplicate cache ((originator, RREQ ID) pairs).
   * @default 4096
   */
  maxSeen?: number;
  /**
   * Largest avoid-set accepted in a discovery or message.
   * @default 32
   */
  maxAvoid?: number;
}

type Options = Required<AodvInit>;

/** RFC 3561 §6.1: sequence numbers compare as signed 32-bit differences (rollover). */
export function seqCompare(a: number, b: number): number {
  return ((a >>> 0) - (b >>> 0)) | 0;
}

type EntryState = 'valid' | 'invalid' | 'repairing';

/** A route table entry, RFC 3561 §2/§6.2, for one (destination, avoid-key). */
interface Entry {
  destination: DeviceId;
  key: string;
  avoid: DeviceId[];
  /** Destination sequence number (always known here: routes come from RREQ/RREP). */
  seq: number;
  state: EntryState;
  hops: number;
  nextHop: DeviceId;
  /** Neighbours that route through this device for this entry (they hear our RERRs). */
  precursors: Set<DeviceId>;
  /** Valid: end of lifetime. Invalid: deletion time. Repairing: safety timeout. */
  expiresAt: number;
  updatedAt: number;
  /** This device .. destination, when recorded. */
  path: DeviceId[] | undefined;
  /** When a KEEPALIVE last went out along this route. */
  keptAt: number;
  /**
   * The destination's claim to its sequence number `claim.seq`, checked when it came; passed on
   * in replies from this entry. `seq` moves away from it only when the entry stops being valid.
   */
  claim: { seq: number; claim: Claim };
}

interface Discovery {
  destination: DeviceId;
  key: string;
  avoid: DeviceId[];
  ttl: number;
  /** Attempts made at TTL = NET_DIAMETER after the first one. */
  retries: number;
  /** True: a RREQ is out and `deadline` is its timeout. False: waiting for the rate limit. */
  waiting: boolean;
  deadline: number;
  /** Local repair (§6.12) of a route that had `oldHops` hops. */
  repair: { oldHops: number } | undefined;
}

interface RerrBatch {
  avoid: DeviceId[];
  noDelete: boolean;
  unreachable: Map<DeviceId, number>;
  to: Set<DeviceId>;
}

/** A sliding one-second window of events (RREQ_RATELIMIT, RERR_RATELIMIT). */
class RateWindow {
  private readonly times: number[] = [];

  constructor(
    private readonly limit: number,
    private readonly windowMs = 1000,
  ) {}

  private purge(now: number): void {
    while (this.times.length > 0 && (this.times[0] as number) <= now - this.windowMs)
      this.times.shift();
  }

  /** Takes a slot if one is free. */
  allow(now: number): boolean {
    this.purge(now);
    if (this.times.length >= this.limit) return false;
    this.times.push(now);
    return true;
  }

  /** When the next slot frees (after `allow` said no: always later than `now`). */
  nextFree(now: number): number {
    this.purge(now);
    return this.times.length < this.limit ? now : (this.times[0] as number) + this.windowMs;
  }
}

const NO_CLAIM: Claim = { keys: new Uint8Array(0), signature: new Uint8Array(0) };

function normalise(avoid: Iterable<DeviceId> | undefined): { key: string; list: DeviceId[] } {
  const list = [...new Set(avoid ?? [])].sort();
  return { key: list.join(','), list };
}

function unique(ids: DeviceId[]): boolean {
  return new Set(ids).size === ids.length;
}

function sortedStrictly(ids: DeviceId[]): boolean {
  for (let i = 1; i < ids.length; i++)
    if ((ids[i - 1] as string) >= (ids[i] as string)) return false;
  return true;
}

/** The claim a reply from entry `e` carries: the destination's, for `e.seq`. */
function claimOf(e: Entry): Claim {
  return e.claim.seq === e.seq ? e.claim.claim : NO_CLAIM;
}

export function aodv(init: AodvInit = {}): RoutingProtocolFactory {
  const o = options(init);
  return (components) => new Aodv(components, o);
}

function options(init: AodvInit): Options {
  const activeRouteTimeoutMs = init.activeRouteTimeoutMs ?? 30000;
  const netDiameter = init.netDiameter ?? 35;
  const o: Options = {
    activeRouteTimeoutMs,
    keepaliveIntervalMs: init.keepaliveIntervalMs ?? Math.round(activeRouteTimeoutMs / 3),
    myRouteTimeoutMs: init.myRouteTimeoutMs ?? 2 * activeRouteTimeoutMs,
    deletePeriodMs: init.deletePeriodMs ?? 5 * activeRouteTimeoutMs,
    nodeTraversalTimeMs: init.nodeTraversalTimeMs ?? 10,
    netDiameter,
    ttlStart: init.ttlStart ?? 1,
    ttlIncrement: init.ttlIncrement ?? 2,
    ttlThreshold: init.ttlThreshold ?? 7,
    timeoutBuffer: init.timeoutBuffer ?? 2,
    rreqRetries: init.rreqRetries ?? 2,
    rreqRateLimit: init.rreqRateLimit ?? 10,
    rreqForwardRateLimit: init.rreqForwardRateLimit ?? 20,
    rreqForwardTotalRateLimit: init.rreqForwardTotalRateLimit ?? 1000,
    rerrRateLimit: init.rerrRateLimit ?? 10,
    localRepair: init.localRepair ?? true,
    maxRepairTtl: init.maxRepairTtl ?? Math.floor(0.3 * netDiameter),
    localAddTtl: init.localAddTtl ?? 2,
    gratuitousRrep: init.gratuitousRrep ?? true,
    destinationOnly: init.destinationOnly ?? true,
    recordRoute: init.recordRoute ?? true,
    maxRoutes: init.maxRoutes ?? 2048,
    maxDiscoveries: init.maxDiscoveries ?? 64,
    maxSeen: init.maxSeen ?? 4096,
    maxAvoid: init.maxAvoid ?? 32,
  };
  const bad = (field: string, why: string): never => {
    throw new VmeshError('VMESH_ERR_CONFIG', `aodv: ${field} ${why}`);
  };
  if (!Number.isInteger(o.netDiameter) || o.netDiameter < 1 || o.netDiameter > 254)
    bad('netDiameter', 'must be an integer 1..254');
  for (const f of ['ttlStart', 'ttlIncrement', 'ttlThreshold'] as const) {
    if (!Number.isInteger(o[f]) || o[f] < 1 || o[f] > o.netDiameter)
      bad(f, 'must be an integer 1..netDiameter');
  }
  for (const f of [
    'activeRouteTimeoutMs',
    'keepaliveIntervalMs',
    'myRouteTimeoutMs',
    'deletePeriodMs',
    'nodeTraversalTimeMs',
  ] as const) {
    if (!(o[f] > 0) || !Number.isFinite(o[f])) bad(f, 'must be a positive number');
  }
  for (const f of [
    'rreqRateLimit',
    'rreqForwardRateLimit',
    'rreqForwardTotalRateLimit',
    'rerrRateLimit',
    'maxRoutes',
    'maxDiscoveries',
    'maxSeen',
  ] as const) {
    if (!Number.isInteger(o[f]) || o[f] < 1) bad(f, 'must be a positive integer');
  }
  for (const f of ['timeoutBuffer', 'rreqRetries', 'maxRepairTtl', 'localAddTtl'] as const) {
    if (!Number.isInteger(o[f]) || o[f] < 0) bad(f, 'must be a non-negative integer');
  }
  if (!Number.isInteger(o.maxAvoid) || o.maxAvoid < 0 || o.maxAvoid > 255)
    bad('maxAvoid', 'must be an integer 0..255');
  return o;
}

class Aodv implements RoutingProtocol {
  readonly name = 'aodv';
  readonly id = 4;
  readonly mode = 'unicast' as const;
  readonly reactive = true;
  private readonly self: DeviceId;
  private readonly o: Options;
  private readonly signer: RoutingSigner;
  /** Our claim to our current sequence number (signed once per number). */
  private ownClaim: { seq: number; claim: Claim } | undefined;
  /** NET_TRAVERSAL_TIME = 2 * NODE_TRAVERSAL_TIME * NET_DIAMETER. */
  private readonly netTraversalMs: number;
  /** PATH_DISCOVERY_TIME = 2 * NET_TRAVERSAL_TIME. */
  private readonly pathDiscoveryMs: number;
  private readonly neighbours = new Map<DeviceId, number>();
  /** avoid-key -> destination -> entry. */
  private readonly routes = new Map<string, Map<DeviceId, Entry>>();
  private routeCount = 0;
  /** `${destination}|${avoid-key}` -> discovery. */
  private readonly discoveries = new Map<string, Discovery>();
  /** `${originator}:${rreqId}` -> expiry and fewest hops seen, in insertion (= time) order. */
  private readonly seen = new Map<string, { expiresAt: number; hops: number }>();
  private readonly rreqWindow: RateWindow;
  private readonly forwardWindow: RateWindow;
  /** Per-originator forwarding windows, least recently used first. */
  private readonly originatorWindows = new Map<DeviceId, RateWindow>();
  private readonly rerrWindow: RateWindow;
  private readonly pendingRerr = new Map<string, RerrBatch>();
  private rerrDeadline = Infinity;
  /** Own sequence number (§6.1) and RREQ ID (§6.3). */
  private seq = 0;
  private rreqId = 0;
  /** Actions and changed destinations of the event being handled. */
  private out: RoutingAction[] = [];
  private readonly dirty = new Set<DeviceId>();
  private readonly counters = {
    rreqSent: 0,
    rreqReceived: 0,
    rreqForwarded: 0,
    rreqDuplicate: 0,
    rreqShorterCopy: 0,
    rreqTtlExpired: 0,
    rreqRateLimited: 0,
    rreqForwardRateLimited: 0,
    rrepSent: 0,
    rrepIntermediate: 0,
    rrepGratuitous: 0,
    rrepReceived: 0,
    rrepForwarded: 0,
    rrepStale: 0,
    rrepNoReverseRoute: 0,
    rerrSent: 0,
    rerrReceived: 0,
    rerrRateLimited: 0,
    rerrStale: 0,
    keepaliveSent: 0,
    keepaliveReceived: 0,
    keepaliveForwarded: 0,
    avoided: 0,
    avoidTooLarge: 0,
    discoveryStarted: 0,
    discoverySucceeded: 0,
    discoveryFailed: 0,
    discoveryDropped: 0,
    repairStarted: 0,
    repairSucceeded: 0,
    repairFailed: 0,
    routeExpired: 0,
    routeEvicted: 0,
    malformed: 0,
    badSignature: 0,
  };

  constructor(c: RoutingComponents, o: Options) {
    this.self = c.self;
    this.o = o;
    this.signer = c.signer ?? nullSigner;
    this.netTraversalMs = 2 * o.nodeTraversalTimeMs * o.netDiameter;
    this.pathDiscoveryMs = 2 * this.netTraversalMs;
    this.rreqWindow = new RateWindow(o.rreqRateLimit);
    this.forwardWindow = new RateWindow(o.rreqForwardTotalRateLimit);
    this.rerrWindow = new RateWindow(o.rerrRateLimit);
  }

  // ---- events -------------------------------------------------------------------------

  start(_now: number): RoutingAction[] {
    return [];
  }

  linkUp(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    this.begin();
    const known = this.neighbours.has(neighbour);
    this.neighbours.set(neighbour, cost);
    if (!known) {
      // §6.9: a new neighbour is a route; discoveries and repairs for it are over.
      this.dirty.add(neighbour);
      for (const [id, d] of this.discoveries) {
        if (d.destination !== neighbour) continue;
        this.discoveries.delete(id);
        if (d.repair === undefined) this.counters.discoverySucceeded++;
        else {
          this.counters.repairSucceeded++;
          const e = this.get(neighbour, d.key);
          if (e?.state === 'repairing') this.invalidate(e, now, e.seq);
        }
      }
    }
    return this.flush();
  }

  linkDown(neighbour: DeviceId, now: number): RoutingAction[] {
    this.begin();
    if (!this.neighbours.delete(neighbour)) return this.flush();
    this.dirty.add(neighbour);
    const rerr = new Map<string, RerrBatch>();
    for (const table of this.routes.values()) {
      for (const e of table.values()) {
        e.precursors.delete(neighbour);
        if (e.nextHop !== neighbour || e.state !== 'valid') continue;
        // §6.11 case (i): the next hop of an active route is gone.
        if (this.tryLocalRepair(e, now)) continue;
        this.invalidate(e, now, (e.seq + 1) >>> 0);
        this.addToRerr(rerr, e, e.seq, false);
      }
    }
    for (const b of rerr.values()) this.sendRerr(b, now);
    return this.flush();
  }

  linkCost(neighbour: DeviceId, cost: number, _now: number): RoutingAction[] {
    // AODV's metric is the hop count; the cost is kept for the snapshot only.
    if (this.neighbours.has(neighbour)) this.neighbours.set(neighbour, cost);
    return [];
  }

  receive(from: DeviceId, message: ProtocolMessage, now: number): RoutingAction[] {
    this.begin();
    if (!this.neighbours.has(from)) {
      this.counters.malformed++;
      return this.flush();
    }
    let ok = false;
    try {
      if (message.type === AodvMessage.RREQ) ok = this.onRreq(from, decodeRreq(message.body), now);
      else if (message.type === AodvMessage.RREP)
        ok = this.onRrep(from, decodeRrep(message.body), now);
      else if (message.type === AodvMessage.RERR)
        ok = this.onRerr(from, decodeRerr(message.body), now);
      else if (message.type === AodvMessage.KEEPALIVE)
        ok = this.onKeepalive(from, decodeKeepalive(message.body), now);
    } catch {
      ok = false;
    }
    if (!ok) this.counters.malformed++;
    return this.flush();
  }

  tick(now: number): RoutingAction[] {
    this.begin();
    for (const [id, d] of [...this.discoveries]) {
      if (d.deadline <= now && this.discoveries.get(id) === d) this.advance(id, d, now);
    }
    const rerr = new Map<string, RerrBatch>();
    for (const [key, table] of this.routes) {
      for (const [dest, e] of table) {
        if (e.expiresAt > now) continue;
        if (e.state === 'valid') {
          // Expiry without use: invalid, kept DELETE_PERIOD for its sequence number (§6.11).
          this.counters.routeExpired++;
          this.invalidate(e, now, e.seq);
        } else if (e.state === 'repairing') {
          this.invalidate(e, now, e.seq);
          this.addToRerr(rerr, e, e.seq, false);
        } else {
          table.delete(dest);
          this.routeCount--;
        }
      }
      if (table.size === 0) this.routes.delete(key);
    }
    for (const b of rerr.values()) this.sendRerr(b, now);
    if (now >= this.rerrDeadline) this.flushPendingRerr(now);
    while (this.seen.size > 0) {
      const [k, v] = this.seen.entries().next().value as [string, { expiresAt: number }];
      if (v.expiresAt > now) break;
      this.seen.delete(k);
    }
    return this.flush();
  }

  nextDeadline(): number {
    let next = this.rerrDeadline;
    for (const d of this.discoveries.values()) next = Math.min(next, d.deadline);
    for (const table of this.routes.values())
      for (const e of table.values()) next = Math.min(next, e.expiresAt);
    return next;
  }

  discover(destination: DeviceId, avoid: ReadonlySet<DeviceId>, now: number): RoutingAction[] {
    this.begin();
    if (this.route(destination, avoid) !== undefined) this.dirty.add(destination);
    else this.startDiscovery(destination, avoid, now);
    return this.flush();
  }

  routeInUse(destination: DeviceId, avoid: ReadonlySet<DeviceId>, now: number): RoutingAction[] {
    this.begin();
    if (destination === this.self || this.neighbours.has(destination)) return this.flush();
    const { key } = normalise(avoid);
    const e = this.get(destination, key);
    if (e !== undefined && this.active(e, now)) {
      // §6.2: using a route refreshes it and the route to its next hop; the relays
      // hear it by KEEPALIVE.
      this.refresh(e, now);
      const hop = this.get(e.nextHop, key);
      if (hop !== undefined && this.active(hop, now)) this.refresh(hop, now);
      if (now - e.keptAt >= this.o.keepaliveIntervalMs) this.sendKeepalive(e, 0, now);
    } else {
      this.startDiscovery(destination, avoid, now);
    }
    return this.flush();
  }

  // ---- answers ------------------------------------------------------------------------

  route(destination: DeviceId, avoid?: ReadonlySet<DeviceId>): Route | undefined {
    if (destination === this.self) return undefined;
    if (this.neighbours.has(destination)) {
      return {
        destination,
        nextHop: destination,
        cost: 1,
        hops: 1,
        path: [this.self, destination],
      };
    }
    const e = this.get(destination, normalise(avoid).key);
    if (e === undefined || !this.usable(e, avoid)) return undefined;
    const r: Route = { destination, nextHop: e.nextHop, cost: e.hops, hops: e.hops };
    if (e.path !== undefined) r.path = [...e.path];
    return r;
  }

  forwardingTable(avoid?: ReadonlySet<DeviceId>): Omit<ForwardingTable, 'version'> {
    const { key, list } = normalise(avoid);
    const nextHops: Record<DeviceId, DeviceId> = {};
    for (const n of this.neighbours.keys()) nextHops[n] = n;
    for (const e of this.routes.get(key)?.values() ?? []) {
      if (nextHops[e.destination] === undefined && this.usable(e, avoid))
        nextHops[e.destination] = e.nextHop;
    }
    return {
      protocol: this.id,
      self: this.self,
      mode: this.mode,
      avoid: list,
      neighbours: [...this.neighbours.keys()].filter((n) => avoid?.has(n) !== true).sort(),
      nextHops,
    };
  }

  snapshot(now: number): RoutingSnapshot {
    const routes: (RouteEntry & { avoid: DeviceId[]; seq?: number; lifetimeMs?: number })[] = [];
    for (const n of this.neighbours.keys()) {
      routes.push({
        destination: n,
        nextHop: n,
        cost: 1,
        hops: 1,
        path: [this.self, n],
        updatedAt: now,
        avoid: [],
      });
    }
    for (const table of this.routes.values()) {
      for (const e of table.values()) {
        if (e.state !== 'valid') continue;
        const r: RouteEntry & { avoid: DeviceId[]; seq: number; lifetimeMs: number } = {
          destination: e.destination,
          nextHop: e.nextHop,
          cost: e.hops,
          hops: e.hops,
          updatedAt: e.updatedAt,
          avoid: [...e.avoid],
          seq: e.seq,
          lifetimeMs: Math.max(0, e.expiresAt - now),
        };
        if (e.path !== undefined) r.path = [...e.path];
        routes.push(r);
      }
    }
    return {
      protocol: this.name,
      self: this.self,
      neighbours: [...this.neighbours].map(([device, cost]) => ({ device, cost, state: 'up' })),
      routes,
      counters: {
        ...this.counters,
        seqno: this.seq,
        routeTableSize: this.routeCount,
        discoveries: this.discoveries.size,
        seen: this.seen.size,
        pendingRerr: this.pendingRerr.size,
      },
    };
  }

  // ---- discovery (§6.3, §6.4) -----------------------------------------------------------

  private startDiscovery(destination: DeviceId, avoid: ReadonlySet<DeviceId>, now: number): void {
    if (destination === this.self) return;
    const { key, list } = normalise(avoid);
    const id = `${destination}|${key}`;
    if (this.discoveries.has(id)) return;
    if (list.length > this.o.maxAvoid) {
      this.counters.avoidTooLarge++;
      return;
    }
    if (this.discoveries.size >= this.o.maxDiscoveries) {
      this.counters.discoveryDropped++;
      return;
    }
    // §6.4: with a known (invalid) hop count, the ring starts at that plus TTL_INCREMENT.
    const old = this.get(destination, key);
    const ttl = old === undefined ? this.o.ttlStart : old.hops + this.o.ttlIncrement;
    const d: Discovery = {
      destination,
      key,
      avoid: list,
      ttl: ttl > this.o.ttlThreshold ? this.o.netDiameter : ttl,
      retries: 0,
      waiting: false,
      deadline: now,
      repair: undefined,
    };
    this.discoveries.set(id, d);
    this.counters.discoveryStarted++;
    this.sendRreq(d, now);
  }

  /** A discovery's deadline passed: the rate limit freed, or its RREQ timed out. */
  private advance(id: string, d: Discovery, now: number): void {
    if (!d.waiting) {
      this.sendRreq(d, now);
      return;
    }
    if (d.repair !== undefined) {
      // §6.12: the repair failed; the route is invalid and upstream hears a RERR.
      this.discoveries.delete(id);
      this.counters.repairFailed++;
      const e = this.get(d.destination, d.key);
      if (e?.state === 'repairing') {
        this.invalidate(e, now, e.seq);
        const rerr = new Map<string, RerrBatch>();
        this.addToRerr(rerr, e, e.seq, false);
        for (const b of rerr.values()) this.sendRerr(b, now);
      }
      return;
    }
    if (d.ttl < this.o.netDiameter) {
      d.ttl += this.o.ttlIncrement;
      if (d.ttl > this.o.ttlThreshold) d.ttl = this.o.netDiameter;
    } else if (++d.retries > this.o.rreqRetries) {
      this.discoveries.delete(id);
      this.counters.discoveryFailed++;
      return;
    }
    this.sendRreq(d, now);
  }

  private sendRreq(d: Discovery, now: number): void {
    if (!this.rreqWindow.allow(now)) {
      // RREQ_RATELIMIT: wait for the window, keeping the discovery.
      this.counters.rreqRateLimited++;
      d.waiting = false;
      d.deadline = this.rreqWindow.nextFree(now);
      return;
    }
    // §6.1: increment the own sequence number before originating a discovery; §6.3: new RREQ ID.
    this.seq = (this.seq + 1) >>> 0;
    this.rreqId = (this.rreqId + 1) >>> 0;
    this.remember(this.self, this.rreqId, -1, now);
    const known = this.get(d.destination, d.key);
    const rreq: Rreq = {
      gratuitous: this.o.gratuitousRrep,
      destinationOnly: this.o.destinationOnly,
      unknownSeq: known === undefined,
      ttl: d.ttl,
      hopCount: 0,
      rreqId: this.rreqId,
      destination: d.destination,
      destSeq: known?.seq ?? 0,
      originator: this.self,
      origSeq: this.seq,
      avoid: d.avoid,
      claim: this.ownSeqClaim(),
    };
    if (this.o.recordRoute) rreq.record = [this.self];
    this.counters.rreqSent++;
    const avoid = new Set(d.avoid);
    const message = { type: AodvMessage.RREQ, body: encodeRreq(rreq) };
    for (const n of this.neighbours.keys()) {
      if (!avoid.has(n) || n === d.destination) this.out.push({ type: 'send', to: n, message });
    }
    d.waiting = true;
    // §6.4 expanding ring: RING_TRAVERSAL_TIME; at NET_DIAMETER, §6.3 binary exponential backoff.
    d.deadline =
      now +
      (d.ttl < this.o.netDiameter || d.repair !== undefined
        ? 2 * this.o.nodeTraversalTimeMs * (d.ttl + this.o.timeoutBuffer)
        : this.netTraversalMs * 2 ** d.retries);
  }

  /** §6.12: a relay repairs a broken route to a near destination instead of reporting it. */
  private tryLocalRepair(e: Entry, now: number): boolean {
    if (!this.o.localRepair || e.precursors.size === 0 || e.hops > this.o.maxRepairTtl)
      return false;
    const id = `${e.destination}|${e.key}`;
    if (this.discoveries.has(id) || this.discoveries.size >= this.o.maxDiscoveries) return false;
    e.state = 'repairing';
    e.seq = (e.seq + 1) >>> 0;
    e.expiresAt = now + this.o.deletePeriodMs;
    this.dirty.add(e.destination);
    const d: Discovery = {
      destination: e.destination,
      key: e.key,
      avoid: e.avoid,
      ttl: Math.min(this.o.netDiameter, e.hops + this.o.localAddTtl),
      retries: 0,
      waiting: false,
      deadline: now,
      repair: { oldHops: e.hops },
    };
    this.discoveries.set(id, d);
    this.counters.repairStarted++;
    this.sendRreq(d, now);
    return true;
  }

  // ---- RREQ (§6.5, §6.6) ----------------------------------------------------------------

  /** Returns false when the message is malformed. */
  private onRreq(from: DeviceId, m: Rreq, now: number): boolean {
    this.counters.rreqReceived++;
    if (m.destination === m.originator || !sortedStrictly(m.avoid)) return false;
    if (m.originator === this.self) {
      // Our own RREQ coming back.
      this.counters.rreqDuplicate++;
      return true;
    }
    if (m.record !== undefined) {
      const r = m.record;
      if (
        r.length !== m.hopCount + 1 ||
        r[0] !== m.originator ||
        r[r.length - 1] !== from ||
        !unique(r) ||
        r.includes(this.self)
      )
        return false;
    }
    if (m.ttl === 0 || m.hopCount + 1 > this.o.netDiameter) {
      this.counters.rreqTtlExpired++;
      return true;
    }
    if (this.refusedByAvoid(from, m)) return true;
    // §6.5 duplicate suppression; vmesh also takes a later copy that came over fewer hops
    // (queueing can delay the shortest path), so that discovered routes are shortest-hop.
    const seenHops = this.seenHops(m.originator, m.rreqId, now);
    if (seenHops !== undefined && seenHops <= m.hopCount) {
      this.counters.rreqDuplicate++;
      return true;
    }
    // The RREQ sets up a route to its originator: only with the originator's claim to its
    // sequence number (checked after the duplicate check, and before the duplicate cache takes
    // the RREQ ID, so a forged copy cannot shut out the real one).
    const key = m.avoid.join(',');
    const old = this.get(m.originator, key);
    if (!this.claimed(m.originator, m.origSeq, m.claim, old)) return true;
    if (seenHops !== undefined) this.counters.rreqShorterCopy++;
    this.remember(m.originator, m.rreqId, m.hopCount, now);

    // §6.5: the reverse route to the originator, keyed by the same avoid-set.
    const hops = m.hopCount + 1;
    if (this.fresher(old, m.origSeq, hops)) {
      // vmesh: ACTIVE_ROUTE_TIMEOUT rather than §6.5's minimal lifetime
      // (2 * NET_TRAVERSAL_TIME - 2 * hops * NODE_TRAVERSAL_TIME): a connection's replies
      // come back along the reverse route.
      this.install(m.originator, key, m.avoid, {
        seq: m.origSeq,
        hops,
        nextHop: from,
        expiresAt: Math.max(
          old?.state === 'valid' ? old.expiresAt : 0,
          now + this.o.activeRouteTimeoutMs,
        ),
        path: m.record === undefined ? undefined : [this.self, ...[...m.record].reverse()],
        now,
        claim: m.claim,
      });
    }
    const reverse = this.get(m.originator, key);
    if (reverse === undefined || !this.active(reverse, now)) {
      this.counters.rrepNoReverseRoute++;
      return true;
    }

    if (m.destination === this.self) {
      // §6.6.1 / §6.1: the destination takes the larger of its own and the asked-for seqno.
      if (!m.unknownSeq && seqCompare(m.destSeq, this.seq) > 0) this.seq = m.destSeq;
      this.counters.rrepSent++;
      this.sendRrep(reverse.nextHop, {
        hopCount: 0,
        destination: this.self,
        destSeq: this.seq,
        originator: m.originator,
        lifetimeMs: this.o.myRouteTimeoutMs,
        avoid: m.avoid,
        record: this.joinPaths(reverse.path, [this.self]),
        claim: this.ownSeqClaim(),
      });
      return true;
    }

    const fwd = this.get(m.destination, key);
    if (!m.destinationOnly && fwd !== undefined && this.canAnswer(fwd, m, from, now)) {
      // §6.6.2: an intermediate device with a fresh enough route (same avoid-set) answers.
      fwd.precursors.add(from);
      reverse.precursors.add(fwd.nextHop);
      this.counters.rrepSent++;
      this.counters.rrepIntermediate++;
      this.sendRrep(reverse.nextHop, {
        hopCount: fwd.hops,
        destination: m.destination,
        destSeq: fwd.seq,
        originator: m.originator,
        lifetimeMs: Math.max(0, fwd.expiresAt - now),
        avoid: m.avoid,
        record: this.joinPaths(reverse.path, fwd.path),
        claim: claimOf(fwd),
      });
      if (m.gratuitous) {
        // §6.6.3: tell the destination the route back to the originator.
        this.counters.rrepGratuitous++;
        this.sendRrep(fwd.nextHop, {
          hopCount: reverse.hops,
          destination: m.originator,
          destSeq: reverse.seq,
          originator: m.destination,
          lifetimeMs: Math.max(0, reverse.expiresAt - now),
          avoid: m.avoid,
          record: this.joinPaths(fwd.path, reverse.path),
          claim: claimOf(reverse),
        });
      }
      return true;
    }

    // §6.5: forward with TTL - 1, the larger known destination seqno, and ourselves recorded.
    if (m.ttl <= 1) {
      this.counters.rreqTtlExpired++;
      return true;
    }
    if (!this.mayForward(m.originator, now)) {
      this.counters.rreqForwardRateLimited++;
      return true;
    }
    const newer = fwd !== undefined && (m.unknownSeq || seqCompare(fwd.seq, m.destSeq) > 0);
    const next: Rreq = {
      ...m,
      ttl: m.ttl - 1,
      hopCount: hops,
      unknownSeq: newer ? false : m.unknownSeq,
      destSeq: newer ? fwd.seq : m.destSeq,
    };
    if (m.record !== undefined) next.record = [...m.record, this.self];
    const message = { type: AodvMessage.RREQ, body: encodeRreq(next) };
    const skip = new Set(m.record ?? [m.originator]);
    const avoid = new Set(m.avoid);
    for (const n of this.neighbours.keys()) {
      if (n === from || skip.has(n) || (avoid.has(n) && n !== m.destination)) continue;
      this.out.push({ type: 'send', to: n, message });
    }
    this.counters.rreqForwarded++;
    return true;
  }

  /** §6.6.2 conditions, plus vmesh's loop check on the recorded paths. */
  private canAnswer(fwd: Entry, m: Rreq, from: DeviceId, now: number): boolean {
    if (!this.active(fwd, now) || fwd.nextHop === from) return false;
    if (!m.unknownSeq && seqCompare(fwd.seq, m.destSeq) < 0) return false;
    if (fwd.path !== undefined) {
      const before = new Set(m.record ?? [m.originator]);
      if (fwd.path.slice(1).some((d) => before.has(d))) return false;
    }
    return true;
  }

  // ---- RREP (§6.7) ------------------------------------------------------------------------

  private onRrep(from: DeviceId, m: Rrep, now: number): boolean {
    this.counters.rrepReceived++;
    if (
      m.destination === m.originator ||
      m.destination === this.self ||
      !sortedStrictly(m.avoid) ||
      m.hopCount + 1 > this.o.netDiameter
    )
      return false;
    let at = -1;
    if (m.record !== undefined) {
      const r = m.record;
      at = r.indexOf(this.self);
      if (
        at < 0 ||
        r[0] !== m.originator ||
        r[r.length - 1] !== m.destination ||
        r[at + 1] !== from ||
        r.length - 2 - at !== m.hopCount ||
        !unique(r)
      )
        return false;
    }
    if (m.avoid.length > this.o.maxAvoid) {
      this.counters.avoidTooLarge++;
      return true;
    }
    const avoid = new Set(m.avoid);
    if (
      (avoid.has(from) && from !== m.destination) ||
      (avoid.has(this.self) && this.self !== m.originator)
    ) {
      this.counters.avoided++;
      return true;
    }
    const key = m.avoid.join(',');
    const hops = m.hopCount + 1;
    const known = this.get(m.destination, key);
    let fwd: Entry;
    if (this.fresher(known, m.destSeq, hops)) {
      // §6.7: the forward route is created or updated — only with the destination's claim to
      // the sequence number (checked last: verification costs ~100 µs).
      if (!this.claimed(m.destination, m.destSeq, m.claim, known)) return true;
      fwd = this.install(m.destination, key, m.avoid, {
        seq: m.destSeq,
        hops,
        nextHop: from,
        expiresAt: now + m.lifetimeMs,
        path: m.record?.slice(at),
        now,
        claim: m.claim,
      });
    } else {
      // Our route is at least as fresh and short. §6.7 would drop the RREP here; vmesh sends
      // our own route on instead (as an intermediate reply would), so that a RREP that only
      // the destination may give (D flag) still reaches the originator.
      this.counters.rrepStale++;
      if (known === undefined || !this.active(known, now)) return true;
      fwd = known;
      if (m.originator === this.self) this.completeDiscovery(fwd, now);
    }
    if (m.originator === this.self) return true;

    const reverse = this.get(m.originator, key);
    if (
      reverse === undefined ||
      !this.active(reverse, now) ||
      reverse.nextHop === fwd.nextHop ||
      (fwd.path !== undefined &&
        reverse.path !== undefined &&
        this.joinPaths(reverse.path, fwd.path) === undefined)
    ) {
      this.counters.rrepNoReverseRoute++;
      return true;
    }
    fwd.precursors.add(reverse.nextHop);
    reverse.precursors.add(fwd.nextHop);
    reverse.expiresAt = Math.max(reverse.expiresAt, now + this.o.activeRouteTimeoutMs);
    let record: DeviceId[] | undefined;
    if (m.record !== undefined && fwd.path !== undefined) {
      // The RREP may go back by another way than the RREQ came: rewrite the record's head.
      if (reverse.path !== undefined) record = this.joinPaths(reverse.path, fwd.path);
      else if (fwd === known || m.record[at - 1] !== reverse.nextHop) record = undefined;
      else record = m.record;
    }
    this.counters.rrepForwarded++;
    this.sendRrep(reverse.nextHop, {
      ...m,
      hopCount: fwd.hops,
      destSeq: fwd.seq,
      lifetimeMs: Math.max(0, Math.min(fwd.expiresAt - now, 0xffffffff)),
      record,
      claim: claimOf(fwd),
    });
    return true;
  }

  // ---- KEEPALIVE (vmesh; §6.2 lifetimes, §6.11 case ii) --------------------------------------

  private sendKeepalive(e: Entry, hopCount: number, now: number): void {
    e.keptAt = now;
    if (e.nextHop === e.destination) return;
    this.counters.keepaliveSent++;
    const body = encodeKeepalive({
      hopCount,
      destination: e.destination,
      destSeq: e.seq,
      originator: this.self,
      avoid: e.avoid,
    });
    this.out.push({ type: 'send', to: e.nextHop, message: { type: AodvMessage.KEEPALIVE, body } });
  }

  /**
   * A request-like message (RREQ, KEEPALIVE) whose avoid-set is too large, or
   * names this device (unless it is the destination) or the neighbour it came
   * from (unless that is the originator), goes no further; counted.
   */
  private refusedByAvoid(
    from: DeviceId,
    m: { avoid: DeviceId[]; destination: DeviceId; originator: DeviceId },
  ): boolean {
    if (m.avoid.length > this.o.maxAvoid) {
      this.counters.avoidTooLarge++;
      return true;
    }
    const avoid = new Set(m.avoid);
    if (
      (avoid.has(this.self) && this.self !== m.destination) ||
      (avoid.has(from) && from !== m.originator)
    ) {
      this.counters.avoided++;
      return true;
    }
    return false;
  }

  private onKeepalive(from: DeviceId, m: Keepalive, now: number): boolean {
    this.counters.keepaliveReceived++;
    if (m.destination === m.originator || !sortedStrictly(m.avoid)) return false;
    if (m.hopCount + 1 >= this.o.netDiameter) return true;
    if (this.refusedByAvoid(from, m)) return true;
    const key = m.avoid.join(',');
    const reverse = this.get(m.originator, key);
    if (reverse !== undefined && reverse.nextHop === from && this.active(reverse, now))
      this.refresh(reverse, now);
    if (m.destination === this.self) return true;
    const e = this.get(m.destination, key);
    const live = e !== undefined && this.active(e, now) && e.nextHop !== from;
    if (live || this.neighbours.has(m.destination)) {
      let next = m.destination;
      let destSeq = m.destSeq;
      if (live) {
        e.precursors.add(from);
        this.refresh(e, now);
        // Several upstream users of one route: pass at most two KEEPALIVEs per interval on.
        if (now - e.keptAt < this.o.keepaliveIntervalMs / 2) return true;
        e.keptAt = now;
        if (!this.neighbours.has(m.destination)) next = e.nextHop;
        destSeq = e.seq;
      }
      this.counters.keepaliveForwarded++;
      const body = encodeKeepalive({ ...m, hopCount: m.hopCount + 1, destSeq });
      this.out.push({ type: 'send', to: next, message: { type: AodvMessage.KEEPALIVE, body } });
      return true;
    }
    if (e?.state === 'repairing') return true;
    // §6.11 case (ii): traffic for a route we do not have; tell the sender, with a seqno
    // newer than its own so that it believes us.
    const seq = e !== undefined && seqCompare(e.seq, m.destSeq) > 0 ? e.seq : (m.destSeq + 1) >>> 0;
    this.sendRerr(
      {
        avoid: m.avoid,
        noDelete: false,
        unreachable: new Map([[m.destination, seq]]),
        to: new Set([from]),
      },
      now,
    );
    return true;
  }

  /**
   * Whether `claim` is `device`'s signature over (device, seq): held already by `known` (same
   * number and bytes, checked when it came), or verified now. Counted when not.
   */
  private claimed(device: DeviceId, seq: number, claim: Claim, known: Entry | undefined): boolean {
    if (known !== undefined && known.claim.seq === seq && sameClaim(known.claim.claim, claim))
      return true;
    if (checkClaim(this.signer, device, seqClaimData(device, seq), claim)) return true;
    this.counters.badSignature++;
    return false;
  }

  /** Our claim to our current sequence number. */
  private ownSeqClaim(): Claim {
    if (this.ownClaim?.seq !== this.seq) {
      const claim = {
        keys: this.signer.keys,
        signature: this.signer.sign(seqClaimData(this.self, this.seq)),
      };
      this.ownClaim = { seq: this.seq, claim };
    }
    return this.ownClaim.claim;
  }

  private refresh(e: Entry, now: number): void {
    e.expiresAt = Math.max(e.expiresAt, now + this.o.activeRouteTimeoutMs);
  }

  private sendRrep(to: DeviceId, m: Rrep): void {
    const body: Rrep = { ...m };
    if (body.record === undefined) delete body.record;
    this.out.push({
      type: 'send',
      to,
      message: { type: AodvMessage.RREP, body: encodeRrep(body) },
    });
  }

  /**
   * The record originator..destination from our reverse path (self..originator) and
   * forward path (self..destination); undefined unless both are known and it is simple.
   */
  private joinPaths(
    reversePath: DeviceId[] | undefined,
    forwardPath: DeviceId[] | undefined,
  ): DeviceId[] | undefined {
    if (reversePath === undefined || forwardPath === undefined) return undefined;
    const joined = [...reversePath].reverse().concat(forwardPath.slice(1));
    return unique(joined) && joined.length <= this.o.netDiameter + 1 ? joined : undefined;
  }

  // ---- RERR (§6.11) -----------------------------------------------------------------------

  private onRerr(from: DeviceId, m: Rerr, now: number): boolean {
    this.counters.rerrReceived++;
    if (!sortedStrictly(m.avoid)) return false;
    const key = m.avoid.join(',');
    const table = this.routes.get(key);
    const rerr = new Map<string, RerrBatch>();
    for (const u of m.unreachable) {
      const e = table?.get(u.destination);
      if (e === undefined || e.nextHop !== from || e.state !== 'valid') continue;
      if (m.noDelete) {
        // N flag: a local repair found a longer route; pass the news on and keep the route.
        // A device that is not a relay for it (a source) looks for a shorter one (§6.12).
        if (e.precursors.size > 0) this.addToRerr(rerr, e, e.seq, true);
        else this.startDiscovery(e.destination, new Set(e.avoid), now);
        continue;
      }
      // §6.11 case (iii). The device that saw the break incremented the seqno it had, which
      // is at least ours (the next hop's seqno never lags), so an older or equal one is a
      // replay and is ignored.
      if (seqCompare(u.seq, e.seq) <= 0) {
        this.counters.rerrStale++;
        continue;
      }
      this.invalidate(e, now, u.seq);
      this.addToRerr(rerr, e, e.seq, false);
    }
    for (const b of rerr.values()) this.sendRerr(b, now);
    return true;
  }

  private addToRerr(
    batches: Map<string, RerrBatch>,
    e: Entry,
    seq: number,
    noDelete: boolean,
  ): void {
    if (e.precursors.size === 0) return;
    const id = `${e.key}|${noDelete ? 'n' : ''}`;
    let b = batches.get(id);
    if (b === undefined) {
      b = { avoid: e.avoid, noDelete, unreachable: new Map(), to: new Set() };
      batches.set(id, b);
    }
    b.unreachable.set(e.destination, seq);
    for (const p of e.precursors) b.to.add(p);
    if (!noDelete) e.precursors.clear();
  }

  /** Sends a RERR to the precursors (one unicast each: links are point-to-point), rate-limited. */
  private sendRerr(b: RerrBatch, now: number): void {
    if (!this.rerrWindow.allow(now)) {
      this.counters.rerrRateLimited++;
      const id = `${b.avoid.join(',')}|${b.noDelete ? 'n' : ''}`;
      const pending = this.pendingRerr.get(id);
      if (pending === undefined) this.pendingRerr.set(id, b);
      else {
        for (const [d, s] of b.unreachable) pending.unreachable.set(d, s);
        for (const t of b.to) pending.to.add(t);
      }
      if (this.rerrDeadline === Infinity) this.rerrDeadline = this.rerrWindow.nextFree(now);
      return;
    }
    const list = [...b.unreachable].map(([destination, seq]) => ({ destination, seq }));
    for (let i = 0; i < list.length; i += 255) {
      const message = {
        type: AodvMessage.RERR,
        body: encodeRerr({
          noDelete: b.noDelete,
          unreachable: list.slice(i, i + 255),
          avoid: b.avoid,
        }),
      };
      this.counters.rerrSent++;
      for (const to of b.to)
        if (this.neighbours.has(to)) this.out.push({ type: 'send', to, message });
    }
  }

  private flushPendingRerr(now: number): void {
    this.rerrDeadline = Infinity;
    for (const [id, b] of [...this.pendingRerr]) {
      this.pendingRerr.delete(id);
      this.sendRerr(b, now);
      if (this.pendingRerr.has(id)) break;
    }
  }

  // ---- route table (§6.2) -----------------------------------------------------------------

  private get(destination: DeviceId, key: string): Entry | undefined {
    return this.routes.get(key)?.get(destination);
  }

  private active(e: Entry, now: number): boolean {
    return e.state === 'valid' && e.expiresAt > now && this.neighbours.has(e.nextHop);
  }

  /** Valid, through a live neighbour, and not through an avoided device (defensive). */
  private usable(e: Entry, avoid: ReadonlySet<DeviceId> | undefined): boolean {
    return (
      e.state === 'valid' &&
      e.destination !== this.self &&
      this.neighbours.has(e.nextHop) &&
      (avoid?.has(e.nextHop) !== true || e.nextHop === e.destination)
    );
  }

  /**
   * §6.1/§6.2: a route with `seq` and `hops` replaces `e` when there is none, its
   * seqno is newer (signed 32-bit comparison), or equal with `e` not valid or longer.
   */
  private fresher(e: Entry | undefined, seq: number, hops: number): boolean {
    if (e === undefined) return true;
    const c = seqCompare(seq, e.seq);
    if (c !== 0) return c > 0;
    return e.state !== 'valid' || hops < e.hops;
  }

  private install(
    destination: DeviceId,
    key: string,
    avoid: DeviceId[],
    r: {
      seq: number;
      hops: number;
      nextHop: DeviceId;
      expiresAt: number;
      path: DeviceId[] | undefined;
      now: number;
      /** The destination's claim to `seq`. */
      claim: Claim;
    },
  ): Entry {
    let e = this.get(destination, key);
    if (e === undefined) {
      if (this.routeCount >= this.o.maxRoutes) this.evict();
      e = {
        destination,
        key,
        avoid: [...avoid],
        seq: r.seq,
        state: 'valid',
        hops: r.hops,
        nextHop: r.nextHop,
        precursors: new Set(),
        expiresAt: r.expiresAt,
        updatedAt: r.now,
        path: r.path,
        keptAt: -Infinity,
        claim: { seq: r.seq, claim: r.claim },
      };
      let table = this.routes.get(key);
      if (table === undefined) {
        table = new Map();
        this.routes.set(key, table);
      }
      table.set(destination, e);
      this.routeCount++;
      this.dirty.add(destination);
    } else {
      if (
        e.state !== 'valid' ||
        e.nextHop !== r.nextHop ||
        e.hops !== r.hops ||
        e.path?.join() !== r.path?.join()
      )
        this.dirty.add(destination);
      e.seq = r.seq;
      e.state = 'valid';
      e.hops = r.hops;
      e.nextHop = r.nextHop;
      e.expiresAt = r.expiresAt;
      e.updatedAt = r.now;
      e.path = r.path;
      e.claim = { seq: r.seq, claim: r.claim };
    }
    this.completeDiscovery(e, r.now);
    return e;
  }

  private completeDiscovery(e: Entry, now: number): void {
    const id = `${e.destination}|${e.key}`;
    const d = this.discoveries.get(id);
    if (d === undefined) return;
    this.discoveries.delete(id);
    if (d.repair === undefined) {
      this.counters.discoverySucceeded++;
      return;
    }
    this.counters.repairSucceeded++;
    // §6.12: a longer repaired route is reported upstream with the N flag.
    if (e.hops > d.repair.oldHops) {
      const rerr = new Map<string, RerrBatch>();
      this.addToRerr(rerr, e, e.seq, true);
      for (const b of rerr.values()) this.sendRerr(b, now);
    }
  }

  private invalidate(e: Entry, now: number, seq: number): void {
    if (e.state !== 'invalid') this.dirty.add(e.destination);
    e.seq = seq >>> 0;
    e.state = 'invalid';
    e.expiresAt = now + this.o.deletePeriodMs;
  }

  /** Table full: drop an invalid entry if any, else the valid one expiring first. */
  private evict(): void {
    let victim: Entry | undefined;
    for (const table of this.routes.values()) {
      for (const e of table.values()) {
        if (e.state === 'repairing') continue;
        if (
          victim === undefined ||
          (e.state === 'invalid' && victim.state !== 'invalid') ||
          (e.state === victim.state && e.expiresAt < victim.expiresAt)
        )
          victim = e;
      }
    }
    if (victim === undefined) return;
    const table = this.routes.get(victim.key);
    table?.delete(victim.destination);
    if (table?.size === 0) this.routes.delete(victim.key);
    this.routeCount--;
    this.counters.routeEvicted++;
    if (victim.state === 'valid') this.dirty.add(victim.destination);
  }

  // ---- duplicate suppression (§6.5) ----------------------------------------------------------

  /** Per-originator and total bounds on relayed RREQs. */
  private mayForward(originator: DeviceId, now: number): boolean {
    let w = this.originatorWindows.get(originator);
    if (w === undefined) {
      w = new RateWindow(this.o.rreqForwardRateLimit);
      while (this.originatorWindows.size >= Math.max(1, this.o.maxSeen >> 2)) {
        const oldest = this.originatorWindows.keys().next().value;
        if (oldest === undefined) break;
        this.originatorWindows.delete(oldest);
      }
    } else this.originatorWindows.delete(originator);
    this.originatorWindows.set(originator, w);
    return w.allow(now) && this.forwardWindow.allow(now);
  }

  /** Fewest hops a copy of this RREQ came over, if one was seen within PATH_DISCOVERY_TIME. */
  private seenHops(originator: DeviceId, rreqId: number, now: number): number | undefined {
    const s = this.seen.get(`${originator}:${rreqId}`);
    return s !== undefined && s.expiresAt > now ? s.hops : undefined;
  }

  private remember(originator: DeviceId, rreqId: number, hops: number, now: number): void {
    const k = `${originator}:${rreqId}`;
    this.seen.delete(k);
    this.seen.set(k, { expiresAt: now + this.pathDiscoveryMs, hops });
    while (this.seen.size > this.o.maxSeen) {
      const oldest = this.seen.keys().next().value;
      if (oldest === undefined) break;
      this.seen.delete(oldest);
    }
  }

  // ---- event plumbing -------------------------------------------------------------------------

  private begin(): void {
    this.out = [];
    this.dirty.clear();
  }

  /** The event's actions, then one routesChanged naming what changed. */
  private flush(): RoutingAction[] {
    const actions = this.out;
    this.out = [];
    if (this.dirty.size > 0) {
      actions.push({ type: 'routesChanged', destinations: [...this.dirty].sort() });
      this.dirty.clear();
    }
    return actions;
  }
}
