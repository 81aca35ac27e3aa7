/**
 * link-state: OLSR/OSPF-style routing on point-to-point links.
 *
 * Data structures:
 * - `neighbours` — the neighbour table (RFC 3626 §4.2/§7 sensing, reduced to
 *   point-to-point links): per neighbour its base cost (from linkUp/linkCost),
 *   heard/symmetric state, HELLO sequence numbers both ways, the link quality
 *   both ways (ETX, olsrd-style; EWMA as RFC 3626 §14), the cost last
 *   advertised (hysteresis), and in MPR mode its symmetric neighbours (the
 *   2-hop set, RFC 3626 §8.2) and whether it selected us as a relay (§8.4).
 * - `lsdb` — newest advertisement per origin with its expiry, the neighbours it
 *   came from and whether it was relayed (RFC 2328 §12–§13 flooding with
 *   sequence numbers and ageing; RFC 3626 §3.4.1 duplicate/forwarding rule).
 * - `mprs` — our multipoint relays (RFC 3626 §8.3.1 heuristic), MPR mode only.
 *
 * Claims: every advertisement is signed by its origin (messages.ts); a newer
 * one is verified before it enters the lsdb (`signedByOrigin`), duplicates and
 * stale ones are not (README "Signed claims").
 *
 * Decisions: the route choice is made in spf.ts over the lsdb plus our own
 * live links; the link cost in `linkCostOf`; whether a cost change is big
 * enough to re-advertise in `costMoved`; whether to relay an advertisement in
 * `relays`. See README.md beside this file for the RFC sections followed and
 * left out.
 */
import type { DeviceId } from '../../wire/index.ts';
import { checkClaim, nullSigner } from '../signing.ts';
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
  LinkStateMessage,
  MAX_ENTRIES,
  decodeHello,
  decodeLsa,
  encodeHello,
  encodeLsa,
  lsaSignedData,
} from './messages.ts';
import type { HelloEntry, HelloMessage, LsaMessage } from './messages.ts';

export {
  LinkStateMessage,
  decodeHello,
  decodeLsa,
  encodeHello,
  encodeLsa,
  lsaSignedData,
} from './messages.ts';
export type { HelloEntry, HelloMessage, LsaMessage } from './messages.ts';
import { shortestPaths } from './spf.ts';
import type { Graph, ShortestPath } from './spf.ts';

export interface LinkStateInit {
  /**
   * Interval between HELLOs to each neighbour, ms.
   * @default 1000
   */
  helloIntervalMs?: number;
  /**
   * A neighbour not heard (any valid message) for this long is no longer symmetric.
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
   * Least time between two originations of our own advertisement, ms (OSPF
   * MinLSInterval); changes in between are batched into one origination.
   * @default 500
   */
  minLsaIntervalMs?: number;
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
  /**
   * Count a HELLO that is late as lost (RFC 3626 §14, for radio links that go
   * silent without a link-layer signal). Off by default: vmesh links report
   * their own failure (linkDown) and never lose frames, only delay them — a
   * busy CPU would otherwise read as loss and move routes. Gaps in HELLO
   * sequence numbers always count.
   * @default false
   */
  countLateHellos?: boolean;
  /**
   * Weight of the newest HELLO in the link-quality average (RFC 3626 §14
   * HYST_SCALING): on a HELLO q ← (1−s)q + s, on a missed one q ← (1−s)q.
   * @default 0.1
   */
  qualityScaling?: number;
  /**
   * Largest ETX (1 / (forward × reverse quality)) a link cost is multiplied by.
   * @default 16
   */
  maxEtx?: number;
  /**
   * A link cost is re-advertised only when it moved by more than this fraction
   * of the cost last advertised (and its rounded value changed).
   * @default 0.2
   */
  costHysteresis?: number;
  /**
   * Multipoint relays (RFC 3626 §8.3): relay advertisements only for the
   * neighbours that selected us, instead of every device relaying everything.
   * @default false
   */
  mpr?: boolean;
  /**
   * Most origins kept in the link-state database; advertisements of further
   * origins are dropped and counted (`lsdbFull`).
   * @default 4096
   */
  maxLsdb?: number;
}

