/**
 * aodv message codecs (bodies of control envelopes, protocol id 4). Layouts
 * follow RFC 3561 §5 field by field, with 16-byte device ids instead of IPv4
 * addresses, the IP TTL carried in the RREQ itself (vmesh control messages
 * have no IP header), and vmesh's extensions (§9's extension mechanism) for
 * the avoid-set and the route record. All integers are big-endian.
 *
 * RREQ (type 1): u8 flags (G 0x01, D 0x02, U 0x04) | u8 ttl | u8 hop count |
 *                u32 RREQ ID | 16B destination | u32 destination seqno |
 *                16B originator | u32 originator seqno | extensions | claim
 * RREP (type 2): u8 flags (0) | u8 hop count | 16B destination |
 *                u32 destination seqno | 16B originator | u32 lifetime ms | extensions | claim
 * RERR (type 3): u8 flags (N 0x01) | u8 n >= 1 | n x (16B destination | u32 seqno) | extensions
 * KEEPALIVE (type 4, vmesh): u8 hop count | 16B destination | u32 destination seqno |
 *                16B originator | extensions (AVOID only)
 * extensions:    u8 count | count x (u8 type | u8 n | n x 16B device id)
 *                type 1 AVOID (the discovery's avoid-set, sorted; RREQ, RREP, RERR),
 *                type 2 ROUTE_RECORD (RREQ: originator..sender; RREP: originator..destination).
 *                Each known type at most once; unknown types are skipped (RFC 3561 §9 spirit).
 * claim:         u8 keysLen | keys | u8 sigLen | sig (src/routing/signing.ts): a sequence
 *                number claim, the signature of the device it is about over
 *                SEQ_CLAIM_CONTEXT ‖ 16B device ‖ u32 seqno — in a RREQ by the originator
 *                for (originator, originator seqno), in a RREP by the destination for
 *                (destination, destination seqno). Relays carry it unchanged; hop count,
 *                TTL, lifetime, the record and the RREQ's destination seqno are not signed.
 */
import { VmeshError } from '../../errors/index.ts';
import { DEVICE_ID_BYTES, writeHexId } from '../../wire/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { Reader } from '../ids.ts';
import { readClaim } from '../signing.ts';
import type { Claim } from '../signing.ts';

/** Message types (the `type` of a ProtocolMessage). */
export const AodvMessage = { RREQ: 1, RREP: 2, RERR: 3, KEEPALIVE: 4 } as const;

/** Extension types. */
export const AodvExtension = { AVOID: 1, ROUTE_RECORD: 2 } as const;

const RREQ_G = 0x01;
const RREQ_D = 0x02;
const RREQ_U = 0x04;
const RERR_N = 0x01;

/** Route Request, RFC 3561 §5.1. */
export interface Rreq {
  /** G: the intermediate device that answers also sends a gratuitous RREP to the destination (§6.6.3). */
  gratuitous: boolean;
  /** D: only the destination may answer. */
  destinationOnly: boolean;
  /** U: the destination sequence number is unknown. */
  unknownSeq: boolean;
  /** Remaining hops this RREQ may travel (the IP TTL of §6.4); a receiver forwards it only when > 1. */
  ttl: number;
  /** Hops from the originator to the sender. */
  hopCount: number;
  /** With `originator`, identifies the RREQ for duplicate suppression. */
  rreqId: number;
  destination: DeviceId;
  /** Latest destination sequence number the originator (or a forwarder) knows. */
  destSeq: number;
  originator: DeviceId;
  /** Originator's own sequence number, for the reverse route. */
  origSeq: number;
  /** AVOID extension: devices that must not forward or answer (sorted). */
  avoid: DeviceId[];
  /** ROUTE_RECORD extension: the devices traversed, originator first, the sender last. */
  record?: DeviceId[];
  /** The originator's claim to `origSeq` (`seqClaimData(originator, origSeq)`). */
  claim: Claim;
}

/** Route Reply, RFC 3561 §5.2. */
export interface Rrep {
  /** Hops from the sender to the destination. */
  hopCount: number;
  destination: DeviceId;
  destSeq: number;
  /** The device that asked (the RREP travels back to it). */
  originator: DeviceId;
  /** How long receivers may consider the route valid, ms. */
  lifetimeMs: number;
  /** AVOID extension: the avoid-set of the discovery this answers (sorted). */
  avoid: DeviceId[];
  /** ROUTE_RECORD extension: the whole path, originator first, destination last. */
  record?: DeviceId[];
  /** The destination's claim to `destSeq` (`seqClaimData(destination, destSeq)`). */
  claim: Claim;
}

/** Route Error, RFC 3561 §5.3. */
export interface Rerr {
  /** N: a local repair is under way; upstream devices keep the route. */
  noDelete: boolean;
  /** Destinations now unreachable, with their (incremented) sequence numbers. */
  unreachable: { destination: DeviceId; seq: number }[];
  /** AVOID extension: the avoid-set the routes were discovered for (sorted). */
  avoid: DeviceId[];
}

