/**
 * Data packet codec. Layout (big-endian; docs/wire.md):
 *
 *   0 u8 version | 1 u8 kind | 2 u8 protocol | 3 u8 flags | 4 u8 hop limit
 *   5 u8 route count | 6 u8 route index | 7 u8 avoid count | 8 u8 trace count
 *   9..11 reserved (0) | 12 8B connection | 20 16B source | 36 16B destination
 *   52 u64 packet number | 60 route ids | avoid ids | trace records (16B id + u32) | payload
 *
 * Decoding is strict: any inconsistency throws VmeshError (MALFORMED or
 * UNSUPPORTED_VERSION) and nothing is read out of bounds. The payload is a
 * view into the input; everything else is copied out.
 */
import { VmeshError } from '../errors/index.ts';
import {
  CONNECTION_ID_BYTES,
  DEVICE_ID_BYTES,
  isConnectionId,
  isDeviceId,
  readHexId,
  writeHexId,
} from './ids.ts';
import type { DeviceId } from './ids.ts';
import {
  KNOWN_PACKET_FLAGS,
  MAX_LIST_ENTRIES,
  PACKET_HEADER_BYTES,
  PacketFlag,
  PacketKind,
  TRACE_RECORD_BYTES,
  WIRE_VERSION,
} from './types.ts';
import type { ErrorPayload, Packet, TraceRecord } from './types.ts';

const MAX_PACKET_NUMBER = Number.MAX_SAFE_INTEGER;

function malformed(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_MALFORMED', message);
}

/** Encodes a packet. Throws VMESH_ERR_MALFORMED on a field out of range. */
export function encodePacket(p: Packet): Buffer {
  const route = p.route ?? [];
  const avoid = p.avoid ?? [];
  const trace = p.trace ?? [];
  if (
    route.length > MAX_LIST_ENTRIES ||
    avoid.length > MAX_LIST_ENTRIES ||
    trace.length > MAX_LIST_ENTRIES
  ) {
    throw malformed(`at most ${MAX_LIST_ENTRIES} route, avoid or trace entries`);
  }
  if (p.kind !== PacketKind.DATA && p.kind !== PacketKind.ERROR && p.kind !== PacketKind.HANDSHAKE)
    throw malformed(`unknown packet kind ${p.kind}`);
  if (!Number.isInteger(p.protocol) || p.protocol < 1 || p.protocol > 255)
    throw malformed('protocol must be 1..255');
  if (!Number.isInteger(p.hopLimit) || p.hopLimit < 0 || p.hopLimit > 255)
    throw malformed('hop limit must be 0..255');
  if (
    !Number.isInteger(p.packetNumber) ||
    p.packetNumber < 0 ||
    p.packetNumber > MAX_PACKET_NUMBER
  ) {
    throw malformed('packet number must be an integer in 0..2^53-1');
  }
  if (!isConnectionId(p.connection)) throw malformed('bad connection id');
  if (!isDeviceId(p.source) || !isDeviceId(p.destination)) throw malformed('bad device id');
  const routeIndex = p.routeIndex ?? 0;
  if (
    route.length > 0 &&
    (!Number.isInteger(routeIndex) || routeIndex < 0 || routeIndex >= route.length)
  ) {
    throw malformed('route index out of range');
  }
  let flags = p.flags & (PacketFlag.SYN | PacketFlag.FIN | PacketFlag.TRACE);
  if (route.length > 0) flags |= PacketFlag.ROUTE;
  if (avoid.length > 0) flags |= PacketFlag.AVOID;
  if (trace.length > 0) flags |= PacketFlag.TRACE;
  const size =
    PACKET_HEADER_BYTES +
    (route.length + avoid.length) * DEVICE_ID_BYTES +
    trace.length * TRACE_RECORD_BYTES +
    p.payload.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = WIRE_VERSION;
  out[1] = p.kind;
  out[2] = p.protocol;
  out[3] = flags;
  out[4] = p.hopLimit;
  out[5] = route.length;
  out[6] = route.length > 0 ? routeIndex : 0;
  out[7] = avoid.length;
  out[8] = trace.length;
  out[9] = 0;
  out[10] = 0;
  out[11] = 0;
  writeHexId(out, 12, p.connection, CONNECTION_ID_BYTES);
  writeHexId(out, 20, p.source, DEVICE_ID_BYTES);
  writeHexId(out, 36, p.destination, DEVICE_ID_BYTES);
  out.writeUInt32BE(Math.floor(p.packetNumber / 0x100000000), 52);
  out.writeUInt32BE(p.packetNumber >>> 0, 56);
  let pos = PACKET_HEADER_BYTES;
  for (const id of [...route, ...avoid]) {
    if (!isDeviceId(id)) throw malformed('bad device id in route or avoid list');
    writeHexId(out, pos, id, DEVICE_ID_BYTES);
    pos += DEVICE_ID_BYTES;
  }
  for (const r of trace) {
    if (!isDeviceId(r.device)) throw malformed('bad device id in trace');
    writeHexId(out, pos, r.device, DEVICE_ID_BYTES);
    out.writeUInt32BE(r.timeMs >>> 0, pos + DEVICE_ID_BYTES);
    pos += TRACE_RECORD_BYTES;
  }
  out.set(p.payload, pos);
  return out;
}

/**
 * Length of a packet's header (everything before the payload), from the
 * counts in its first bytes; throws VMESH_ERR_MALFORMED if the packet is
 * shorter than that. Used by the link to seal the header apart from the
 * (end-to-end sealed) payload.
 */