/** Largest link cost advertised (costs are u32 on the wire; this leaves room to sum paths). */
const MAX_ADVERTISED_COST = 0xffffff;
/** A HELLO counts as missed this many of the sender's intervals after the last one (jitter, delay). */
const MISSED_AFTER = 1.5;
/** Shortest sender HELLO interval we time misses by, ms (a neighbour cannot make us tick faster). */
const MIN_EXPECTED_INTERVAL_MS = 50;
/** HELLO sequence numbers further than this from the last one (either way) start a new run. */
const SEQ_WINDOW = 256;

interface Neighbour {
  /** Cost given by the device (linkUp/linkCost: measured RTT-based, or 1). */
  baseCost: number;
  /** We received a HELLO from it (and its hold time has not run out). */
  heard: boolean;
  /** Its HELLOs list us: the link works both ways. */
  symmetric: boolean;
  /** Last valid message from it (hold timer). */
  lastHeard: number;
  /** Sequence number of our last HELLO to it. */
  txSeq: number;
  /** Sequence number of its last HELLO to us. */
  rxSeq: number | undefined;
  /** Its HELLO interval, as it announced. */
  intervalMs: number;
  /** When its next HELLO counts as missed (Infinity when not expecting one). */
  expectBy: number;
  /** Misses already charged by the timer since its last HELLO (not charged again from the seq gap). */
  missed: number;
  /** How well we hear it: EWMA of HELLOs received vs expected, 0..1. */
  qIn: number;
  /** How well it hears us, as it reported in its HELLO, 0..1. */
  qOut: number;
  /** Unrounded cost at the last advertisement decision (hysteresis reference). */
  advertisedRaw: number;
  /** Cost in our advertisement (and in our own SPF). */
  advertised: number;
  /** It runs MPR flooding (its HELLO flag); undefined before its first HELLO. */
  runsMpr: boolean | undefined;
  /** It selected us as one of its multipoint relays: it is our MPR selector. */
  selectsUs: boolean;
  /** Its symmetric neighbours (our 2-hop neighbourhood through it). */
  twoHop: Set<DeviceId>;
}

interface LsdbEntry {
  lsa: LsaMessage;
  expiresAt: number;
  receivedAt: number;
  /** Neighbours that sent us this instance (they have it: not sent back). */
  from: Set<DeviceId>;
  /** Relayed already (RFC 3626 §3.4.1 D_retransmitted). */
  relayed: boolean;
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
  private readonly signer: RoutingSigner;
  private readonly o: Required<LinkStateInit>;
  private readonly neighbours = new Map<DeviceId, Neighbour>();
  private readonly lsdb = new Map<DeviceId, LsdbEntry>();
  private mprs = new Set<DeviceId>();
  private mprDirty = false;
  private ownSeq = 0;
  private nextHello = 0;
  private lastHelloRound = -Infinity;
  private nextRefresh = Infinity;
  private lastOriginated = -Infinity;
  private pendingOriginate = false;
  /** The graph (lsdb or own links) changed since routes were last diffed. */
  private graphDirty = false;
  private spfCache: Map<DeviceId, ShortestPath> | undefined;
  private lastRoutes = new Map<DeviceId, string>();
  private readonly counters = {
    helloSent: 0,
    helloReceived: 0,
    helloStale: 0,
    helloMissed: 0,
    lsaOriginated: 0,
    lsaDeferred: 0,
    lsaSent: 0,
    lsaReceived: 0,
    lsaRelayed: 0,
    lsaRelayedLate: 0,
    lsaNotRelayed: 0,
    lsaDuplicate: 0,
    lsaStale: 0,
    lsdbFull: 0,
    malformed: 0,
    badSignature: 0,
    expired: 0,
    holdExpired: 0,
    mprChanged: 0,
  };

  constructor(c: RoutingComponents, init: LinkStateInit) {
    this.self = c.self;
    this.random = c.random;
    this.signer = c.signer ?? nullSigner;
    this.o = {
      helloIntervalMs: init.helloIntervalMs ?? 1000,
      neighbourHoldMs: init.neighbourHoldMs ?? 4000,
      lsaRefreshMs: init.lsaRefreshMs ?? 30000,
      lsaMaxAgeMs: init.lsaMaxAgeMs ?? 120000,
      minLsaIntervalMs: init.minLsaIntervalMs ?? 500,
      hopLimit: init.hopLimit ?? 32,
      jitter: init.jitter ?? 0.1,
      qualityScaling: Math.min(1, Math.max(0, init.qualityScaling ?? 0.1)),
      countLateHellos: init.countLateHellos ?? false,
      maxEtx: Math.max(1, init.maxEtx ?? 16),
      costHysteresis: init.costHysteresis ?? 0.2,
      mpr: init.mpr ?? false,
      maxLsdb: init.maxLsdb ?? 4096,
    };
  }

