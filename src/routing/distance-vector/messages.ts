/**
 * distance-vector message codecs (bodies of control envelopes, protocol id 3).
 *
 * RFC 8966 packs several TLVs into one packet; vmesh carries exactly one TLV
 * per control message, its TLV type being the message type. All integers are
 * big-endian. An origin is a 16-byte device id: it is both the router-id and
 * the prefix of RFC 8966 (each device originates exactly one route, to itself).
 *
 * HELLO         (type 1):  u16 seqno | u16 interval (centiseconds, >= 1)
 * IHU           (type 2):  u16 rxcost (>= 1, 0xFFFF = infinite) | u16 interval (centiseconds, >= 1)
 * UPDATE        (type 3):  u16 interval (cs, >= 1) | u16 seqno | u16 metric (0xFFFF = retraction)
 *                          | u8 hops | 16B origin | claim
 * ROUTE_REQUEST (type 4):  u8 kind = 0 (wildcard: the whole table)
 *                        | u8 kind = 1 | 16B origin
 * SEQNO_REQUEST (type 5):  u16 seqno | u8 hop count (>= 1) | 16B origin
 *
 * The claim of an UPDATE (src/routing/signing.ts: u8 keysLen | keys | u8 sigLen
 * | sig) is the origin's signature over UPDATE_CLAIM_CONTEXT ‖ origin ‖ u16
 * seqno, made when the origin issues that seqno and carried unchanged by every
 * relay; metric, hops and interval are the sender's own and not signed. A
 * retraction claims nothing (it only withdraws the sender's own route) and
 * carries an empty claim block.
 *
 * Decoders are strict: truncation, trailing bytes, zero intervals, a zero
 * rxcost or hop count, an unknown request kind and a retraction with a
 * non-empty claim are VMESH_ERR_MALFORMED.
 */
import { VmeshError } from '../../errors/index.ts';
import { DEVICE_ID_BYTES, writeHexId } from '../../wire/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { Reader } from '../ids.ts';
import { readClaim } from '../signing.ts';
import type { Claim } from '../signing.ts';

/** Message (TLV) types. */
export const DistanceVectorMessage = {
  HELLO: 1,
  IHU: 2,
  UPDATE: 3,
  ROUTE_REQUEST: 4,
  SEQNO_REQUEST: 5,
} as const;

/** The infinite metric (RFC 8966 §4.6.9): a route with it is retracted / unusable. */
export const INFINITY = 0xffff;

/** Hello (RFC 8966 §4.6.5, without flags). */
export interface HelloTlv {
  /** Hello seqno, per link, incremented for every Hello sent on it. */
  seqno: number;
  /** Interval until the sender's next Hello on this link, centiseconds (>= 1). */
  intervalCs: number;
}

/** IHU, "I Heard You" (RFC 8966 §4.6.6; no address: links are point-to-point). */
export interface IhuTlv {
  /** The sender's cost of receiving from the addressee (1..0xFFFF, 0xFFFF = infinite). */
  rxcost: number;
  /** Interval until the sender's next IHU, centiseconds (>= 1). */
  intervalCs: number;
}

/** Update (RFC 8966 §4.6.9; router-id and prefix folded into `origin`). */
export interface UpdateTlv {
  /** Interval until the sender's next periodic update, centiseconds (>= 1). */
  intervalCs: number;
  /** The origin's seqno for this route. */
  seqno: number;
  /** The sender's metric to the origin; INFINITY is a retraction. */
  metric: number;
  /** The sender's hop count to the origin (informational, vmesh addition). */
  hops: number;
  /** Destination device; also the router-id of the route's source. */
  origin: DeviceId;
  /**
   * The origin's signature over `updateSignedData(origin, seqno)` (empty with
   * the null signer, and in retractions).
   */
  claim: Claim;
}

/** Route request (RFC 8966 §4.6.10): `origin` undefined is a wildcard request. */
export interface RouteRequestTlv {
  origin?: DeviceId;
}

/** Seqno request (RFC 8966 §4.6.11). */
export interface SeqnoRequestTlv {
  /** The seqno asked for: an update with this seqno or newer satisfies the request. */
  seqno: number;
  /** Forwarded only while >= 2; decreased at each hop. */
  hopCount: number;
  origin: DeviceId;
}

function u16(r: Reader): number {
  return (r.u8() << 8) | r.u8();
}

function malformed(why: string): never {
  throw new VmeshError('VMESH_ERR_MALFORMED', why);
}

function checkU16(v: number, min: number, what: string): number {
  if (!Number.isInteger(v) || v < min || v > 0xffff) malformed(`${what} out of range`);
  return v;
}

function checkU8(v: number, min: number, what: string): number {
  if (!Number.isInteger(v) || v < min || v > 0xff) malformed(`${what} out of range`);
  return v;
}

export function encodeHello(m: HelloTlv): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt16BE(checkU16(m.seqno, 0, 'seqno'), 0);
  out.writeUInt16BE(checkU16(m.intervalCs, 1, 'interval'), 2);
  return out;
}

