/**
 * source-route: DSR-style on-demand source routing (RFC 4728) on point-to-point links.
 *
 * Data structures:
 * - `cache` — the route cache as a path cache (RFC 4728 §4.1): whole paths from
 *   this device, learned from the route records of requests and replies it
 *   handles (§3.3.1), each with an expiry (RouteCacheTimeout, refreshed by use)
 *   and a total capacity. A cached path also gives a route to every device on it.
 * - `requests` — the route request table (§4.3): per initiator (LRU-bounded) a
 *   FIFO of recent request ids, for duplicate suppression (§8.2.2) and to accept
 *   only replies to requests this device took part in.
 * - `discoveries` — route discoveries under way from this device (§8.2.1, §8.3):
 *   a non-propagating request first, then propagating ones with exponential
 *   backoff up to MaxRequestPeriod, at most MaxRequestRexmt retransmissions.
 * - `served` — routes this device carried or answered a reply for, so that on a
 *   link break it knows whom to send a ROUTE ERROR (§3.2, §8.3.4).
 *
 * Claims: replies are signed by their target, route errors by their reporter
 * (messages.ts), and checked before they change the cache; with a real signer
 * there are no replies from the cache (README "Signed claims").
 *
 * The route choice is `find()` / `bestAll()`: the fewest-hop cached path whose
 * intermediate devices avoid the avoid-set, ties broken by the smaller path
 * (string order). With `shortestPaths` cached replies do not stop a request, so
 * the target's reply along the first (fewest-hop) copy always reaches the cache.
 * The data plane (VMs) forwards with `forwardingTable(avoid).paths` ('source'
 * mode) and salvages with a relay's own paths (§3.4.1). See README.md beside
 * this file for the RFC sections followed and left out.
 */
import type { DeviceId } from '../../wire/index.ts';
import { checkClaim, nullSigner, signsNothing } from '../signing.ts';
import type { RoutingSigner } from '../signing.ts';
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
  MAX_ROUTE_DEVICES,
  SourceRouteMessage,
  decodeRouteError,
  decodeRouteReply,
  decodeRouteRequest,
  encodeRouteError,
  encodeRouteReply,
  encodeRouteRequest,
  errorSignedData,
  replySignedData,
} from './messages.ts';
import type { RouteError, RouteReply, RouteRequest } from './messages.ts';

export {
  MAX_ROUTE_DEVICES,
  SourceRouteMessage,
  decodeRouteError,
  decodeRouteReply,
  decodeRouteRequest,
  encodeRouteError,
  encodeRouteReply,
  encodeRouteRequest,
  errorSignedData,
  replySignedData,
} from './messages.ts';
export type { RouteError, RouteReply, RouteRequest } from './messages.ts';

export interface SourceRouteInit {
  /**
   * A cached path not learned again nor used for this long is removed, ms (RouteCacheTimeout).
   * @default 300000
   */
  routeCacheTimeoutMs?: number;
  /**
   * Most paths the route cache holds; the one closest to expiry is evicted first.
   * @default 256
   */
  maxCachedPaths?: number;
  /**
   * Initiators remembered in the route request table, least recently heard evicted (RequestTableSize).
   * @default 64
   */
  requestTableSize?: number;
  /**
   * Request ids remembered per initiator, oldest evicted (RequestTableIds).
   * @default 16
   */
  requestTableIds?: number;
  /**
   * Start each discovery with a non-propagating request (hop limit 1), answered by
   * neighbours from their caches, before a network-wide one (§3.3.3, §8.2.1).
   * @default true
   */
  nonPropagatingRequests?: boolean;
  /**
   * Wait for replies to a non-propagating request this long, ms (NonpropRequestTimeout).
   * @default 30
   */
  nonPropRequestTimeoutMs?: number;
  /**
   * First wait between propagating requests for one target, ms; doubles on every retry (RequestPeriod).
   * @default 500
   */
  requestPeriodMs?: number;
  /**
   * Longest wait between requests for one target, ms; also how long a failed discovery
   * holds off a new one (MaxRequestPeriod).
   * @default 10000
   */
  maxRequestPeriodMs?: number;
  /**
   * Retransmissions of the propagating request before a discovery gives up (MaxRequestRexmt).
   * @default 16
   */
  maxRequestRexmt?: number;
  /**
   * Hop limit of propagating requests (DiscoveryHopLimit); also bounds route length.
   * @default 255
   */
  discoveryHopLimit?: number;
  /**
   * Discoveries under way at once from this device; beyond that the oldest is dropped.
   * @default 64
   */
  maxDiscoveries?: number;
  /**
   * Relays answer a request from their route cache (§3.3.2) instead of forwarding it.
   * Ignored (off) when claims are signed: only the target can sign a reply.
   * @default true
   */
  replyFromCache?: boolean;
  /**
   * Find shortest paths: a relay that answers from its cache still forwards the request
   * (unless its cached route is its own link to the target), and the initiator still sends
   * its propagating request after cached replies to the non-propagating one, so the
   * target's own replies bring a shortest path; cached replies give a route at once
   * meanwhile. With false, RFC 4728 as written: a cached reply ends the request there,
   * and a discovery ends at the first usable reply — fewer messages, but routes may be
   * longer than the shortest.
   * @default true
   */
  shortestPaths?: boolean;
  /**
   * Live neighbours count as one-hop routes without a discovery (point-to-point links know
   * both their ends). With false, even a neighbour is found by a route discovery.
   * @default true
   */
  neighbourRoutes?: boolean;
  /**
   * Replies a target sends for copies of one request that came by different paths
   * (the initiator learns alternatives for salvaging and after errors).
   * @default 3
   */
  maxTargetReplies?: number;
  /**
   * Different replies to one request that a device carries or accepts; more are dropped.
   * @default 8
   */
  maxRepliesPerRequest?: number;
  /**
   * Routes remembered as carried by this device, for ROUTE ERRORs on a link break.
   * @default 256
   */
  maxServedRoutes?: number;
  /**
   * Requests this device originates per second, all targets together (token bucket, vmesh limit).
   * @default 10
   */
  requestRatePerSec?: number;
  /**
   * Burst of originated requests allowed above `requestRatePerSec`.
   * @default 10
   */
  requestBurst?: number;
  /**
   * Requests this device forwards per second (token bucket, vmesh limit).
   * @default 100
   */
  forwardRatePerSec?: number;
  /**
   * Burst of forwarded requests allowed above `forwardRatePerSec`.
   * @default 100
   */
  forwardBurst?: number;
  /**
   * ROUTE ERROR (reporter, id) pairs remembered for duplicate suppression.
   * @default 256
   */
  maxErrorsSeen?: number;
  /**
   * Jitter of request retransmission timers, as a fraction of the period (injected RNG).
   * @default 0.1
   */
  jitter?: number;
}

