/**
 * flooding: controlled flooding. Data packets go to every neighbour but the
 * one they came from (VMs do that, with per-vconn duplicate suppression and
 * the hop limit); this control plane only learns who is reachable, so that a
 * connection can be refused quickly when a destination is unknown.
 *
 * Data structures: `neighbours` (live links, last HELLO), `seen` (bounded
 * FIFO of (origin, seq) for duplicate suppression, RFC 6621 §6-style), and
 * `table` (per origin: newest seq and the hop count heard via each
 * neighbour). The route choice is `route()`: the fewest-hop neighbour that is
 * not avoided. See README.md beside this file.
 *
 * HELLO (type 1): u32 seq.
 * ANNOUNCE (type 2): 16B origin | u32 seq | u8 origination hop limit | u8 hop limit |
 *                   u8 hops travelled | claim.
 * The origin signs (ANNOUNCE_CLAIM_CONTEXT ‖ origin ‖ seq ‖ origination hop limit), the first
 * 21 bytes; the hop limit (at most the signed one) and the hop count change in flight.
 */
import { VmeshError } from '../../errors/index.ts';
import { DEVICE_ID_BYTES, writeHexId } from '../../wire/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { Reader } from '../ids.ts';
import { checkClaim, sameClaim, nullSigner, readClaim } from '../signing.ts';
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

export const FloodingMessage = { HELLO: 1, ANNOUNCE: 2 } as const;

export interface FloodingInit {
  /**
   * Interval between HELLOs to each neighbour, ms.
   * @default 1000
   */
  helloIntervalMs?: number;
  /**
   * Each device re-announces itself this often, ms; entries expire after 3 intervals.
   * @default 10000
   */
  announceIntervalMs?: number;
  /**
   * Hop limit of announcements.
   * @default 16
   */
  hopLimit?: number;
  /**
   * Size of the duplicate-suppression cache (origin, seq pairs).
   * @default 4096
   */
  maxSeen?: number;
  /**
   * Most origins (destinations) remembered; announcements of further new origins are dropped and counted (`tableFull`).
   * @default 10000
   */
  maxOrigins?: number;
  /**
   * Probability that a device re-floods an announcement (gossip); 1 is plain flooding. The origin always sends.
   * @default 1
   */
  gossipProbability?: number;
  /**
   * Timer jitter as a fraction of the interval.
   * @default 0.1
   */
  jitter?: number;
}

export interface Announce {
  origin: DeviceId;
  seq: number;
  /** Hop limit the origin gave the announcement (signed). */
  originHopLimit: number;
  /** Remaining hop limit: decreases at each relay, at most `originHopLimit` (not signed). */
  hopLimit: number;
  /** Hops travelled (not signed: each relay vouches only for its own step). */
  hops: number;
  /** The origin's signature over `announceSignedData` (empty with the null signer). */
  claim: Claim;
}

const ANNOUNCE_CLAIM_CONTEXT = Buffer.from('vmesh flooding ANNOUNCE v1\0', 'latin1');
const SIGNED_BYTES = DEVICE_ID_BYTES + 5;

function u8(v: number): number {
  return Math.max(0, Math.min(Math.round(v), 0xff));
}

function signedPart(a: Announce): Buffer {
  const out = Buffer.alloc(SIGNED_BYTES);
  writeHexId(out, 0, a.origin, DEVICE_ID_BYTES);
  out.writeUInt32BE(a.seq >>> 0, 16);
  out[20] = u8(a.originHopLimit);
  return out;
}

/** What the origin signs: ANNOUNCE_CLAIM_CONTEXT ‖ origin ‖ seq ‖ origination hop limit. */
export function announceSignedData(a: Announce): Buffer {
  return Buffer.concat([ANNOUNCE_CLAIM_CONTEXT, signedPart(a)]);
}