/**
 * Keepalive (vmesh): what a data packet does to routes in RFC 3561 §6.2, sent
 * hop by hop along a route in use, since vmesh data is forwarded by VMs the
 * protocol does not see. A relay without the route answers with a RERR (§6.11 case ii).
 */
export interface Keepalive {
  /** Hops from the originator to the sender (bounded by NET_DIAMETER). */
  hopCount: number;
  destination: DeviceId;
  /** The sender's destination sequence number (a RERR answering it carries one more). */
  destSeq: number;
  /** The device using the route. */
  originator: DeviceId;
  /** AVOID extension: the avoid-set of the route (sorted). */
  avoid: DeviceId[];
}

function malformed(message: string): never {
  throw new VmeshError('VMESH_ERR_MALFORMED', message);
}

function u8(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 255) malformed(`${what} must be 0..255`);
  return v;
}

function u32(v: number): number {
  return Math.max(0, Math.min(Math.floor(v), 0xffffffff)) >>> 0;
}

const SEQ_CLAIM_CONTEXT = Buffer.from('vmesh aodv seqno v1\0', 'latin1');

/** What a device signs to claim sequence number `seq`: SEQ_CLAIM_CONTEXT ‖ 16B device ‖ u32 seq. */
export function seqClaimData(device: DeviceId, seq: number): Buffer {
  const out = Buffer.alloc(SEQ_CLAIM_CONTEXT.length + DEVICE_ID_BYTES + 4);
  SEQ_CLAIM_CONTEXT.copy(out, 0);
  writeHexId(out, SEQ_CLAIM_CONTEXT.length, device, DEVICE_ID_BYTES);
  out.writeUInt32BE(u32(seq), SEQ_CLAIM_CONTEXT.length + DEVICE_ID_BYTES);
  return out;
}

function claimBytes(c: Claim): number {
  u8(c.keys.length, 'claim keys length');
  u8(c.signature.length, 'claim signature length');
  return 2 + c.keys.length + c.signature.length;
}

function writeClaim(out: Buffer, pos: number, c: Claim): number {
  out[pos++] = c.keys.length;
  out.set(c.keys, pos);
  pos += c.keys.length;
  out[pos++] = c.signature.length;
  out.set(c.signature, pos);
  return pos + c.signature.length;
}

type Extensions = [number, DeviceId[]][];

function extensions(avoid: DeviceId[], record: DeviceId[] | undefined): Extensions {
  const out: Extensions = [];
  if (avoid.length > 0) out.push([AodvExtension.AVOID, avoid]);
  if (record !== undefined) out.push([AodvExtension.ROUTE_RECORD, record]);
  return out;
}

function extensionBytes(ext: Extensions): number {
  return 1 + ext.reduce((n, [, ids]) => n + 2 + ids.length * DEVICE_ID_BYTES, 0);
}

function writeExtensions(out: Buffer, pos: number, ext: Extensions): number {
  out[pos++] = ext.length;
  for (const [type, ids] of ext) {
    out[pos++] = type;
    out[pos++] = u8(ids.length, 'extension length');
    for (const id of ids) {
      writeHexId(out, pos, id, DEVICE_ID_BYTES);
      pos += DEVICE_ID_BYTES;
    }
  }
  return pos;
}

function readExtensions(
  r: Reader,
  allowRecord: boolean,
): { avoid: DeviceId[]; record?: DeviceId[] } {
  const count = r.u8();
  const seen = new Set<number>();
  let avoid: DeviceId[] = [];
  let record: DeviceId[] | undefined;
  for (let i = 0; i < count; i++) {
    const type = r.u8();
    const n = r.u8();
    const ids: DeviceId[] = [];
    for (let j = 0; j < n; j++) ids.push(r.id());
    if (type !== AodvExtension.AVOID && type !== AodvExtension.ROUTE_RECORD) continue;
    if (seen.has(type)) malformed(`extension ${type} repeated`);
    seen.add(type);
    if (type === AodvExtension.AVOID) avoid = ids;
    else if (allowRecord) record = ids;
    else malformed('route record not allowed here');
  }
  return record === undefined ? { avoid } : { avoid, record };
}

export function encodeRreq(m: Rreq): Buffer {
  const ext = extensions(m.avoid, m.record);
  const out = Buffer.alloc(
    7 + 2 * (DEVICE_ID_BYTES + 4) + extensionBytes(ext) + claimBytes(m.claim),
  );
  out[0] =
    (m.gratuitous ? RREQ_G : 0) | (m.destinationOnly ? RREQ_D : 0) | (m.unknownSeq ? RREQ_U : 0);
  out[1] = u8(m.ttl, 'ttl');
  out[2] = u8(m.hopCount, 'hop count');
  out.writeUInt32BE(u32(m.rreqId), 3);
  writeHexId(out, 7, m.destination, DEVICE_ID_BYTES);
  out.writeUInt32BE(u32(m.destSeq), 23);
  writeHexId(out, 27, m.originator, DEVICE_ID_BYTES);
  out.writeUInt32BE(u32(m.origSeq), 43);
  writeClaim(out, writeExtensions(out, 47, ext), m.claim);
  return out;
}