interface CacheEntry {
  /** self..last, no repeats. */
  path: DeviceId[];
  learnedAt: number;
  expiresAt: number;
}

interface RequestEntry {
  target: DeviceId;
  /** Digests (joined routes) of the replies carried or accepted for this request. */
  replies: Set<string>;
  /** As the target: replies sent. */
  targetReplies: number;
  /** Fewest devices on a reply carried or accepted so far. */
  shortest: number;
}

type Phase = 'start' | 'nonprop' | 'prop' | 'idle';

interface Discovery {
  target: DeviceId;
  avoid: DeviceId[];
  avoidSet: ReadonlySet<DeviceId>;
  phase: Phase;
  /** Propagating requests sent. */
  attempts: number;
  /** Wait after the next propagating request. */
  period: number;
  nextAt: number;
}

interface Served {
  path: DeviceId[];
  expiresAt: number;
}

interface Best {
  path: DeviceId[];
  entry: CacheEntry | undefined;
}

/** Token bucket (vmesh rate limits on requests). */
class Bucket {
  private tokens: number;
  private last = 0;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerSec) / 1000);
    this.last = now;
  }

  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Time until a token is available, ms (at least 1). */
  waitMs(now: number): number {
    this.refill(now);
    if (this.ratePerSec <= 0) return Infinity;
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSec));
  }
}

export function sourceRoute(init: SourceRouteInit = {}): RoutingProtocolFactory {
  return (components) => new SourceRoute(components, init);
}

const pathKey = (path: readonly DeviceId[]): string => path.join(',');

/** Fewer hops first, then the smaller path in string order (deterministic everywhere). */
function better(a: readonly DeviceId[], b: readonly DeviceId[] | undefined): boolean {
  if (b === undefined) return true;
  if (a.length !== b.length) return a.length < b.length;
  return pathKey(a) < pathKey(b);
}

/** True when `path` has a and b next to each other (links are bidirectional). */
function usesLink(path: readonly DeviceId[], a: DeviceId, b: DeviceId): number {
  for (let k = 0; k + 1 < path.length; k++) {
    const x = path[k];
    const y = path[k + 1];
    if ((x === a && y === b) || (x === b && y === a)) return k;
  }
  return -1;
}