  start(now: number): RoutingAction[] {
    // Nothing to advertise until a neighbour is symmetric: the first origination comes then.
    this.nextHello = now + this.jitter(this.o.helloIntervalMs);
    return [];
  }

  linkUp(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    const old = this.neighbours.get(neighbour);
    this.neighbours.set(neighbour, {
      baseCost: validCost(cost),
      heard: false,
      symmetric: false,
      lastHeard: now,
      txSeq: 0,
      rxSeq: undefined,
      intervalMs: this.o.helloIntervalMs,
      expectBy: Infinity,
      missed: 0,
      qIn: 1,
      qOut: 1,
      advertisedRaw: 0,
      advertised: 0,
      runsMpr: undefined,
      selectsUs: false,
      twoHop: new Set(),
    });
    const actions: RoutingAction[] = [this.helloTo(neighbour, this.helloEntries())];
    // Database exchange (RFC 2328 §10, without its state machine): the new neighbour gets every
    // advertisement we hold, with its remaining lifetime.
    for (const e of this.lsdb.values()) {
      if (now >= e.expiresAt) continue;
      this.counters.lsaSent++;
      actions.push({ type: 'send', to: neighbour, message: lsaMessage(e.lsa, e, now) });
    }
    if (old?.symmetric === true) {
      this.graphDirty = true;
      this.mprDirty = true;
      actions.push(...this.updateMprs(now), ...this.requestOriginate(now));
    }
    return actions;
  }

  linkDown(neighbour: DeviceId, now: number): RoutingAction[] {
    const n = this.neighbours.get(neighbour);
    if (n === undefined) return [];
    this.neighbours.delete(neighbour);
    this.mprs.delete(neighbour);
    if (!n.symmetric) return this.recompute();
    this.graphDirty = true;
    this.mprDirty = true;
    return [...this.updateMprs(now), ...this.requestOriginate(now)];
  }

  linkCost(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    const n = this.neighbours.get(neighbour);
    if (n === undefined) return [];
    n.baseCost = validCost(cost);
    return n.symmetric && this.costMoved(n) ? this.requestOriginate(now) : [];
  }

  receive(from: DeviceId, message: ProtocolMessage, now: number): RoutingAction[] {
    const n = this.neighbours.get(from);
    if (n === undefined) {
      this.counters.malformed++;
      return [];
    }
    let hello: HelloMessage | undefined;
    let lsa: LsaMessage | undefined;
    try {
      if (message.type === LinkStateMessage.HELLO) hello = decodeHello(message.body);
      else if (message.type === LinkStateMessage.LSA) lsa = decodeLsa(message.body);
    } catch {
      // fall through: malformed
    }
    if (hello !== undefined) return this.onHello(from, n, hello, now);
    if (lsa !== undefined) {
      // Any valid message proves the neighbour alive (the hold timer waits for HELLOs otherwise).
      if (n.heard) n.lastHeard = now;
      return this.onLsa(from, n, lsa, now);
    }
    this.counters.malformed++;
    return [];
  }

