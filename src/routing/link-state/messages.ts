/**
 * link-state message codecs (bodies of control envelopes, protocol id 1).
 * Pure and strict: every decoder throws VMESH_ERR_MALFORMED on overrun,
 * trailing bytes, reserved bits set or an inconsistent entry, and nothing else.
 *
 * HELLO (type 1): u32 seq | u32 hello interval ms | u8 flags | u8 n |
 *                 n x (16B neighbour | u8 link state | u8 quality)
 * LSA   (type 2): 16B origin | u32 seq | u32 origination lifetime ms | u8 origination hop limit |
 *                 u8 n | n x (16B neighbour | u32 cost) |
 *                 u32 remaining lifetime ms | u8 hop limit | claim
 *
 * The origin signs the LSA from its first byte to the end of the link list
 * (what relays must not change: origin, seq, the lifetime and hop limit it gave,
 * its links and costs), prefixed by LSA_CLAIM_CONTEXT; the claim block
 * (src/routing/signing.ts: u8 keysLen | keys | u8 sigLen | sig) carries it.
 * The remaining lifetime and hop limit change in flight and are not signed;
 * the decoder bounds them by the signed originals.
 */
import { VmeshError } from '../../errors/index.ts';
import { DEVICE_ID_BYTES, writeHexId } from '../../wire/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { Reader } from '../ids.ts';
import { claimBlock, readClaim } from '../signing.ts';
import type { Claim } from '../signing.ts';

export const LinkStateMessage = { HELLO: 1, LSA: 2 } as const;

/** Most entries one HELLO or LSA can carry (u8 count). */
export const MAX_ENTRIES = 255;

/** HELLO flags (message level). */
export const HelloFlag = {
  /** The sender selects multipoint relays (RFC 3626 §8.3) and relays only for its MPR selectors. */
  MPR: 0x01,
} as const;

/** Link state bits of one HELLO entry (RFC 3626 §6.1 link/neighbour types, reduced). */
export const LinkBit = {
  /** The sender hears us and we hear it: SYM_NEIGH. Without it the entry means "heard" (ASYM). */
  SYMMETRIC: 0x01,
  /** The sender selected this neighbour as a multipoint relay: MPR_NEIGH (requires SYMMETRIC). */
  MPR: 0x02,
} as const;

/** One neighbour listed in a HELLO. */
export interface HelloEntry {
  /** The neighbour the sender has heard. */
  id: DeviceId;
  /** The sender considers the link symmetric (the neighbour's HELLOs list the sender). */
  symmetric: boolean;
  /** The sender selected this neighbour as one of its multipoint relays. */
  mpr: boolean;
  /**
   * How well the sender hears this neighbour: its HELLO receive ratio, 0..255
   * for 0..1 (olsrd's LQ, which the neighbour reads as its NLQ).
   */
  quality: number;
}

export interface HelloMessage {
  /** Per-link HELLO sequence number (each neighbour gets its own run, so gaps mean loss). */
  seq: number;
  /** The sender's HELLO interval, ms (≥ 1), so the receiver can count missed HELLOs (RFC 3626 Htime). */
  intervalMs: number;
  /** The sender runs MPR flooding (HelloFlag.MPR). */
  mpr: boolean;
  /** Neighbours the sender has heard (unique ids). */
  neighbours: HelloEntry[];
}

export interface LsaMessage {
  origin: DeviceId;
  seq: number;
  /** Lifetime the origin gave the advertisement, ms (signed). */
  originLifetimeMs: number;
  /** Hop limit the origin gave the advertisement (signed). */
  originHopLimit: number;
  /** The origin's symmetric neighbours with the cost of the link origin → neighbour (≥ 1, unique, never the origin). */
  links: { neighbour: DeviceId; cost: number }[];
  /** Remaining lifetime, ms: decreases in flight, at most `originLifetimeMs` (not signed). */
  lifetimeMs: number;
  /** Remaining hop limit: decreases at each relay, at most `originHopLimit` (not signed). */
  hopLimit: number;
  /** The origin's signature over `lsaSignedData` (empty with the null signer). */
  claim: Claim;
}

/** Prefix of the data an origin signs for an LSA (domain separation from other claims). */
const LSA_CLAIM_CONTEXT = Buffer.from('vmesh link-state LSA v1\0', 'latin1');

function malformed(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_MALFORMED', message);
}

function tooMany(n: number): void {
  if (n > MAX_ENTRIES) throw malformed(`at most ${MAX_ENTRIES} entries`);
}

function u32(v: number): number {
  return Math.max(0, Math.min(Math.round(v), 0xffffffff)) >>> 0;
}

function u8(v: number): number {
  return Math.max(0, Math.min(Math.round(v), 0xff));
}

const HELLO_ENTRY_BYTES = DEVICE_ID_BYTES + 2;
const LSA_ENTRY_BYTES = DEVICE_ID_BYTES + 4;