/** Encodes an ANNOUNCE; the hop limit is clamped to the signed one. */
export function encodeAnnounce(a: Announce): Buffer {
  const { keys, signature } = a.claim;
  if (keys.length > 255 || signature.length > 255)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'claim too long');
  const out = Buffer.alloc(SIGNED_BYTES + 4 + keys.length + signature.length);
  signedPart(a).copy(out, 0);
  out[21] = Math.min(u8(a.hopLimit), u8(a.originHopLimit));
  out[22] = u8(a.hops);
  out[23] = keys.length;
  out.set(keys, 24);
  out[24 + keys.length] = signature.length;
  out.set(signature, 25 + keys.length);
  return out;
}

export function decodeAnnounce(body: Uint8Array): Announce {
  const r = new Reader(body);
  const origin = r.id();
  const seq = r.u32();
  const originHopLimit = r.u8();
  const hopLimit = r.u8();
  const hops = r.u8();
  const claim = readClaim(r);
  r.end();
  if (hopLimit > originHopLimit)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'hop limit above the original');
  return { origin, seq, originHopLimit, hopLimit, hops, claim };
}

export function encodeFloodHello(seq: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(seq >>> 0, 0);
  return out;
}

export function decodeFloodHello(body: Uint8Array): number {
  const r = new Reader(body);
  const seq = r.u32();
  r.end();
  return seq;
}

interface Origin {
  seq: number;
  /** neighbour -> hops to the origin via it (for the newest seq). */
  via: Map<DeviceId, number>;
  updatedAt: number;
  /** Newest announcement as received, for database exchange with new neighbours. */
  last: Announce;
}

export function flooding(init: FloodingInit = {}): RoutingProtocolFactory {
  return (components) => new Flooding(components, init);
}

class Flooding implements RoutingProtocol {
  readonly name = 'flooding';
  readonly id = 2;
  readonly mode = 'flood' as const;
  private readonly self: DeviceId;
  private readonly random: () => number;
  private readonly signer: RoutingSigner;
  private readonly o: Required<FloodingInit>;
  private readonly neighbours = new Map<
    DeviceId,
    { cost: number; lastHello: number | undefined }
  >();
  private readonly seen = new Set<string>();
  private readonly table = new Map<DeviceId, Origin>();
  private seq = 0;
  private helloSeq = 0;
  private nextHello = 0;
  private nextAnnounce = 0;
  private lastDigest = '';
  private readonly counters = {
    helloSent: 0,
    helloReceived: 0,
    announceSent: 0,
    announceReceived: 0,
    duplicate: 0,
    hopLimitDropped: 0,
    malformed: 0,
    badSignature: 0,
    tableFull: 0,
    expired: 0,
  };

  constructor(c: RoutingComponents, init: FloodingInit) {
    this.self = c.self;
    this.random = c.random;
    this.signer = c.signer ?? nullSigner;
    this.o = {
      helloIntervalMs: init.helloIntervalMs ?? 1000,
      announceIntervalMs: init.announceIntervalMs ?? 10000,
      hopLimit: init.hopLimit ?? 16,
      maxSeen: init.maxSeen ?? 4096,
      maxOrigins: init.maxOrigins ?? 10000,
      gossipProbability: init.gossipProbability ?? 1,
      jitter: init.jitter ?? 0.1,
    };
    if (!(this.o.gossipProbability >= 0 && this.o.gossipProbability <= 1)) {
      throw new VmeshError('VMESH_ERR_CONFIG', 'flooding: gossipProbability must be in [0, 1]');
    }
  }

  start(now: number): RoutingAction[] {
    this.nextHello = now + this.jitter(this.o.helloIntervalMs);
    return this.announce(now);
  }

  linkUp(neighbour: DeviceId, cost: number, now: number): RoutingAction[] {
    this.neighbours.set(neighbour, { cost, lastHello: undefined });
    const actions: RoutingAction[] = [this.helloTo(neighbour), ...this.announce(now)];
    // The new neighbour hears the newest announcement of every origin we know.
    for (const o of this.table.values()) {
      if (o.last.hopLimit <= 1) continue;
      this.counters.announceSent++;
      actions.push({
        type: 'send',
        to: neighbour,
        message: {
          type: FloodingMessage.ANNOUNCE,
          body: encodeAnnounce({ ...o.last, hopLimit: o.last.hopLimit - 1, hops: o.last.hops + 1 }),
        },
      });
    }
    return [...actions, ...this.changed()];
  }