class SourceRoute implements RoutingProtocol {
  readonly name = 'source-route';
  readonly id = 5;
  readonly mode = 'source' as const;
  readonly reactive = true;
  private readonly self: DeviceId;
  private readonly random: () => number;
  private readonly signer: RoutingSigner;
  /**
   * Replies from the route cache: off when claims are signed, since only the target can sign
   * a reply and a cached route joined to a request's record is not one it signed.
   */
  private readonly replyFromCache: boolean;
  private readonly o: Required<SourceRouteInit>;
  private readonly neighbours = new Map<DeviceId, { cost: number; since: number }>();
  private readonly cache = new Map<string, CacheEntry>();
  /** initiator -> (id -> entry); Map order is LRU order. Own requests live in `own`. */
  private readonly requests = new Map<DeviceId, Map<number, RequestEntry>>();
  private readonly own = new Map<number, RequestEntry>();
  private readonly discoveries = new Map<string, Discovery>();
  private readonly served = new Map<string, Served>();
  private readonly errorsSeen = new Set<string>();
  private readonly requestBucket: Bucket;
  private readonly forwardBucket: Bucket;
  private nextRequestId = 1;
  private nextErrorId = 1;
  private bestCache: Map<DeviceId, Best> | undefined;
  private readonly counters = {
    rreqSent: 0,
    rreqReceived: 0,
    rreqForwarded: 0,
    rreqDuplicate: 0,
    rreqLoop: 0,
    rreqAvoided: 0,
    rreqHopLimit: 0,
    rreqRateLimited: 0,
    rrepSent: 0,
    rrepFromCache: 0,
    rrepReceived: 0,
    rrepForwarded: 0,
    rrepStale: 0,
    rrepDuplicate: 0,
    rrepUndeliverable: 0,
    rerrSent: 0,
    rerrReceived: 0,
    rerrForwarded: 0,
    rerrDuplicate: 0,
    rerrUndeliverable: 0,
    discoveries: 0,
    discoveryFailed: 0,
    discoveryEvicted: 0,
    discoverRateLimited: 0,
    cacheEvicted: 0,
    cacheExpired: 0,
    malformed: 0,
    badSignature: 0,
  };

  constructor(c: RoutingComponents, init: SourceRouteInit) {
    this.self = c.self;
    this.random = c.random;
    this.o = {
      routeCacheTimeoutMs: init.routeCacheTimeoutMs ?? 300000,
      maxCachedPaths: init.maxCachedPaths ?? 256,
      requestTableSize: init.requestTableSize ?? 64,
      requestTableIds: init.requestTableIds ?? 16,
      nonPropagatingRequests: init.nonPropagatingRequests ?? true,
      nonPropRequestTimeoutMs: init.nonPropRequestTimeoutMs ?? 30,
      requestPeriodMs: init.requestPeriodMs ?? 500,
      maxRequestPeriodMs: init.maxRequestPeriodMs ?? 10000,
      maxRequestRexmt: init.maxRequestRexmt ?? 16,
      discoveryHopLimit: Math.max(1, Math.min(255, init.discoveryHopLimit ?? 255)),
      maxDiscoveries: Math.max(1, init.maxDiscoveries ?? 64),
      replyFromCache: init.replyFromCache ?? true,
      shortestPaths: init.shortestPaths ?? true,
      neighbourRoutes: init.neighbourRoutes ?? true,
      maxTargetReplies: init.maxTargetReplies ?? 3,
      maxRepliesPerRequest: init.maxRepliesPerRequest ?? 8,
      maxServedRoutes: init.maxServedRoutes ?? 256,
      requestRatePerSec: init.requestRatePerSec ?? 10,
      requestBurst: init.requestBurst ?? 10,
      forwardRatePerSec: init.forwardRatePerSec ?? 100,
      forwardBurst: init.forwardBurst ?? 100,
      maxErrorsSeen: init.maxErrorsSeen ?? 256,
      jitter: init.jitter ?? 0.1,
    };
    this.signer = c.signer ?? nullSigner;
    this.replyFromCache = this.o.replyFromCache && signsNothing(this.signer);
    this.requestBucket = new Bucket(this.o.requestRatePerSec, this.o.requestBurst);
    this.forwardBucket = new Bucket(this.o.forwardRatePerSec, this.o.forwardBurst);
  }

  start(_now: number): RoutingAction[] {
    return [];
  }

  linkUp(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    const had = this.neighbours.has(neighbour);
    this.neighbours.set(neighbour, { cost, since: now });
    // Cached paths whose first hop is this neighbour become usable again, and so may a one-hop route.
    const dests = new Set<DeviceId>();
    if (this.o.neighbourRoutes) dests.add(neighbour);
    for (const e of this.cache.values())
      if (e.path[1] === neighbour) for (const d of e.path.slice(1)) dests.add(d);
    return had ? [] : this.changed(dests);
  }

  linkDown(neighbour: DeviceId, _now: number): RoutingAction[] {
    if (!this.neighbours.delete(neighbour)) return [];
    const actions = this.routeErrorsFor(neighbour);
    const dests = this.removeLink(this.self, neighbour);
    if (this.o.neighbourRoutes) dests.add(neighbour);
    return [...actions, ...this.changed(dests)];
  }

  linkCost(neighbour: DeviceId, cost: number, _now: number): RoutingAction[] {
    // Routes are chosen by hop count (DSR has no link metric), so a cost change moves nothing.
    const n = this.neighbours.get(neighbour);
    if (n !== undefined) n.cost = cost;
    return [];
  }