export function packetHeaderLength(buf: Uint8Array): number {
  if (buf.length < PACKET_HEADER_BYTES)
    throw malformed(`packet shorter than its ${PACKET_HEADER_BYTES}-byte header`);
  const n =
    PACKET_HEADER_BYTES +
    ((buf[5] as number) + (buf[7] as number)) * DEVICE_ID_BYTES +
    (buf[8] as number) * TRACE_RECORD_BYTES;
  if (n > buf.length) throw malformed('packet shorter than its header lists');
  return n;
}

/** Decodes a packet. Throws VmeshError on anything malformed. */
export function decodePacket(buf: Uint8Array): Packet {
  if (buf.length < 1) throw malformed('empty packet');
  if (buf[0] !== WIRE_VERSION) {
    throw new VmeshError(
      'VMESH_ERR_UNSUPPORTED_VERSION',
      `packet version ${buf[0]} (this device speaks ${WIRE_VERSION})`,
    );
  }
  if (buf.length < PACKET_HEADER_BYTES)
    throw malformed(`packet shorter than its ${PACKET_HEADER_BYTES}-byte header`);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const kind = b[1] as number;
  const protocol = b[2] as number;
  const flags = b[3] as number;
  const hopLimit = b[4] as number;
  const routeCount = b[5] as number;
  const routeIndex = b[6] as number;
  const avoidCount = b[7] as number;
  const traceCount = b[8] as number;
  if (kind !== PacketKind.DATA && kind !== PacketKind.ERROR && kind !== PacketKind.HANDSHAKE)
    throw malformed(`unknown packet kind ${kind}`);
  if (protocol === 0) throw malformed('protocol 0 is not a routing protocol');
  if ((flags & ~KNOWN_PACKET_FLAGS) !== 0)
    throw malformed(`unknown flag bits 0x${flags.toString(16)}`);
  if (b[9] !== 0 || b[10] !== 0 || b[11] !== 0) throw malformed('reserved bytes must be zero');
  const hasRoute = (flags & PacketFlag.ROUTE) !== 0;
  if (hasRoute !== routeCount > 0) throw malformed('ROUTE flag and route count disagree');
  if (hasRoute ? routeIndex >= routeCount : routeIndex !== 0)
    throw malformed('route index out of range');
  if (((flags & PacketFlag.AVOID) !== 0) !== avoidCount > 0)
    throw malformed('AVOID flag and avoid count disagree');
  if ((flags & PacketFlag.TRACE) === 0 && traceCount > 0)
    throw malformed('trace records without the TRACE flag');
  const listBytes = (routeCount + avoidCount) * DEVICE_ID_BYTES + traceCount * TRACE_RECORD_BYTES;
  if (b.length < PACKET_HEADER_BYTES + listBytes) throw malformed('packet shorter than its lists');
  const high = b.readUInt32BE(52);
  if (high > 0x1fffff) throw malformed('packet number over 2^53-1');
  const packetNumber = high * 0x100000000 + b.readUInt32BE(56);
  const p: Packet = {
    kind,
    protocol,
    flags,
    hopLimit,
    connection: readHexId(b, 12, CONNECTION_ID_BYTES),
    source: readHexId(b, 20, DEVICE_ID_BYTES),
    destination: readHexId(b, 36, DEVICE_ID_BYTES),
    packetNumber,
    payload: b.subarray(PACKET_HEADER_BYTES + listBytes),
  };
  let pos = PACKET_HEADER_BYTES;
  const ids = (count: number): DeviceId[] => {
    const out: DeviceId[] = [];
    for (let i = 0; i < count; i++, pos += DEVICE_ID_BYTES)
      out.push(readHexId(b, pos, DEVICE_ID_BYTES));
    return out;
  };
  if (routeCount > 0) {
    p.route = ids(routeCount);
    p.routeIndex = routeIndex;
  }
  if (avoidCount > 0) p.avoid = ids(avoidCount);
  if ((flags & PacketFlag.TRACE) !== 0) {
    const trace: TraceRecord[] = [];
    for (let i = 0; i < traceCount; i++, pos += TRACE_RECORD_BYTES) {
      trace.push({
        device: readHexId(b, pos, DEVICE_ID_BYTES),
        timeMs: b.readUInt32BE(pos + DEVICE_ID_BYTES),
      });
    }
    p.trace = trace;
  }
  return p;
}

/** Encodes an ERROR packet body: u16 wire code | u8 reason length | reason UTF-8 (truncated to 255 bytes). */
export function encodeErrorPayload(e: ErrorPayload): Buffer {
  let reason = Buffer.from(e.reason, 'utf8');
  if (reason.length > 255) {
    let end = 255;
    while (end > 0 && ((reason[end] as number) & 0xc0) === 0x80) end--;
    reason = reason.subarray(0, end);
  }
  const out = Buffer.alloc(3 + reason.length);
  out.writeUInt16BE(e.wire & 0xffff, 0);
  out[2] = reason.length;
  reason.copy(out, 3);
  return out;
}

export function decodeErrorPayload(buf: Uint8Array): ErrorPayload {
  if (buf.length < 3) throw malformed('error payload too short');
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (b.length !== 3 + (b[2] as number)) throw malformed('error payload length mismatch');
  let reason: string;
  try {
    reason = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(3));
  } catch {
    throw malformed('error reason is not UTF-8');
  }
  return { wire: b.readUInt16BE(0), reason };
}
