/**
 * The network directory: which devices exist, what they are called and
 * what keys they hold — all taken from their certificates.
 *
 * A small flooded protocol on the device's own control channel (protocol id
 * 0): every device originates ANNOUNCE {seq, hop limit, certificate, claim}
 * at start, on every new link and every `refreshMs`. The certificate is
 * checked by the injected `verify` (this network's CA, validity, revocation);
 * the announcing device is the certificate's device, and it signs (seq ‖
 * certificate) so that no relay can re-announce it with another sequence
 * number (src/routing/signing.ts). Receivers keep the newest sequence number
 * per device, re-flood newer announcements to all other neighbours (hop
 * limit permitting) and drop older or equal ones. A new neighbour is sent
 * every known announcement at once. Entries not refreshed within `expireMs`
 * are forgotten; entries whose certificate no longer verifies (expired,
 * revoked) are dropped at the next tick. Sans-I/O, like the routing protocols.
 *
 * ANNOUNCE body: u32 seq | u8 hop limit | u16 certificate length |
 * certificate | claim block (origin's signature over seq ‖ certificate).
 */
import { VmeshError } from '../errors/index.ts';
import {
  Reader,
  checkClaim,
  claimBlock,
  encodeClaim,
  nullSigner,
  readClaim,
} from '../routing/index.ts';
import type { Claim, RoutingAction, RoutingSigner } from '../routing/index.ts';
import { isDeviceId } from '../wire/index.ts';
import type { DeviceId } from '../wire/index.ts';

export const DIRECTORY_PROTOCOL_ID = 0;
export const DirectoryMessage = { ANNOUNCE: 1 } as const;

/** What the directory needs to know of a verified certificate. */
export interface DirectoryCertificate {
  device: DeviceId;
  name: string;
  /** Raw X25519 public key (end-to-end handshakes use it). */
  agreementPublic: Uint8Array;
  /** May this device relay others' traffic? */
  relay: boolean;
}

export interface DirectoryOptions {
  /** @default 10000 */
  refreshMs?: number;
  /** @default 35000 */
  expireMs?: number;
  /** @default 32 */
  hopLimit?: number;
  /**
   * Most devices remembered; announcements of further devices are dropped and counted.
   * @default 10000
   */
  maxEntries?: number;
}

export interface DirectoryEntry extends DirectoryCertificate {
  seq: number;
  seenAt: number;
  /** The certificate as received (encoded). */
  certificate: Uint8Array;
}

interface Announce {
  seq: number;
  hopLimit: number;
  certificate: Uint8Array;
  claim: Claim;
}

/** An entry with the origin's signed claim, kept to relay it unchanged to new neighbours. */
type Entry = DirectoryEntry & { claim?: Claim };

export interface DirectoryInit {
  /** This device's certificate (encoded). */
  certificate: Uint8Array;
  /** Checks a certificate now; throws (any VmeshError) when it is not valid in this network. */
  verify: (certificate: Uint8Array) => DirectoryCertificate;
  signer?: RoutingSigner;
  options?: DirectoryOptions;
}

export class Directory {
  private readonly self: Entry;
  private readonly verify: (certificate: Uint8Array) => DirectoryCertificate;
  private readonly signer: RoutingSigner;
  private readonly refreshMs: number;
  private readonly expireMs: number;
  private readonly hopLimit: number;
  private readonly maxEntries: number;
  private seq = 0;
  private nextRefresh = 0;
  private readonly entries = new Map<DeviceId, Entry>();
  /** Counters for snapshots. */
  readonly counters = {
    announceSent: 0,
    announceReceived: 0,
    duplicate: 0,
    malformed: 0,
    badCertificate: 0,
    badSignature: 0,
    tableFull: 0,
    expired: 0,
    invalidated: 0,
  };

  constructor(init: DirectoryInit) {
    this.verify = init.verify;
    this.signer = init.signer ?? nullSigner;
    const o = init.options ?? {};
    this.refreshMs = o.refreshMs ?? 10000;
    this.expireMs = o.expireMs ?? 35000;
    this.hopLimit = o.hopLimit ?? 32;
    this.maxEntries = o.maxEntries ?? 10000;
    const own = init.verify(init.certificate);
    this.self = { ...own, seq: 0, seenAt: 0, certificate: init.certificate };
    this.entries.set(own.device, this.self);
  }

  start(now: number): RoutingAction[] {
    return this.originate(now);
  }

  linkUp(neighbour: DeviceId, now: number): RoutingAction[] {
    const actions = this.originate(now);
    for (const e of this.entries.values()) {
      if (e === this.self || e.device === neighbour) continue;
      actions.push({ type: 'send', to: neighbour, message: this.message(e, this.hopLimit) });
      this.counters.announceSent++;
    }
    return actions;
  }

