/**
 * source-route message codecs (bodies of control envelopes, protocol id 5).
 * The DSR options of RFC 4728 §6.2–§6.4, carried hop by hop between
 * neighbours instead of inside IP packets.
 *
 * RREQ (type 1): 16B initiator | 16B target | u32 id | u8 hop limit (≥ 1)
 *                | u8 n | n x 16B route record (devices passed, initiator and target excluded)
 *                | u8 m | m x 16B avoid list (vmesh extension: devices that must not forward)
 * RREP (type 2): u32 id (of the request answered) | u8 n (≥ 2) | n x 16B route, initiator..target
 *                | claim (the target's)
 * RERR (type 3): u32 id (per reporter) | 16B unreachable device | u8 n (≥ 2)
 *                | n x 16B route from the reporter (the device that lost its link to the
 *                unreachable device) to the device notified | claim (the reporter's)
 *
 * claim: u8 keysLen | keys | u8 sigLen | sig (src/routing/signing.ts). Nothing in a RREP or
 * RERR changes in flight, so the claim signs the whole body before it: a RREP is signed by the
 * target (the last device of its route) over RREP_CLAIM_CONTEXT ‖ body, a RERR by the reporter
 * (the first device of its route) over RERR_CLAIM_CONTEXT ‖ body. Requests carry no claim: each
 * device appends itself to the record, and the receiver checks that the last one is the sender.
 *
 * Every list of devices along a route must be free of repeats (a route with a loop is
 * malformed), and the devices around it may not appear in it; decoders throw VmeshError
 * MALFORMED on any violation, on overrun and on trailing bytes.
 */
import { VmeshError } from '../../errors/index.ts';
import { DEVICE_ID_BYTES, writeHexId } from '../../wire/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { Reader } from '../ids.ts';
import { claimBlock, readClaim } from '../signing.ts';
import type { Claim } from '../signing.ts';

export const SourceRouteMessage = { RREQ: 1, RREP: 2, RERR: 3 } as const;

/** Longest route (devices, both ends included) a message can carry. */
export const MAX_ROUTE_DEVICES = 255;

/** ROUTE REQUEST (RFC 4728 §6.2). */
export interface RouteRequest {
  /** The device that started the discovery (the IP source in RFC 4728). */
  initiator: DeviceId;
  /** The device a route is wanted to. */
  target: DeviceId;
  /** Identification, new for every request the initiator sends (§8.2.1). */
  id: number;
  /** Hops this copy may still travel (the IP TTL in RFC 4728); 1 is not forwarded. */
  hopLimit: number;
  /** Devices the request has passed, in order, initiator and target excluded. */
  record: DeviceId[];
  /** Devices that must not forward the request nor answer it from their cache (vmesh extension). */
  avoid: DeviceId[];
}

/** ROUTE REPLY (RFC 4728 §6.3). */
export interface RouteReply {
  /** Identification of the request answered. */
  id: number;
  /** The whole route, initiator..target inclusive; travels back hop by hop along it. */
  route: DeviceId[];
  /** The target's signature over `replySignedData` (empty with the null signer). */
  claim: Claim;
}

/** ROUTE ERROR, type NODE_UNREACHABLE (RFC 4728 §6.4, §6.4.1). */
export interface RouteError {
  /** Per-reporter identification, for duplicate suppression. */
  id: number;
  /** The device the reporter (`route[0]`) can no longer reach: the broken link is route[0]–unreachable. */
  unreachable: DeviceId;
  /** From the reporter to the device notified, inclusive; travels hop by hop along it. */
  route: DeviceId[];
  /** The reporter's signature over `errorSignedData` (empty with the null signer). */
  claim: Claim;
}

const RREP_CLAIM_CONTEXT = Buffer.from('vmesh source-route RREP v1\0', 'latin1');
const RERR_CLAIM_CONTEXT = Buffer.from('vmesh source-route RERR v1\0', 'latin1');

function malformed(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_MALFORMED', message);
}

function assertSimple(devices: readonly DeviceId[], what: string): void {
  if (new Set(devices).size !== devices.length) throw malformed(`${what} repeats a device`);
}

function checkRequest(m: RouteRequest): void {
  if (!Number.isInteger(m.hopLimit) || m.hopLimit < 1 || m.hopLimit > 255)
    throw malformed('RREQ hop limit must be 1..255');
  if (m.record.length > MAX_ROUTE_DEVICES - 2) throw malformed('RREQ route record too long');
  if (m.avoid.length > 255) throw malformed('RREQ avoid list too long');
  assertSimple([m.initiator, m.target, ...m.record], 'RREQ route record');
}