  receive(from: DeviceId, message: ProtocolMessage, now: number): RoutingAction[] {
    if (!this.neighbours.has(from)) {
      this.counters.malformed++;
      return [];
    }
    let decoded:
      | { type: 'rreq'; m: RouteRequest }
      | { type: 'rrep'; m: RouteReply }
      | { type: 'rerr'; m: RouteError }
      | undefined;
    try {
      if (message.type === SourceRouteMessage.RREQ)
        decoded = { type: 'rreq', m: decodeRouteRequest(message.body) };
      else if (message.type === SourceRouteMessage.RREP)
        decoded = { type: 'rrep', m: decodeRouteReply(message.body) };
      else if (message.type === SourceRouteMessage.RERR)
        decoded = { type: 'rerr', m: decodeRouteError(message.body) };
    } catch {
      // fall through: malformed
    }
    if (decoded === undefined) {
      this.counters.malformed++;
      return [];
    }
    if (decoded.type === 'rreq') return this.onRequest(from, decoded.m, now);
    if (decoded.type === 'rrep') return this.onReply(from, decoded.m, now);
    return this.onError(from, decoded.m);
  }

  tick(now: number): RoutingAction[] {
    const actions: RoutingAction[] = [];
    const dests = new Set<DeviceId>();
    for (const [key, e] of this.cache) {
      if (now >= e.expiresAt) {
        this.cache.delete(key);
        this.counters.cacheExpired++;
        for (const d of e.path.slice(1)) dests.add(d);
      }
    }
    for (const [key, s] of this.served) if (now >= s.expiresAt) this.served.delete(key);
    if (dests.size > 0) actions.push(...this.changed(dests));
    for (const [key, d] of this.discoveries) {
      if (d.nextAt <= now) actions.push(...this.step(key, d, now));
    }
    return actions;
  }

  nextDeadline(): number {
    let next = Infinity;
    for (const d of this.discoveries.values()) next = Math.min(next, d.nextAt);
    for (const e of this.cache.values()) next = Math.min(next, e.expiresAt);
    return next;
  }

  discover(destination: DeviceId, avoid: ReadonlySet<DeviceId>, now: number): RoutingAction[] {
    if (destination === this.self || this.find(destination, avoid) !== undefined) return [];
    const avoidList = [...avoid].sort();
    const key = `${destination}|${avoidList.join(',')}`;
    const known = this.discoveries.get(key);
    if (known !== undefined) {
      if (known.phase !== 'idle') return [];
      if (now < known.nextAt) {
        // A discovery that gave up holds off a new one for MaxRequestPeriod (§3.1, §8.2 rate limit).
        this.counters.discoverRateLimited++;
        return [];
      }
      this.discoveries.delete(key);
    }
    if (this.discoveries.size >= this.o.maxDiscoveries) this.evictDiscovery();
    const d: Discovery = {
      target: destination,
      avoid: avoidList,
      avoidSet: new Set(avoidList),
      phase: 'start',
      attempts: 0,
      period: this.o.requestPeriodMs,
      nextAt: now,
    };
    this.discoveries.set(key, d);
    this.counters.discoveries++;
    return this.step(key, d, now);
  }

  routeInUse(destination: DeviceId, avoid: ReadonlySet<DeviceId>, now: number): RoutingAction[] {
    const best = this.find(destination, avoid);
    if (best === undefined) return this.discover(destination, avoid, now);
    // Use keeps a path in the cache (§4.1: timeouts on routes not in use).
    if (best.entry !== undefined) best.entry.expiresAt = now + this.o.routeCacheTimeoutMs;
    return [];
  }

  route(destination: DeviceId, avoid?: ReadonlySet<DeviceId>): Route | undefined {
    const best = this.find(destination, avoid);
    return best === undefined ? undefined : this.toRoute(destination, best.path);
  }

  forwardingTable(avoid?: ReadonlySet<DeviceId>): Omit<ForwardingTable, 'version'> {
    const nextHops: Record<DeviceId, DeviceId> = {};
    const paths: Record<DeviceId, DeviceId[]> = {};
    for (const [dest, b] of this.bestAll(avoid)) {
      paths[dest] = [...b.path];
      nextHops[dest] = b.path[1] as DeviceId;
    }
    return {
      protocol: this.id,
      self: this.self,
      mode: this.mode,
      avoid: [...(avoid ?? [])].sort(),
      neighbours: [...this.neighbours.keys()].filter((n) => !avoid?.has(n)).sort(),
      nextHops,
      paths,
    };
  }

  snapshot(now: number): RoutingSnapshot {
    let requestIds = 0;
    for (const ids of this.requests.values()) requestIds += ids.size;
    return {
      protocol: this.name,
      self: this.self,
      neighbours: [...this.neighbours].map(([device, n]) => ({
        device,
        cost: n.cost,
        state: 'up',
      })),
      routes: [...this.bestAll()].map(([destination, b]) => ({
        ...this.toRoute(destination, b.path),
        updatedAt: b.entry?.learnedAt ?? this.neighbours.get(destination)?.since ?? now,
      })),
      counters: {
        ...this.counters,
        cachedPaths: this.cache.size,
        requestInitiators: this.requests.size,
        requestIds,
        ownRequestIds: this.own.size,
        pendingDiscoveries: this.discoveries.size,
        servedRoutes: this.served.size,
        errorsSeen: this.errorsSeen.size,
      },
    };
  }