  tick(now: number): RoutingAction[] {
    const actions: RoutingAction[] = [];
    if (now >= this.nextHello) actions.push(...this.helloRound(now));
    let selfChanged = false;
    for (const n of this.neighbours.values()) {
      if (!n.heard) continue;
      if (now - n.lastHeard >= this.o.neighbourHoldMs) {
        // Hold time over (RFC 3626 §7 link tuple times): no longer heard, so no longer symmetric.
        if (n.symmetric) {
          selfChanged = true;
          this.mprDirty = true;
        }
        n.heard = false;
        n.symmetric = false;
        n.selectsUs = false;
        n.twoHop.clear();
        n.expectBy = Infinity;
        this.counters.holdExpired++;
        continue;
      }
      if (this.o.countLateHellos && now >= n.expectBy) {
        // Missed HELLOs (RFC 3626 §14): each missed interval counts as a loss now; the sequence
        // gap of the next HELLO does not count it again.
        const interval = expectedInterval(n);
        let misses = 0;
        while (now >= n.expectBy && misses < 64) {
          n.expectBy += interval;
          misses++;
        }
        if (now >= n.expectBy) n.expectBy = now + interval;
        n.qIn *= (1 - this.o.qualityScaling) ** misses;
        n.missed += misses;
        this.counters.helloMissed += misses;
        if (n.symmetric && this.costMoved(n)) selfChanged = true;
      }
    }
    if (selfChanged) this.graphDirty = true;
    for (const [origin, e] of this.lsdb) {
      if (origin !== this.self && now >= e.expiresAt) {
        this.lsdb.delete(origin);
        this.counters.expired++;
        this.graphDirty = true;
      }
    }
    actions.push(...this.updateMprs(now));
    if (
      now >= this.nextRefresh ||
      (this.pendingOriginate && now >= this.lastOriginated + this.o.minLsaIntervalMs)
    )
      actions.push(...this.originate(now));
    else if (selfChanged) actions.push(...this.requestOriginate(now));
    else actions.push(...this.recompute());
    return actions;
  }