function checkRoute(route: readonly DeviceId[], what: string): void {
  if (route.length < 2 || route.length > MAX_ROUTE_DEVICES)
    throw malformed(`${what} route must hold 2..${MAX_ROUTE_DEVICES} devices`);
  assertSimple(route, `${what} route`);
}

function checkError(m: Omit<RouteError, 'claim'>): void {
  checkRoute(m.route, 'RERR');
  if (m.route.includes(m.unreachable))
    throw malformed('RERR route contains the unreachable device');
}

function writeIds(out: Buffer, pos: number, ids: readonly DeviceId[]): number {
  for (const id of ids) {
    writeHexId(out, pos, id, DEVICE_ID_BYTES);
    pos += DEVICE_ID_BYTES;
  }
  return pos;
}

function readIds(r: Reader, n: number): DeviceId[] {
  const ids: DeviceId[] = [];
  for (let i = 0; i < n; i++) ids.push(r.id());
  return ids;
}

export function encodeRouteRequest(m: RouteRequest): Buffer {
  checkRequest(m);
  const out = Buffer.alloc(
    2 * DEVICE_ID_BYTES + 7 + (m.record.length + m.avoid.length) * DEVICE_ID_BYTES,
  );
  let pos = writeIds(out, 0, [m.initiator, m.target]);
  out.writeUInt32BE(m.id >>> 0, pos);
  out[pos + 4] = m.hopLimit;
  out[pos + 5] = m.record.length;
  pos = writeIds(out, pos + 6, m.record);
  out[pos] = m.avoid.length;
  writeIds(out, pos + 1, m.avoid);
  return out;
}

export function decodeRouteRequest(body: Uint8Array): RouteRequest {
  const r = new Reader(body);
  const initiator = r.id();
  const target = r.id();
  const id = r.u32();
  const hopLimit = r.u8();
  const record = readIds(r, r.u8());
  const avoid = readIds(r, r.u8());
  r.end();
  const m = { initiator, target, id, hopLimit, record, avoid };
  checkRequest(m);
  return m;
}

/** The signed part of a RREP: id | n | route. */
function replyPart(m: Omit<RouteReply, 'claim'>): Buffer {
  checkRoute(m.route, 'RREP');
  const out = Buffer.alloc(5 + m.route.length * DEVICE_ID_BYTES);
  out.writeUInt32BE(m.id >>> 0, 0);
  out[4] = m.route.length;
  writeIds(out, 5, m.route);
  return out;
}

/** What the target signs: RREP_CLAIM_CONTEXT ‖ u32 id ‖ u8 n ‖ route. */
export function replySignedData(m: Omit<RouteReply, 'claim'>): Buffer {
  return Buffer.concat([RREP_CLAIM_CONTEXT, replyPart(m)]);
}

export function encodeRouteReply(m: RouteReply): Buffer {
  return Buffer.concat([replyPart(m), claimBlock(m.claim)]);
}

export function decodeRouteReply(body: Uint8Array): RouteReply {
  const r = new Reader(body);
  const id = r.u32();
  const route = readIds(r, r.u8());
  const claim = readClaim(r);
  r.end();
  checkRoute(route, 'RREP');
  return { id, route, claim };
}

/** The signed part of a RERR: id | unreachable | n | route. */
function errorPart(m: Omit<RouteError, 'claim'>): Buffer {
  checkError(m);
  const out = Buffer.alloc(5 + DEVICE_ID_BYTES + m.route.length * DEVICE_ID_BYTES);
  out.writeUInt32BE(m.id >>> 0, 0);
  writeHexId(out, 4, m.unreachable, DEVICE_ID_BYTES);
  out[4 + DEVICE_ID_BYTES] = m.route.length;
  writeIds(out, 5 + DEVICE_ID_BYTES, m.route);
  return out;
}

/** What the reporter signs: RERR_CLAIM_CONTEXT ‖ u32 id ‖ 16B unreachable ‖ u8 n ‖ route. */
export function errorSignedData(m: Omit<RouteError, 'claim'>): Buffer {
  return Buffer.concat([RERR_CLAIM_CONTEXT, errorPart(m)]);
}

export function encodeRouteError(m: RouteError): Buffer {
  return Buffer.concat([errorPart(m), claimBlock(m.claim)]);
}

export function decodeRouteError(body: Uint8Array): RouteError {
  const r = new Reader(body);
  const id = r.u32();
  const unreachable = r.id();
  const route = readIds(r, r.u8());
  const claim = readClaim(r);
  r.end();
  const m = { id, unreachable, route, claim };
  checkError(m);
  return m;
}