  // ---- route discovery: originating (§8.2.1, §8.3 retransmission) ---------------

  /** Runs a discovery's timer: sends the next request, or ends it. */
  private step(key: string, d: Discovery, now: number): RoutingAction[] {
    if (d.phase === 'idle' || this.settled(d)) {
      this.discoveries.delete(key);
      return [];
    }
    if (d.phase === 'prop' && d.attempts > this.o.maxRequestRexmt) {
      this.counters.discoveryFailed++;
      d.phase = 'idle';
      d.nextAt = now + this.o.maxRequestPeriodMs;
      return [];
    }
    if (!this.requestBucket.take(now)) {
      this.counters.rreqRateLimited++;
      d.nextAt = now + this.requestBucket.waitMs(now);
      return [];
    }
    let hopLimit: number;
    if (d.phase === 'start' && this.o.nonPropagatingRequests) {
      d.phase = 'nonprop';
      hopLimit = 1;
      d.nextAt = now + this.o.nonPropRequestTimeoutMs;
    } else {
      d.phase = 'prop';
      hopLimit = this.o.discoveryHopLimit;
      d.attempts++;
      d.nextAt = now + jittered(d.period, this.o.jitter, this.random);
      d.period = Math.min(d.period * 2, this.o.maxRequestPeriodMs);
    }
    const id = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1) >>> 0 || 1;
    this.own.delete(id);
    this.own.set(id, {
      target: d.target,
      replies: new Set(),
      targetReplies: 0,
      shortest: Infinity,
    });
    // Own ids are kept for every discovery's last few requests, so late replies are accepted.
    const ownCap = Math.max(this.o.requestTableIds, 2 * this.o.maxDiscoveries);
    while (this.own.size > ownCap) this.own.delete(this.own.keys().next().value as number);
    const body = encodeRouteRequest({
      initiator: this.self,
      target: d.target,
      id,
      hopLimit,
      record: [],
      avoid: d.avoid,
    });
    const actions: RoutingAction[] = [];
    for (const n of [...this.neighbours.keys()].sort()) {
      if (d.avoidSet.has(n) && n !== d.target) continue;
      this.counters.rreqSent++;
      actions.push({ type: 'send', to: n, message: { type: SourceRouteMessage.RREQ, body } });
    }
    return actions;
  }

  private evictDiscovery(): void {
    let victim: string | undefined;
    for (const [key, d] of this.discoveries) {
      if (d.phase === 'idle') {
        victim = key;
        break;
      }
      victim ??= key;
    }
    if (victim !== undefined) {
      this.discoveries.delete(victim);
      this.counters.discoveryEvicted++;
    }
  }

  /**
   * A discovery is done when its target is reachable honouring its avoid-set — with
   * `shortestPaths`, only once the propagating request is out (the target's replies to it
   * follow) or the route cannot be shorter.
   */
  private settled(d: Discovery): boolean {
    const best = this.find(d.target, d.avoidSet);
    if (best === undefined) return false;
    if (!this.o.shortestPaths || d.phase === 'prop') return true;
    // Neighbours are routes already with neighbourRoutes, so two hops is then the least.
    return best.path.length - 1 <= (this.o.neighbourRoutes ? 2 : 1);
  }

  private settleDiscoveries(): void {
    for (const [key, d] of this.discoveries)
      if (d.phase !== 'idle' && this.settled(d)) this.discoveries.delete(key);
  }

  // ---- route discovery: receiving (§8.2.2–§8.2.6) --------------------------------

  private onRequest(from: DeviceId, m: RouteRequest, now: number): RoutingAction[] {
    this.counters.rreqReceived++;
    const taken = [m.initiator, ...m.record];
    if (taken[taken.length - 1] !== from) {
      // The record must end with the device that sent this copy: the path recorded is the path taken.
      this.counters.malformed++;
      return [];
    }
    if (m.initiator === this.self || m.record.includes(this.self)) {
      // Our own request, or one that has passed us already (§8.2.2: discard).
      this.counters.rreqLoop++;
      return [];
    }
    // Links are bidirectional: the reversed route record is a route back to the initiator (§3.3.1).
    const dests = this.learn([this.self, ...[...taken].reverse()], now);
    const actions: RoutingAction[] = [];
    if (m.target === this.self) {
      const entry = this.requestEntry(m.initiator, m.id, m.target);
      if (entry.targetReplies >= this.o.maxTargetReplies) this.counters.rreqDuplicate++;
      else {
        entry.targetReplies++;
        actions.push(this.reply(from, m.id, [...taken, this.self], now));
      }
      return [...actions, ...this.changed(dests)];
    }
    if (this.requests.get(m.initiator)?.has(m.id) === true) {
      this.counters.rreqDuplicate++;
      return this.changed(dests);
    }
    this.requestEntry(m.initiator, m.id, m.target);
    const avoid = new Set(m.avoid);
    if (avoid.has(this.self)) {
      // vmesh extension: a device in the request's avoid list takes no part in the route.
      this.counters.rreqAvoided++;
      return this.changed(dests);
    }
    if (this.replyFromCache) {
      // §3.3.2 / §8.2.3: answer from the cache, never with a route that repeats a device
      // or passes an avoided one.
      const cached = this.find(m.target, avoid, new Set(taken));
      if (cached !== undefined && taken.length + cached.path.length <= MAX_ROUTE_DEVICES) {
        this.counters.rrepFromCache++;
        actions.push(this.reply(from, m.id, [...taken, ...cached.path], now));
        // RFC 4728 stops the request here. For shortest paths it goes on, unless the cached
        // route is this device's own link to the target (the target's other neighbours
        // answer for the other paths).
        if (!this.o.shortestPaths || cached.path.length === 2)
          return [...actions, ...this.changed(dests)];
      }
    }
    if (m.hopLimit <= 1 || taken.length + 2 > MAX_ROUTE_DEVICES) {
      // Out of hops, or the record could not hold this device and the target.
      this.counters.rreqHopLimit++;
      return [...actions, ...this.changed(dests)];
    }
    const onPath = new Set(taken);
    const to = [...this.neighbours.keys()]
      .filter((n) => n !== from && !onPath.has(n) && (!avoid.has(n) || n === m.target))
      .sort();
    if (to.length > 0) {
      if (!this.forwardBucket.take(now)) this.counters.rreqRateLimited++;
      else {
        const body = encodeRouteRequest({
          ...m,
          hopLimit: m.hopLimit - 1,
          record: [...m.record, this.self],
        });
        for (const n of to) {
          this.counters.rreqForwarded++;
          actions.push({ type: 'send', to: n, message: { type: SourceRouteMessage.RREQ, body } });
        }
      }
    }
    return [...actions, ...this.changed(dests)];
  }

  /** Sends a reply carrying `route` (initiator..target) back toward the initiator. */
  private reply(to: DeviceId, id: number, route: DeviceId[], now: number): RoutingAction {
    this.counters.rrepSent++;
    this.remember(this.requests.get(route[0] as DeviceId)?.get(id), route);
    this.serve(route, now);
    // The target signs the route (with the null signer, cached replies carry the empty claim).
    const claim = {
      keys: this.signer.keys,
      signature: this.signer.sign(replySignedData({ id, route })),
    };
    return {
      type: 'send',
      to,
      message: { type: SourceRouteMessage.RREP, body: encodeRouteReply({ id, route, claim }) },
    };
  }

  private onReply(from: DeviceId, m: RouteReply, now: number): RoutingAction[] {
    const route = m.route;
    const i = route.indexOf(this.self);
    if (i < 0 || i === route.length - 1 || route[i + 1] !== from) {
      // Not on the route, the target itself, or not from the next device on it.
      this.counters.malformed++;
      return [];
    }
    const initiator = route[0] as DeviceId;
    const target = route[route.length - 1] as DeviceId;
    const entry = i === 0 ? this.own.get(m.id) : this.requests.get(initiator)?.get(m.id);
    if (entry === undefined || entry.target !== target) {
      // Only replies to requests this device sent or carried are taken (replays, forgeries).
      this.counters.rrepStale++;
      return [];
    }
    const digest = pathKey(route);
    // Beyond maxRepliesPerRequest only a reply shorter than all before it is taken (so the
    // target's shortest reply is never crowded out by cached ones); that bounds them too.
    if (
      entry.replies.has(digest) ||
      (entry.replies.size >= this.o.maxRepliesPerRequest && route.length >= entry.shortest)
    ) {
      this.counters.rrepDuplicate++;
      return [];
    }
    // The route enters caches only as its target signed it (checked after the cheap checks, and
    // before the digest is remembered, so a forged copy cannot shut out the real reply).
    if (!checkClaim(this.signer, target, replySignedData(m), m.claim)) {
      this.counters.badSignature++;
      return [];
    }
    entry.replies.add(digest);
    entry.shortest = Math.min(entry.shortest, route.length);
    const dests = this.learn(route.slice(i), now);
    if (i > 0) for (const d of this.learn(route.slice(0, i + 1).reverse(), now)) dests.add(d);
    if (i === 0) {
      this.counters.rrepReceived++;
      return this.changed(dests);
    }
    this.serve(route, now);
    const prev = route[i - 1] as DeviceId;
    const actions: RoutingAction[] = [];
    if (!this.neighbours.has(prev)) this.counters.rrepUndeliverable++;
    else {
      this.counters.rrepForwarded++;
      actions.push({
        type: 'send',
        to: prev,
        message: { type: SourceRouteMessage.RREP, body: encodeRouteReply(m) },
      });
    }
    return [...actions, ...this.changed(dests)];
  }

  private requestEntry(initiator: DeviceId, id: number, target: DeviceId): RequestEntry {
    let ids = this.requests.get(initiator);
    if (ids === undefined) ids = new Map();
    else this.requests.delete(initiator);
    this.requests.set(initiator, ids);
    while (this.requests.size > this.o.requestTableSize)
      this.requests.delete(this.requests.keys().next().value as DeviceId);
    let entry = ids.get(id);
    if (entry === undefined) {
      entry = { target, replies: new Set(), targetReplies: 0, shortest: Infinity };
      ids.set(id, entry);
      while (ids.size > this.o.requestTableIds) ids.delete(ids.keys().next().value as number);
    }
    return entry;
  }

  private remember(entry: RequestEntry | undefined, route: DeviceId[]): void {
    if (entry === undefined) return;
    if (entry.replies.size < this.o.maxRepliesPerRequest) entry.replies.add(pathKey(route));
    entry.shortest = Math.min(entry.shortest, route.length);
  }

  // ---- route maintenance (§3.2, §3.4, §8.3.4, §8.3.5) ---------------------------

  /** Remembers a route this device carries, to report its links' breaks. */
  private serve(route: DeviceId[], now: number): void {
    const key = pathKey(route);
    this.served.delete(key);
    this.served.set(key, { path: route, expiresAt: now + this.o.routeCacheTimeoutMs });
    while (this.served.size > this.o.maxServedRoutes)
      this.served.delete(this.served.keys().next().value as string);
  }

  /**
   * The link to `neighbour` broke: a ROUTE ERROR to each device that uses a served route
   * over it — the initiator (forward direction) or the target (reverse direction).
   */
  private routeErrorsFor(neighbour: DeviceId): RoutingAction[] {
    const back = new Map<DeviceId, DeviceId[]>();
    for (const s of this.served.values()) {
      const p = s.path;
      const i = p.indexOf(this.self);
      if (i < 0) continue;
      let toward: DeviceId[] | undefined;
      if (i > 0 && p[i + 1] === neighbour) toward = p.slice(0, i + 1).reverse();
      else if (i < p.length - 1 && p[i - 1] === neighbour) toward = p.slice(i);
      if (toward === undefined) continue;
      const notified = toward[toward.length - 1] as DeviceId;
      const known = back.get(notified);
      if (known === undefined || better(toward, known)) back.set(notified, toward);
    }
    const actions: RoutingAction[] = [];
    for (const route of back.values()) {
      const next = route[1] as DeviceId;
      if (!this.neighbours.has(next)) {
        this.counters.rerrUndeliverable++;
        continue;
      }
      const id = this.nextErrorId;
      this.nextErrorId = (this.nextErrorId + 1) >>> 0 || 1;
      this.counters.rerrSent++;
      const signature = this.signer.sign(errorSignedData({ id, unreachable: neighbour, route }));
      const claim = { keys: this.signer.keys, signature };
      actions.push({
        type: 'send',
        to: next,
        message: {
          type: SourceRouteMessage.RERR,
          body: encodeRouteError({ id, unreachable: neighbour, route, claim }),
        },
      });
    }
    return actions;
  }

  private onError(from: DeviceId, m: RouteError): RoutingAction[] {
    const route = m.route;
    const i = route.indexOf(this.self);
    if (i <= 0 || route[i - 1] !== from) {
      this.counters.malformed++;
      return [];
    }
    const key = `${route[0]}:${m.id}`;
    if (this.errorsSeen.has(key)) {
      this.counters.rerrDuplicate++;
      return [];
    }
    // Only the device that lost the link may report it (checked before the error id is
    // remembered, so a forged copy cannot shut out the real error).
    if (!checkClaim(this.signer, route[0] as DeviceId, errorSignedData(m), m.claim)) {
      this.counters.badSignature++;
      return [];
    }
    this.errorsSeen.add(key);
    while (this.errorsSeen.size > this.o.maxErrorsSeen)
      this.errorsSeen.delete(this.errorsSeen.values().next().value as string);
    this.counters.rerrReceived++;
    // §8.3.5: every device the error passes removes the link from its cache.
    const dests = this.removeLink(route[0] as DeviceId, m.unreachable);
    const actions: RoutingAction[] = [];
    if (i < route.length - 1) {
      const next = route[i + 1] as DeviceId;
      if (!this.neighbours.has(next)) this.counters.rerrUndeliverable++;
      else {
        this.counters.rerrForwarded++;
        actions.push({
          type: 'send',
          to: next,
          message: { type: SourceRouteMessage.RERR, body: encodeRouteError(m) },
        });
      }
    }
    return [...actions, ...this.changed(dests)];
  }

  /**
   * Removes the link a–b from every cached path: each is cut short before the link
   * (the devices before it are still reachable, §8.3.5). Returns destinations touched.
   */
  private removeLink(a: DeviceId, b: DeviceId): Set<DeviceId> {
    const dests = new Set<DeviceId>();
    const keep: CacheEntry[] = [];
    for (const [key, e] of this.cache) {
      const k = usesLink(e.path, a, b);
      if (k < 0) continue;
      this.cache.delete(key);
      for (const d of e.path.slice(k + 1)) dests.add(d);
      if (k >= 1) keep.push({ ...e, path: e.path.slice(0, k + 1) });
    }
    for (const e of keep) {
      const key = pathKey(e.path);
      const known = this.cache.get(key);
      if (known === undefined || known.expiresAt < e.expiresAt) this.cache.set(key, e);
    }
    for (const [key, s] of this.served) if (usesLink(s.path, a, b) >= 0) this.served.delete(key);
    return dests;
  }

  // ---- route cache (§4.1) ------------------------------------------------------------

  /** Adds a path (self..x); returns the destinations whose answers may have changed. */
  private learn(path: DeviceId[], now: number): Set<DeviceId> {
    const dests = new Set<DeviceId>();
    if (path.length < 2 || path[0] !== this.self) return dests;
    const key = pathKey(path);
    const expiresAt = now + this.o.routeCacheTimeoutMs;
    const known = this.cache.get(key);
    if (known !== undefined) {
      known.learnedAt = now;
      known.expiresAt = Math.max(known.expiresAt, expiresAt);
      return dests;
    }
    // A shorter cached path that this one extends is implied by it: replace it.
    for (const [k, e] of this.cache)
      if (e.path.length < path.length && key.startsWith(k + ',')) this.cache.delete(k);
    this.cache.set(key, { path, learnedAt: now, expiresAt });
    for (const d of path.slice(1)) dests.add(d);
    while (this.cache.size > this.o.maxCachedPaths) {
      let victim: [string, CacheEntry] | undefined;
      for (const [k, e] of this.cache)
        if (k !== key && (victim === undefined || e.expiresAt < victim[1].expiresAt))
          victim = [k, e];
      if (victim === undefined) break;
      this.cache.delete(victim[0]);
      this.counters.cacheEvicted++;
      for (const d of victim[1].path.slice(1)) dests.add(d);
    }
    return dests;
  }

  /**
   * The best route to `dest` whose intermediate devices avoid `avoid` and whose devices
   * after this one avoid `exclude` (for cached replies: the route so far).
   */
  private find(
    dest: DeviceId,
    avoid?: ReadonlySet<DeviceId>,
    exclude?: ReadonlySet<DeviceId>,
  ): Best | undefined {
    if (dest === this.self) return undefined;
    if ((avoid === undefined || avoid.size === 0) && exclude === undefined)
      return this.bestAll().get(dest);
    let best: Best | undefined;
    if (this.o.neighbourRoutes && this.neighbours.has(dest) && exclude?.has(dest) !== true)
      best = { path: [this.self, dest], entry: undefined };
    for (const e of this.cache.values()) {
      const idx = e.path.indexOf(dest);
      if (idx < 1 || !this.neighbours.has(e.path[1] as DeviceId)) continue;
      let ok = true;
      for (let k = 1; k <= idx && ok; k++) {
        const d = e.path[k] as DeviceId;
        if ((k < idx && avoid?.has(d) === true) || exclude?.has(d) === true) ok = false;
      }
      if (!ok) continue;
      const path = e.path.slice(0, idx + 1);
      if (better(path, best?.path)) best = { path, entry: e };
    }
    return best;
  }

  /** Best route to every reachable destination for an avoid-set (memoised without one). */
  private bestAll(avoid?: ReadonlySet<DeviceId>): Map<DeviceId, Best> {
    const plain = avoid === undefined || avoid.size === 0;
    if (plain && this.bestCache !== undefined) return this.bestCache;
    const best = new Map<DeviceId, Best>();
    if (this.o.neighbourRoutes)
      for (const n of this.neighbours.keys())
        best.set(n, { path: [this.self, n], entry: undefined });
    for (const e of this.cache.values()) {
      if (!this.neighbours.has(e.path[1] as DeviceId)) continue;
      for (let k = 1; k < e.path.length; k++) {
        if (k >= 2 && avoid?.has(e.path[k - 1] as DeviceId) === true) break;
        const dest = e.path[k] as DeviceId;
        const path = e.path.slice(0, k + 1);
        if (better(path, best.get(dest)?.path)) best.set(dest, { path, entry: e });
      }
    }
    if (plain) this.bestCache = best;
    return best;
  }

  private toRoute(destination: DeviceId, path: DeviceId[]): Route {
    const hops = path.length - 1;
    return { destination, nextHop: path[1] as DeviceId, cost: hops, hops, path: [...path] };
  }

  /** Reports a change of routes to `dests` (and ends discoveries it satisfied). */
  private changed(dests: Set<DeviceId>): RoutingAction[] {
    this.bestCache = undefined;
    if (dests.size === 0) return [];
    dests.delete(this.self);
    this.settleDiscoveries();
    return [{ type: 'routesChanged', destinations: [...dests].sort() }];
  }
}