export function decodeRreq(body: Uint8Array): Rreq {
  const r = new Reader(body);
  const flags = r.u8();
  if ((flags & ~(RREQ_G | RREQ_D | RREQ_U)) !== 0) malformed('unknown RREQ flags');
  const ttl = r.u8();
  const hopCount = r.u8();
  const rreqId = r.u32();
  const destination = r.id();
  const destSeq = r.u32();
  const originator = r.id();
  const origSeq = r.u32();
  const ext = readExtensions(r, true);
  const claim = readClaim(r);
  r.end();
  return {
    gratuitous: (flags & RREQ_G) !== 0,
    destinationOnly: (flags & RREQ_D) !== 0,
    unknownSeq: (flags & RREQ_U) !== 0,
    ttl,
    hopCount,
    rreqId,
    destination,
    destSeq,
    originator,
    origSeq,
    ...ext,
    claim,
  };
}

export function encodeRrep(m: Rrep): Buffer {
  const ext = extensions(m.avoid, m.record);
  const out = Buffer.alloc(
    2 + 2 * (DEVICE_ID_BYTES + 4) + extensionBytes(ext) + claimBytes(m.claim),
  );
  out[0] = 0;
  out[1] = u8(m.hopCount, 'hop count');
  writeHexId(out, 2, m.destination, DEVICE_ID_BYTES);
  out.writeUInt32BE(u32(m.destSeq), 18);
  writeHexId(out, 22, m.originator, DEVICE_ID_BYTES);
  out.writeUInt32BE(u32(m.lifetimeMs), 38);
  writeClaim(out, writeExtensions(out, 42, ext), m.claim);
  return out;
}

export function decodeRrep(body: Uint8Array): Rrep {
  const r = new Reader(body);
  if (r.u8() !== 0) malformed('unknown RREP flags');
  const hopCount = r.u8();
  const destination = r.id();
  const destSeq = r.u32();
  const originator = r.id();
  const lifetimeMs = r.u32();
  const ext = readExtensions(r, true);
  const claim = readClaim(r);
  r.end();
  return { hopCount, destination, destSeq, originator, lifetimeMs, ...ext, claim };
}

export function encodeRerr(m: Rerr): Buffer {
  if (m.unreachable.length === 0) malformed('RERR lists no destination');
  const ext = extensions(m.avoid, undefined);
  const out = Buffer.alloc(2 + m.unreachable.length * (DEVICE_ID_BYTES + 4) + extensionBytes(ext));
  out[0] = m.noDelete ? RERR_N : 0;
  out[1] = u8(m.unreachable.length, 'destination count');
  let pos = 2;
  for (const u of m.unreachable) {
    writeHexId(out, pos, u.destination, DEVICE_ID_BYTES);
    out.writeUInt32BE(u32(u.seq), pos + DEVICE_ID_BYTES);
    pos += DEVICE_ID_BYTES + 4;
  }
  writeExtensions(out, pos, ext);
  return out;
}

export function decodeRerr(body: Uint8Array): Rerr {
  const r = new Reader(body);
  const flags = r.u8();
  if ((flags & ~RERR_N) !== 0) malformed('unknown RERR flags');
  const n = r.u8();
  if (n === 0) malformed('RERR lists no destination');
  const unreachable: Rerr['unreachable'] = [];
  for (let i = 0; i < n; i++) unreachable.push({ destination: r.id(), seq: r.u32() });
  const { avoid } = readExtensions(r, false);
  r.end();
  return { noDelete: (flags & RERR_N) !== 0, unreachable, avoid };
}

export function encodeKeepalive(m: Keepalive): Buffer {
  const ext = extensions(m.avoid, undefined);
  const out = Buffer.alloc(1 + 2 * DEVICE_ID_BYTES + 4 + extensionBytes(ext));
  out[0] = u8(m.hopCount, 'hop count');
  writeHexId(out, 1, m.destination, DEVICE_ID_BYTES);
  out.writeUInt32BE(u32(m.destSeq), 17);
  writeHexId(out, 21, m.originator, DEVICE_ID_BYTES);
  writeExtensions(out, 37, ext);
  return out;
}

export function decodeKeepalive(body: Uint8Array): Keepalive {
  const r = new Reader(body);
  const hopCount = r.u8();
  const destination = r.id();
  const destSeq = r.u32();
  const originator = r.id();
  const { avoid } = readExtensions(r, false);
  r.end();
  return { hopCount, destination, destSeq, originator, avoid };
}