export function encodeHello(m: HelloMessage): Buffer {
  tooMany(m.neighbours.length);
  const out = Buffer.alloc(10 + m.neighbours.length * HELLO_ENTRY_BYTES);
  out.writeUInt32BE(m.seq >>> 0, 0);
  out.writeUInt32BE(Math.max(1, Math.min(Math.round(m.intervalMs), 0xffffffff)) >>> 0, 4);
  out[8] = m.mpr ? HelloFlag.MPR : 0;
  out[9] = m.neighbours.length;
  let pos = 10;
  for (const e of m.neighbours) {
    writeHexId(out, pos, e.id, DEVICE_ID_BYTES);
    out[pos + DEVICE_ID_BYTES] =
      (e.symmetric ? LinkBit.SYMMETRIC : 0) | (e.symmetric && e.mpr ? LinkBit.MPR : 0);
    out[pos + DEVICE_ID_BYTES + 1] = Math.max(0, Math.min(255, Math.round(e.quality)));
    pos += HELLO_ENTRY_BYTES;
  }
  return out;
}

export function decodeHello(body: Uint8Array): HelloMessage {
  const r = new Reader(body);
  const seq = r.u32();
  const intervalMs = r.u32();
  if (intervalMs === 0) throw malformed('HELLO interval 0');
  const flags = r.u8();
  if ((flags & ~HelloFlag.MPR) !== 0) throw malformed('reserved HELLO flags set');
  const n = r.u8();
  const neighbours: HelloEntry[] = [];
  const seen = new Set<DeviceId>();
  for (let i = 0; i < n; i++) {
    const id = r.id();
    const state = r.u8();
    const quality = r.u8();
    if ((state & ~(LinkBit.SYMMETRIC | LinkBit.MPR)) !== 0) throw malformed('reserved link bits');
    if ((state & LinkBit.MPR) !== 0 && (state & LinkBit.SYMMETRIC) === 0)
      throw malformed('MPR on a link that is not symmetric');
    if (seen.has(id)) throw malformed('neighbour listed twice');
    seen.add(id);
    neighbours.push({
      id,
      symmetric: (state & LinkBit.SYMMETRIC) !== 0,
      mpr: (state & LinkBit.MPR) !== 0,
      quality,
    });
  }
  r.end();
  return { seq, intervalMs, mpr: (flags & HelloFlag.MPR) !== 0, neighbours };
}

/** The signed part of an LSA: origin .. end of the link list. */
function lsaSignedPart(m: LsaMessage): Buffer {
  tooMany(m.links.length);
  const out = Buffer.alloc(DEVICE_ID_BYTES + 10 + m.links.length * LSA_ENTRY_BYTES);
  writeHexId(out, 0, m.origin, DEVICE_ID_BYTES);
  out.writeUInt32BE(m.seq >>> 0, 16);
  out.writeUInt32BE(u32(m.originLifetimeMs), 20);
  out[24] = u8(m.originHopLimit);
  out[25] = m.links.length;
  let pos = 26;
  for (const l of m.links) {
    writeHexId(out, pos, l.neighbour, DEVICE_ID_BYTES);
    out.writeUInt32BE(
      Math.max(1, Math.min(Math.round(l.cost), 0xffffffff)) >>> 0,
      pos + DEVICE_ID_BYTES,
    );
    pos += LSA_ENTRY_BYTES;
  }
  return out;
}

/** What the origin signs for `m`: LSA_CLAIM_CONTEXT ‖ the LSA from origin to the end of its links. */
export function lsaSignedData(m: LsaMessage): Buffer {
  return Buffer.concat([LSA_CLAIM_CONTEXT, lsaSignedPart(m)]);
}

/** Encodes an LSA; the remaining lifetime and hop limit are clamped to the signed originals. */
export function encodeLsa(m: LsaMessage): Buffer {
  const signed = lsaSignedPart(m);
  const tail = Buffer.alloc(5);
  tail.writeUInt32BE(Math.min(u32(m.lifetimeMs), u32(m.originLifetimeMs)), 0);
  tail[4] = Math.min(u8(m.hopLimit), u8(m.originHopLimit));
  return Buffer.concat([signed, tail, claimBlock(m.claim)]);
}

export function decodeLsa(body: Uint8Array): LsaMessage {
  const r = new Reader(body);
  const origin = r.id();
  const seq = r.u32();
  const originLifetimeMs = r.u32();
  const originHopLimit = r.u8();
  const n = r.u8();
  const links: LsaMessage['links'] = [];
  const seen = new Set<DeviceId>();
  for (let i = 0; i < n; i++) {
    const neighbour = r.id();
    const cost = r.u32();
    if (cost === 0) throw malformed('link cost 0');
    if (neighbour === origin) throw malformed('link to itself');
    if (seen.has(neighbour)) throw malformed('neighbour listed twice');
    seen.add(neighbour);
    links.push({ neighbour, cost });
  }
  const lifetimeMs = r.u32();
  const hopLimit = r.u8();
  const claim = readClaim(r);
  r.end();
  if (lifetimeMs > originLifetimeMs) throw malformed('remaining lifetime above the original');
  if (hopLimit > originHopLimit) throw malformed('hop limit above the original');
  return { origin, seq, originLifetimeMs, originHopLimit, links, lifetimeMs, hopLimit, claim };
}