export function decodeHello(body: Uint8Array): HelloTlv {
  const r = new Reader(body);
  const seqno = u16(r);
  const intervalCs = u16(r);
  r.end();
  if (intervalCs === 0) malformed('hello interval 0');
  return { seqno, intervalCs };
}

export function encodeIhu(m: IhuTlv): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt16BE(checkU16(m.rxcost, 1, 'rxcost'), 0);
  out.writeUInt16BE(checkU16(m.intervalCs, 1, 'interval'), 2);
  return out;
}

export function decodeIhu(body: Uint8Array): IhuTlv {
  const r = new Reader(body);
  const rxcost = u16(r);
  const intervalCs = u16(r);
  r.end();
  if (rxcost === 0) malformed('rxcost 0');
  if (intervalCs === 0) malformed('IHU interval 0');
  return { rxcost, intervalCs };
}

const UPDATE_CLAIM_CONTEXT = Buffer.from('vmesh distance-vector UPDATE v1\0', 'latin1');

/** What an origin signs for its seqno: UPDATE_CLAIM_CONTEXT ‖ 16B origin ‖ u16 seqno. */
export function updateSignedData(origin: DeviceId, seqno: number): Buffer {
  const out = Buffer.alloc(UPDATE_CLAIM_CONTEXT.length + DEVICE_ID_BYTES + 2);
  UPDATE_CLAIM_CONTEXT.copy(out, 0);
  writeHexId(out, UPDATE_CLAIM_CONTEXT.length, origin, DEVICE_ID_BYTES);
  out.writeUInt16BE(checkU16(seqno, 0, 'seqno'), UPDATE_CLAIM_CONTEXT.length + DEVICE_ID_BYTES);
  return out;
}

export function encodeUpdate(m: UpdateTlv): Buffer {
  const { keys, signature } = m.claim;
  checkU8(keys.length, 0, 'claim keys length');
  checkU8(signature.length, 0, 'claim signature length');
  if (m.metric === INFINITY && keys.length + signature.length > 0)
    malformed('a retraction carries no claim');
  const out = Buffer.alloc(9 + DEVICE_ID_BYTES + keys.length + signature.length);
  out.writeUInt16BE(checkU16(m.intervalCs, 1, 'interval'), 0);
  out.writeUInt16BE(checkU16(m.seqno, 0, 'seqno'), 2);
  out.writeUInt16BE(checkU16(m.metric, 0, 'metric'), 4);
  out[6] = checkU8(m.hops, 0, 'hops');
  writeHexId(out, 7, m.origin, DEVICE_ID_BYTES);
  let pos = 7 + DEVICE_ID_BYTES;
  out[pos++] = keys.length;
  out.set(keys, pos);
  pos += keys.length;
  out[pos++] = signature.length;
  out.set(signature, pos);
  return out;
}

export function decodeUpdate(body: Uint8Array): UpdateTlv {
  const r = new Reader(body);
  const intervalCs = u16(r);
  const seqno = u16(r);
  const metric = u16(r);
  const hops = r.u8();
  const origin = r.id();
  const claim = readClaim(r);
  r.end();
  if (intervalCs === 0) malformed('update interval 0');
  if (metric === INFINITY && claim.keys.length + claim.signature.length > 0)
    malformed('a retraction carries no claim');
  return { intervalCs, seqno, metric, hops, origin, claim };
}

export function encodeRouteRequest(m: RouteRequestTlv): Buffer {
  if (m.origin === undefined) return Buffer.from([0]);
  const out = Buffer.alloc(1 + DEVICE_ID_BYTES);
  out[0] = 1;
  writeHexId(out, 1, m.origin, DEVICE_ID_BYTES);
  return out;
}

export function decodeRouteRequest(body: Uint8Array): RouteRequestTlv {
  const r = new Reader(body);
  const kind = r.u8();
  if (kind === 0) {
    r.end();
    return {};
  }
  if (kind !== 1) malformed(`unknown route request kind ${kind}`);
  const origin = r.id();
  r.end();
  return { origin };
}

export function encodeSeqnoRequest(m: SeqnoRequestTlv): Buffer {
  const out = Buffer.alloc(3 + DEVICE_ID_BYTES);
  out.writeUInt16BE(checkU16(m.seqno, 0, 'seqno'), 0);
  out[2] = checkU8(m.hopCount, 1, 'hop count');
  writeHexId(out, 3, m.origin, DEVICE_ID_BYTES);
  return out;
}

export function decodeSeqnoRequest(body: Uint8Array): SeqnoRequestTlv {
  const r = new Reader(body);
  const seqno = u16(r);
  const hopCount = r.u8();
  const origin = r.id();
  r.end();
  if (hopCount === 0) malformed('hop count 0');
  return { seqno, hopCount, origin };
}

// ---- 16-bit seqno arithmetic (RFC 8966 §3.2.1) -----------------------------------------

/** s1 + n modulo 2^16. */
export function seqnoPlus(s: number, n: number): number {
  return (s + n) & 0xffff;
}

/** True when `a` is newer than `b` modulo 2^16: 0 < (a - b) mod 2^16 < 2^15. */
export function seqnoNewer(a: number, b: number): boolean {
  const d = (a - b) & 0xffff;
  return d !== 0 && d < 0x8000;
}