  nextDeadline(): number {
    let next = Math.min(this.nextHello, this.nextRefresh);
    if (this.pendingOriginate) next = Math.min(next, this.lastOriginated + this.o.minLsaIntervalMs);
    for (const n of this.neighbours.values()) {
      if (!n.heard) continue;
      if (this.o.countLateHellos) next = Math.min(next, n.expectBy);
      next = Math.min(next, n.lastHeard + this.o.neighbourHoldMs);
    }
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
    let selectors = 0;
    for (const n of this.neighbours.values()) if (n.symmetric && n.selectsUs) selectors++;
    return {
      protocol: this.name,
      self: this.self,
      neighbours: [...this.neighbours].map(([device, n]) => ({
        device,
        cost: roundCost(this.linkCostOf(n)),
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
      counters: {
        ...this.counters,
        lsdbSize: this.lsdb.size,
        mprs: this.mprs.size,
        mprSelectors: selectors,
      },
    };
  }

  // ---- neighbour sensing and link quality ------------------------------------------

  private jitter(interval: number): number {
    return jittered(interval, this.o.jitter, this.random);
  }

  private onHello(from: DeviceId, n: Neighbour, hello: HelloMessage, now: number): RoutingAction[] {
    const s = this.o.qualityScaling;
    if (n.rxSeq !== undefined) {
      // HELLO sequence numbers run per link, so a gap is a loss. A repeat or a number shortly
      // behind is a replay; far off either way is a new run (the neighbour's state was reset),
      // counted neither as a replay nor as losses.
      const step = (hello.seq - n.rxSeq) >>> 0;
      const behind = (n.rxSeq - hello.seq) >>> 0;
      if (step === 0 || behind <= SEQ_WINDOW) {
        this.counters.helloStale++;
        return [];
      }
      if (step <= SEQ_WINDOW) {
        const lost = Math.max(0, step - 1 - n.missed);
        n.qIn *= (1 - s) ** lost;
        this.counters.helloMissed += lost;
      }
      n.qIn = n.qIn * (1 - s) + s;
    }
    n.rxSeq = hello.seq;
    n.missed = 0;
    n.intervalMs = hello.intervalMs;
    n.expectBy = now + expectedInterval(n) * MISSED_AFTER;
    this.counters.helloReceived++;

    const wasHeard = n.heard;
    const wasSymmetric = n.symmetric;
    const wasRelayFor = this.relays(n);
    n.heard = true;
    n.lastHeard = now;
    const me = hello.neighbours.find((e) => e.id === this.self);
    n.symmetric = me !== undefined;
    if (me !== undefined) n.qOut = me.quality / 255;
    n.runsMpr = hello.mpr;
    n.selectsUs = me?.mpr === true;
    const twoHop = new Set<DeviceId>();
    for (const e of hello.neighbours) if (e.symmetric && e.id !== this.self) twoHop.add(e.id);
    if (n.symmetric !== wasSymmetric || (n.symmetric && !sameSet(twoHop, n.twoHop)))
      this.mprDirty = true;
    n.twoHop = twoHop;

    const actions: RoutingAction[] = [];
    // Answer a first HELLO at once, so the neighbour sees itself listed within one round trip.
    if (!wasHeard) actions.push(this.helloTo(from, this.helloEntries()));
    let selfChanged = false;
    if (n.symmetric !== wasSymmetric) {
      selfChanged = true;
      if (n.symmetric) {
        n.advertisedRaw = this.linkCostOf(n);
        n.advertised = roundCost(n.advertisedRaw);
      }
    } else if (n.symmetric) {
      selfChanged = this.costMoved(n);
    }
    actions.push(...this.updateMprs(now));
    // The neighbour just made us its relay: relay what it sent us before (RFC 3626 §3.4.1 applied
    // late, so an advertisement that raced the selection still floods on).
    if (!wasRelayFor && this.relays(n)) actions.push(...this.relayPending(from, now));
    if (selfChanged) {
      this.graphDirty = true;
      actions.push(...this.requestOriginate(now));
    } else {
      actions.push(...this.recompute());
    }
    return actions;
  }

  /** Link cost now: base cost × ETX (olsrd: 1 / (LQ × NLQ)), capped. */
  private linkCostOf(n: Neighbour): number {
    const delivery = Math.max(n.qIn * n.qOut, 1 / this.o.maxEtx);
    return n.baseCost / delivery;
  }

  /**
   * Hysteresis: true (and the advertised cost updated) when the cost moved by more than
   * `costHysteresis` of the cost last advertised and its rounded value changed.
   */
  private costMoved(n: Neighbour): boolean {
    const raw = this.linkCostOf(n);
    if (Math.abs(raw - n.advertisedRaw) <= this.o.costHysteresis * n.advertisedRaw) return false;
    n.advertisedRaw = raw;
    const rounded = roundCost(raw);
    if (rounded === n.advertised) return false;
    n.advertised = rounded;
    return true;
  }

  private helloEntries(): HelloEntry[] {
    const heard = [...this.neighbours].filter(([, n]) => n.heard);
    if (heard.length > MAX_ENTRIES) {
      // Symmetric neighbours first: they matter for symmetry and for 2-hop sets.
      heard.sort(([a, x], [b, y]) =>
        x.symmetric !== y.symmetric ? (x.symmetric ? -1 : 1) : a < b ? -1 : 1,
      );
      heard.length = MAX_ENTRIES;
    }
    return heard.map(([id, n]) => ({
      id,
      symmetric: n.symmetric,
      mpr: n.symmetric && this.mprs.has(id),
      quality: Math.round(n.qIn * 255),
    }));
  }

  private helloTo(neighbour: DeviceId, entries: HelloEntry[]): RoutingAction {
    const n = this.neighbours.get(neighbour) as Neighbour;
    n.txSeq = (n.txSeq + 1) >>> 0;
    this.counters.helloSent++;
    const body = encodeHello({
      seq: n.txSeq,
      intervalMs: this.o.helloIntervalMs,
      mpr: this.o.mpr,
      neighbours: entries,
    });
    return { type: 'send', to: neighbour, message: { type: LinkStateMessage.HELLO, body } };
  }

  private helloRound(now: number): RoutingAction[] {
    this.lastHelloRound = now;
    this.nextHello = now + this.jitter(this.o.helloIntervalMs);
    const entries = this.helloEntries();
    return [...this.neighbours.keys()].map((id) => this.helloTo(id, entries));
  }

  /** A triggered HELLO round (MPR set changed), at most one per quarter HELLO interval. */
  private requestHelloRound(now: number): RoutingAction[] {
    const earliest = this.lastHelloRound + this.o.helloIntervalMs / 4;
    if (now >= earliest) return this.helloRound(now);
    this.nextHello = Math.min(this.nextHello, earliest);
    return [];
  }

  // ---- multipoint relays ----------------------------------------------------------

  /** RFC 3626 §3.4.1 step 4: relay for MPR selectors; for everyone when MPR flooding is off. */
  private relays(n: Neighbour): boolean {
    return !this.o.mpr || n.runsMpr !== true || n.selectsUs;
  }

  /** Recomputes the MPR set when the neighbourhood changed; a changed set is announced at once. */
  private updateMprs(now: number): RoutingAction[] {
    if (!this.mprDirty) return [];
    this.mprDirty = false;
    if (!this.o.mpr) return [];
    const next = this.selectMprs();
    if (sameSet(next, this.mprs)) return [];
    this.mprs = next;
    this.counters.mprChanged++;
    return this.requestHelloRound(now);
  }

  /** The MPR heuristic of RFC 3626 §8.3.1 (every device has the default willingness). */
  private selectMprs(): Set<DeviceId> {
    const n1 = [...this.neighbours]
      .filter(([, n]) => n.symmetric)
      .map(([id]) => id)
      .sort();
    const inN1 = new Set(n1);
    // N2: strict 2-hop neighbours (not us, not a symmetric neighbour), and who covers them.
    const covers = new Map<DeviceId, Set<DeviceId>>();
    const n2 = new Set<DeviceId>();
    for (const y of n1) {
      const c = new Set<DeviceId>();
      for (const z of (this.neighbours.get(y) as Neighbour).twoHop) {
        if (z === this.self || inN1.has(z)) continue;
        c.add(z);
        n2.add(z);
      }
      covers.set(y, c);
    }
    const coverOf = (y: DeviceId): Set<DeviceId> => covers.get(y) as Set<DeviceId>;
    const mprs = new Set<DeviceId>();
    const uncovered = new Set(n2);
    const take = (y: DeviceId): void => {
      mprs.add(y);
      for (const z of coverOf(y)) uncovered.delete(z);
    };
    // Step 3: neighbours that are the only way to some 2-hop neighbour.
    for (const z of [...n2].sort()) {
      const via = n1.filter((y) => coverOf(y).has(z));
      if (via.length === 1) take(via[0] as DeviceId);
    }
    // Step 4: greedily, most uncovered 2-hop neighbours reached, then the higher degree D(y),
    // then the smaller id.
    while (uncovered.size > 0) {
      let best: DeviceId | undefined;
      let bestReach = 0;
      let bestDegree = -1;
      for (const y of n1) {
        if (mprs.has(y)) continue;
        let reach = 0;
        for (const z of coverOf(y)) if (uncovered.has(z)) reach++;
        const degree = coverOf(y).size;
        if (reach > bestReach || (reach > 0 && reach === bestReach && degree > bestDegree)) {
          best = y;
          bestReach = reach;
          bestDegree = degree;
        }
      }
      if (best === undefined) break;
      take(best);
    }
    // Step 5 (optimisation): drop relays whose 2-hop neighbours the others cover anyway.
    for (const y of [...mprs].sort()) {
      mprs.delete(y);
      const stillCovered = [...coverOf(y)].every((z) => [...mprs].some((m) => coverOf(m).has(z)));
      if (!stillCovered) mprs.add(y);
    }
    return mprs;
  }

  // ---- advertisements ---------------------------------------------------------------

  private onLsa(from: DeviceId, n: Neighbour, lsa: LsaMessage, now: number): RoutingAction[] {
    this.counters.lsaReceived++;
    if (lsa.origin === this.self) {
      // Our own advertisement from an earlier life: jump past its sequence number (RFC 2328 §13.4).
      // Only one we signed: a forged one could push our sequence number to its end.
      if (lsa.seq > this.ownSeq) {
        if (!this.signedByOrigin(lsa)) return [];
        this.ownSeq = lsa.seq;
        return this.requestOriginate(now);
      }
      this.counters.lsaDuplicate++;
      return [];
    }
    const known = this.lsdb.get(lsa.origin);
    if (known !== undefined && lsa.seq === known.lsa.seq) {
      this.counters.lsaDuplicate++;
      known.from.add(from);
      // A copy that came over fewer hops may raise the hop limit we relay with, never above the
      // one the origin signed (this copy is not verified: only its hop limit is used).
      const hopLimit = Math.min(lsa.hopLimit, known.lsa.originHopLimit);
      if (hopLimit > known.lsa.hopLimit) known.lsa = { ...known.lsa, hopLimit };
      // A copy from a selector we have not relayed for yet is relayed now (RFC 3626 §3.4.1 step 2).
      return !known.relayed && this.relays(n) ? this.relay(known, now) : [];
    }
    if (known !== undefined && lsa.seq < known.lsa.seq) {
      this.counters.lsaStale++;
      return [];
    }
    if (known === undefined && this.lsdb.size >= this.o.maxLsdb) {
      this.counters.lsdbFull++;
      return [];
    }
    // A newer advertisement changes the database: only one its origin signed (checked last, after
    // the cheap duplicate and staleness checks, since a verification costs ~100 µs).
    if (!this.signedByOrigin(lsa)) return [];
    const lifetime = Math.min(lsa.lifetimeMs, this.o.lsaMaxAgeMs);
    const entry: LsdbEntry = {
      lsa,
      expiresAt: now + lifetime,
      receivedAt: now,
      from: new Set([from]),
      relayed: false,
    };
    this.lsdb.set(lsa.origin, entry);
    if (known === undefined || !sameLinks(known.lsa.links, lsa.links)) this.graphDirty = true;
    const actions: RoutingAction[] = [];
    if (this.relays(n)) actions.push(...this.relay(entry, now));
    else this.counters.lsaNotRelayed++;
    actions.push(...this.recompute());
    return actions;
  }

  /** Whether the origin signed `lsa` (counted as `badSignature` when not). */
  private signedByOrigin(lsa: LsaMessage): boolean {
    if (checkClaim(this.signer, lsa.origin, lsaSignedData(lsa), lsa.claim)) return true;
    this.counters.badSignature++;
    return false;
  }

  /** Relays an installed advertisement with its hop limit decreased, to neighbours that lack it. */
  private relay(entry: LsdbEntry, now: number): RoutingAction[] {
    if (entry.lsa.hopLimit <= 1) return [];
    entry.relayed = true;
    this.counters.lsaRelayed++;
    return this.flood({ ...entry.lsa, hopLimit: entry.lsa.hopLimit - 1 }, entry, now);
  }

  /** Relays what `selector` sent us before it selected us. */
  private relayPending(selector: DeviceId, now: number): RoutingAction[] {
    const actions: RoutingAction[] = [];
    for (const [origin, e] of this.lsdb) {
      if (origin === this.self || e.relayed || !e.from.has(selector) || now >= e.expiresAt)
        continue;
      actions.push(...this.relay(e, now));
      if (e.relayed) this.counters.lsaRelayedLate++;
    }
    return actions;
  }

  /** Sends `lsa` to every neighbour but the ones it came from and its origin. */
  private flood(lsa: LsaMessage, entry: LsdbEntry, now: number): RoutingAction[] {
    const message = lsaMessage(lsa, entry, now);
    const skip = [...this.neighbours.keys()].filter(
      (id) => entry.from.has(id) || id === lsa.origin,
    );
    const to = this.neighbours.size - skip.length;
    if (to === 0) return [];
    this.counters.lsaSent += to;
    if (skip.length === 0) return [{ type: 'broadcast', message }];
    if (skip.length === 1) return [{ type: 'broadcast', message, except: skip[0] as DeviceId }];
    return [...this.neighbours.keys()]
      .filter((id) => !entry.from.has(id) && id !== lsa.origin)
      .map((id) => ({ type: 'send' as const, to: id, message }));
  }

  /** Our own advertisement now, at most once per `minLsaIntervalMs` (OSPF MinLSInterval). */
  private requestOriginate(now: number): RoutingAction[] {
    // Callers changed our own links: they count locally at once, even when the origination waits.
    this.graphDirty = true;
    if (now >= this.lastOriginated + this.o.minLsaIntervalMs) return this.originate(now);
    if (!this.pendingOriginate) this.counters.lsaDeferred++;
    this.pendingOriginate = true;
    return this.recompute();
  }

  private originate(now: number): RoutingAction[] {
    this.ownSeq = (this.ownSeq + 1) >>> 0;
    this.lastOriginated = now;
    this.pendingOriginate = false;
    this.nextRefresh = now + this.jitter(this.o.lsaRefreshMs);
    // An origination carries every link's current cost, moved past the hysteresis or not.
    for (const n of this.neighbours.values()) {
      if (!n.symmetric) continue;
      n.advertisedRaw = this.linkCostOf(n);
      const rounded = roundCost(n.advertisedRaw);
      if (rounded !== n.advertised) this.graphDirty = true;
      n.advertised = rounded;
    }
    const unsigned: LsaMessage = {
      origin: this.self,
      seq: this.ownSeq,
      originLifetimeMs: this.o.lsaMaxAgeMs,
      originHopLimit: this.o.hopLimit,
      links: this.ownLinks(),
      lifetimeMs: this.o.lsaMaxAgeMs,
      hopLimit: this.o.hopLimit,
      claim: { keys: new Uint8Array(0), signature: new Uint8Array(0) },
    };
    const lsa: LsaMessage = {
      ...unsigned,
      claim: { keys: this.signer.keys, signature: this.signer.sign(lsaSignedData(unsigned)) },
    };
    const entry: LsdbEntry = {
      lsa,
      expiresAt: now + this.o.lsaMaxAgeMs,
      receivedAt: now,
      from: new Set(),
      relayed: true,
    };
    this.lsdb.set(this.self, entry);
    this.counters.lsaOriginated++;
    return [...this.flood(lsa, entry, now), ...this.recompute()];
  }

  /** Our symmetric neighbours with their advertised costs (the cheapest 255 when there are more). */
  private ownLinks(): LsaMessage['links'] {
    const links = [...this.neighbours]
      .filter(([, n]) => n.symmetric)
      .map(([neighbour, n]) => ({ neighbour, cost: n.advertised }));
    if (links.length > MAX_ENTRIES) {
      links.sort((a, b) => a.cost - b.cost || (a.neighbour < b.neighbour ? -1 : 1));
      links.length = MAX_ENTRIES;
    }
    return links.sort((a, b) => (a.neighbour < b.neighbour ? -1 : 1));
  }

  // ---- routes -----------------------------------------------------------------------

  private paths(avoid?: ReadonlySet<DeviceId>): Map<DeviceId, ShortestPath> {
    if (this.graphDirty) this.spfCache = undefined;
    if (avoid !== undefined && avoid.size > 0) return shortestPaths(this.graph(), this.self, avoid);
    this.spfCache ??= shortestPaths(this.graph(), this.self);
    return this.spfCache;
  }

  /**
   * The graph SPF runs on: every other origin's advertisement, and our own links as they are
   * now (a change we have not advertised yet, because of MinLSInterval, counts here at once).
   */
  private graph(): Graph {
    const g = new Map<DeviceId, Map<DeviceId, number>>();
    for (const [origin, e] of this.lsdb)
      if (origin !== this.self)
        g.set(origin, new Map(e.lsa.links.map((l) => [l.neighbour, l.cost])));
    g.set(this.self, new Map(this.ownLinks().map((l) => [l.neighbour, l.cost])));
    return g;
  }

  /**
   * After the graph changed: recomputes routes and reports routesChanged, naming the
   * destinations whose route (no avoid-set) changed; with none named when only routes
   * under some avoid-set can have changed.
   */
  private recompute(): RoutingAction[] {
    if (!this.graphDirty) return [];
    this.spfCache = undefined;
    this.graphDirty = false;
    const routes = new Map<DeviceId, string>();
    for (const [d, sp] of this.paths()) routes.set(d, `${sp.cost} ${sp.path.join(' ')}`);
    const destinations: DeviceId[] = [];
    for (const [d, r] of routes) if (this.lastRoutes.get(d) !== r) destinations.push(d);
    for (const d of this.lastRoutes.keys()) if (!routes.has(d)) destinations.push(d);
    this.lastRoutes = routes;
    if (destinations.length === 0) return [{ type: 'routesChanged' }];
    return [{ type: 'routesChanged', destinations: destinations.sort() }];
  }
}

function lsaMessage(lsa: LsaMessage, entry: LsdbEntry, now: number): ProtocolMessage {
  const remaining = Math.max(0, Math.round(entry.expiresAt - now));
  return { type: LinkStateMessage.LSA, body: encodeLsa({ ...lsa, lifetimeMs: remaining }) };
}

function validCost(cost: number): number {
  return Number.isFinite(cost) && cost > 0 ? cost : 1;
}

function roundCost(raw: number): number {
  return Math.min(MAX_ADVERTISED_COST, Math.max(1, Math.round(raw)));
}

function expectedInterval(n: Neighbour): number {
  return Math.max(MIN_EXPECTED_INTERVAL_MS, n.intervalMs);
}

function sameSet<T>(a: ReadonlySet<T>, b: ReadonlySet<T>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function sameLinks(a: LsaMessage['links'], b: LsaMessage['links']): boolean {
  if (a.length !== b.length) return false;
  const m = new Map(a.map((l) => [l.neighbour, l.cost]));
  return b.every((l) => m.get(l.neighbour) === l.cost);
}