  receive(from: DeviceId, type: number, body: Uint8Array, now: number): RoutingAction[] {
    let a: Announce;
    try {
      if (type !== DirectoryMessage.ANNOUNCE) throw new Error('unknown type');
      a = decodeAnnounce(body);
    } catch {
      this.counters.malformed++;
      return [];
    }
    this.counters.announceReceived++;
    let cert: DirectoryCertificate;
    try {
      cert = this.verify(a.certificate);
    } catch {
      this.counters.badCertificate++;
      return [];
    }
    if (cert.device === this.self.device) {
      this.counters.duplicate++;
      return [];
    }
    const known = this.entries.get(cert.device);
    if (known !== undefined && a.seq <= known.seq) {
      if (a.seq === known.seq) known.seenAt = Math.max(known.seenAt, now);
      this.counters.duplicate++;
      return [];
    }
    if (known === undefined && this.entries.size >= this.maxEntries) {
      this.counters.tableFull++;
      return [];
    }
    if (!checkClaim(this.signer, cert.device, signedPart(a.seq, a.certificate), a.claim)) {
      this.counters.badSignature++;
      return [];
    }
    const entry: Entry = {
      ...cert,
      seq: a.seq,
      seenAt: now,
      certificate: Uint8Array.from(a.certificate),
      claim: a.claim,
    };
    this.entries.set(cert.device, entry);
    if (a.hopLimit <= 1) return [];
    this.counters.announceSent++;
    return [{ type: 'broadcast', except: from, message: this.message(entry, a.hopLimit - 1) }];
  }

  tick(now: number): RoutingAction[] {
    for (const [id, e] of this.entries) {
      if (e === this.self) continue;
      if (now - e.seenAt > this.expireMs) {
        this.entries.delete(id);
        this.counters.expired++;
        continue;
      }
      try {
        this.verify(e.certificate);
      } catch {
        this.entries.delete(id);
        this.counters.invalidated++;
      }
    }
    return now >= this.nextRefresh ? this.originate(now) : [];
  }

  nextDeadline(): number {
    return this.nextRefresh;
  }

  /** Device id for a name or an id (ids are accepted as they are if known). */
  resolve(nameOrId: string): DeviceId | undefined {
    const lower = nameOrId.toLowerCase();
    if (isDeviceId(lower) && this.entries.has(lower)) return lower;
    for (const e of this.entries.values()) if (e.name === nameOrId) return e.device;
    return undefined;
  }

  nameOf(device: DeviceId): string | undefined {
    return this.entries.get(device)?.name;
  }

  /** The entry of a device (its certificate's facts), if known. */
  get(device: DeviceId): DirectoryEntry | undefined {
    const e = this.entries.get(device);
    return e === undefined ? undefined : publicEntry(e);
  }

  list(): DirectoryEntry[] {
    return [...this.entries.values()].map(publicEntry);
  }

  private message(e: Entry, hopLimit: number): { type: number; body: Buffer } {
    return {
      type: DirectoryMessage.ANNOUNCE,
      body: encodeAnnounce(e.seq, hopLimit, e.certificate, e.claim),
    };
  }

  private originate(now: number): RoutingAction[] {
    this.seq++;
    this.self.seq = this.seq;
    this.nextRefresh = now + this.refreshMs;
    this.counters.announceSent++;
    const block = encodeClaim(this.signer, signedPart(this.seq, this.self.certificate));
    return [
      {
        type: 'broadcast',
        message: {
          type: DirectoryMessage.ANNOUNCE,
          body: Buffer.concat([
            announceHead(this.seq, this.hopLimit, this.self.certificate),
            block,
          ]),
        },
      },
    ];
  }
}

function publicEntry(e: Entry): DirectoryEntry {
  const { claim: _claim, ...rest } = e;
  return rest;
}

function signedPart(seq: number, certificate: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + certificate.length);
  out.writeUInt32BE(seq >>> 0, 0);
  out.set(certificate, 4);
  return out;
}

function announceHead(seq: number, hopLimit: number, certificate: Uint8Array): Buffer {
  if (certificate.length === 0 || certificate.length > 0xffff)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'certificate must be 1..65535 bytes');
  const out = Buffer.alloc(7 + certificate.length);
  out.writeUInt32BE(seq >>> 0, 0);
  out[4] = hopLimit;
  out.writeUInt16BE(certificate.length, 5);
  out.set(certificate, 7);
  return out;
}

/** Encodes an ANNOUNCE carrying an existing claim block (relaying). */
export function encodeAnnounce(
  seq: number,
  hopLimit: number,
  certificate: Uint8Array,
  claim: Claim | undefined,
): Buffer {
  const block = claimBlock(claim ?? { keys: new Uint8Array(0), signature: new Uint8Array(0) });
  return Buffer.concat([announceHead(seq, hopLimit, certificate), block]);
}

export function decodeAnnounce(body: Uint8Array): Announce {
  const r = new Reader(body);
  const seq = r.u32();
  const hopLimit = r.u8();
  const length = r.u16();
  if (length === 0) throw new VmeshError('VMESH_ERR_MALFORMED', 'empty certificate');
  const certificate = r.bytes(length);
  const claim = readClaim(r);
  r.end();
  return { seq, hopLimit, certificate, claim };
}