  linkDown(neighbour: DeviceId, _now: number): RoutingAction[] {
    if (!this.neighbours.delete(neighbour)) return [];
    for (const [origin, o] of this.table) {
      o.via.delete(neighbour);
      if (o.via.size === 0) this.table.delete(origin);
    }
    return this.changed();
  }

  linkCost(neighbour: DeviceId, cost: number, _now: number): RoutingAction[] {
    const n = this.neighbours.get(neighbour);
    if (n !== undefined) n.cost = cost;
    return [];
  }

  receive(from: DeviceId, message: ProtocolMessage, now: number): RoutingAction[] {
    const n = this.neighbours.get(from);
    if (n === undefined) {
      this.counters.malformed++;
      return [];
    }
    try {
      if (message.type === FloodingMessage.HELLO) {
        decodeFloodHello(message.body);
        this.counters.helloReceived++;
        n.lastHello = now;
        return [];
      }
      if (message.type === FloodingMessage.ANNOUNCE)
        return this.onAnnounce(from, decodeAnnounce(message.body), now);
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
    for (const [origin, o] of this.table) {
      if (now - o.updatedAt > 3 * this.o.announceIntervalMs) {
        this.table.delete(origin);
        this.counters.expired++;
      }
    }
    if (now >= this.nextAnnounce) actions.push(...this.announce(now));
    return [...actions, ...this.changed()];
  }

  nextDeadline(): number {
    let next = Math.min(this.nextHello, this.nextAnnounce);
    for (const o of this.table.values())
      next = Math.min(next, o.updatedAt + 3 * this.o.announceIntervalMs + 1);
    return next;
  }

  route(destination: DeviceId, avoid?: ReadonlySet<DeviceId>): Route | undefined {
    const o = this.table.get(destination);
    if (o === undefined) return undefined;
    let best: [DeviceId, number] | undefined;
    for (const [via, hops] of o.via) {
      if (avoid?.has(via) && via !== destination) continue;
      if (!this.neighbours.has(via)) continue;
      if (best === undefined || hops < best[1] || (hops === best[1] && via < best[0]))
        best = [via, hops];
    }
    if (best === undefined) {
      // No copy came by a non-avoided neighbour, but a flood may still get there through one:
      // flooding cannot know disjoint reachability, so any live non-avoided neighbour will do.
      const other = [...this.neighbours.keys()].filter((n) => !avoid?.has(n)).sort()[0];
      if (other === undefined) return undefined;
      const hops = Math.min(...o.via.values());
      return { destination, nextHop: other, cost: hops, hops };
    }
    return { destination, nextHop: best[0], cost: best[1], hops: best[1] };
  }

  forwardingTable(avoid?: ReadonlySet<DeviceId>): Omit<ForwardingTable, 'version'> {
    const nextHops: Record<DeviceId, DeviceId> = {};
    for (const dest of this.table.keys()) {
      const r = this.route(dest, avoid);
      if (r !== undefined) nextHops[dest] = r.nextHop;
    }
    return {
      protocol: this.id,
      self: this.self,
      mode: this.mode,
      avoid: [...(avoid ?? [])].sort(),
      neighbours: [...this.neighbours.keys()].filter((n) => !avoid?.has(n)).sort(),
      nextHops,
    };
  }

  snapshot(_now: number): RoutingSnapshot {
    const routes = [];
    for (const [destination, o] of this.table) {
      const r = this.route(destination);
      if (r !== undefined) routes.push({ ...r, updatedAt: o.updatedAt });
    }
    return {
      protocol: this.name,
      self: this.self,
      neighbours: [...this.neighbours].map(([device, n]) => ({
        device,
        cost: n.cost,
        state: n.lastHello === undefined ? 'link-up' : 'heard',
      })),
      routes,
      counters: { ...this.counters, seen: this.seen.size },
    };
  }

  private jitter(interval: number): number {
    return jittered(interval, this.o.jitter, this.random);
  }

  // ---- internals --------------------------------------------------------------------

  private onAnnounce(from: DeviceId, a: Announce, now: number): RoutingAction[] {
    this.counters.announceReceived++;
    if (a.origin === this.self) {
      this.counters.duplicate++;
      return [];
    }
    const hops = a.hops + 1;
    const known = this.table.get(a.origin);
    if (known === undefined && this.table.size >= this.o.maxOrigins) {
      this.counters.tableFull++;
      return [];
    }
    // What changes the table is only taken as the origin signed it; an older announcement changes
    // nothing (counted below), and the copy we hold was checked when it came (~100 µs each).
    if (
      (known === undefined || a.seq >= known.seq) &&
      !(
        known !== undefined &&
        a.seq === known.seq &&
        a.originHopLimit === known.last.originHopLimit &&
        sameClaim(a.claim, known.last.claim)
      ) &&
      !checkClaim(this.signer, a.origin, announceSignedData(a), a.claim)
    ) {
      this.counters.badSignature++;
      return [];
    }
    if (known === undefined || a.seq > known.seq) {
      this.table.set(a.origin, {
        seq: a.seq,
        via: new Map([[from, hops]]),
        updatedAt: now,
        last: { ...a, hops },
      });
    } else if (a.seq === known.seq) {
      const had = known.via.get(from);
      if (had === undefined || hops < had) known.via.set(from, hops);
      known.updatedAt = now;
    }
    const key = `${a.origin}:${a.seq}`;
    if (this.seen.has(key) || (known !== undefined && a.seq < known.seq)) {
      this.counters.duplicate++;
      return this.changed();
    }
    this.remember(key);
    const actions: RoutingAction[] = [];
    if (a.hopLimit <= 1) this.counters.hopLimitDropped++;
    else if (this.random() < this.o.gossipProbability) {
      this.counters.announceSent++;
      actions.push({
        type: 'broadcast',
        except: from,
        message: {
          type: FloodingMessage.ANNOUNCE,
          body: encodeAnnounce({ ...a, hopLimit: a.hopLimit - 1, hops }),
        },
      });
    }
    return [...actions, ...this.changed()];
  }

  private remember(key: string): void {
    this.seen.add(key);
    if (this.seen.size > this.o.maxSeen) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }

  private announce(now: number): RoutingAction[] {
    this.seq = (this.seq + 1) >>> 0;
    this.nextAnnounce = now + this.jitter(this.o.announceIntervalMs);
    this.remember(`${this.self}:${this.seq}`);
    this.counters.announceSent++;
    return [
      {
        type: 'broadcast',
        message: {
          type: FloodingMessage.ANNOUNCE,
          body: encodeAnnounce(this.ownAnnounce()),
        },
      },
    ];
  }

  /** Our announcement for the current sequence number, signed (one signature per number). */
  private ownAnnounce(): Announce {
    const a: Announce = {
      origin: this.self,
      seq: this.seq,
      originHopLimit: this.o.hopLimit,
      hopLimit: this.o.hopLimit,
      hops: 0,
      claim: { keys: new Uint8Array(0), signature: new Uint8Array(0) },
    };
    return {
      ...a,
      claim: { keys: this.signer.keys, signature: this.signer.sign(announceSignedData(a)) },
    };
  }

  private helloTo(neighbour: DeviceId): RoutingAction {
    this.counters.helloSent++;
    return {
      type: 'send',
      to: neighbour,
      message: { type: FloodingMessage.HELLO, body: encodeFloodHello(++this.helloSeq) },
    };
  }

  private changed(): RoutingAction[] {
    const digest = JSON.stringify(
      [...this.table.keys()]
        .sort()
        .map((d) => [d, this.route(d)?.nextHop])
        .concat([[...this.neighbours.keys()].sort()]),
    );
    if (digest === this.lastDigest) return [];
    this.lastDigest = digest;
    return [{ type: 'routesChanged' }];
  }
}
