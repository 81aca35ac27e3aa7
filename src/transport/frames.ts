/**
 * Frames inside a vconn payload (a payload is one or more frames back to back).
 * All integers big-endian; offsets and packet numbers are 48-bit.
 *
 *   0x01 OPEN      u16 length | request bytes
 *   0x02 ACCEPT    (no body)
 *   0x03 STREAM    u8 flags (bit 0 FIN) | u48 offset | u32 length | data
 *   0x04 ACK       u16 delay ms | u8 n (1..32) | n x (u48 first | u48 last) ranges, highest first, inclusive
 *   0x05 MAX_DATA  u48 absolute offset the peer may send up to
 *   0x06 CLOSE     u8 code length | ASCII code | u16 reason length | UTF-8 reason
 *   0x07 PING      (no body; elicits an ACK)
 */
import { VmeshError } from '../errors/index.ts';

export const FrameKind = {
  OPEN: 1,
  ACCEPT: 2,
  STREAM: 3,
  ACK: 4,
  MAX_DATA: 5,
  CLOSE: 6,
  PING: 7,
} as const;
export const MAX_ACK_RANGES = 32;
const U48 = 2 ** 48;

export type TransportFrame =
  | { kind: 'open'; request: Uint8Array }
  | { kind: 'accept' }
  | { kind: 'stream'; offset: number; fin: boolean; data: Uint8Array }
  | { kind: 'ack'; delayMs: number; ranges: [number, number][] }
  | { kind: 'max-data'; limit: number }
  | { kind: 'close'; code: string; reason: string }
  | { kind: 'ping' };

function malformed(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_MALFORMED', `transport: ${message}`);
}

function writeU48(out: Buffer, pos: number, v: number): void {
  out.writeUInt16BE(Math.floor(v / 0x100000000), pos);
  out.writeUInt32BE(v >>> 0, pos + 2);
}

function readU48(b: Buffer, pos: number): number {
  return b.readUInt16BE(pos) * 0x100000000 + b.readUInt32BE(pos + 2);
}

/** Encoded size of a frame (for packing payloads). */
export function frameSize(f: TransportFrame): number {
  switch (f.kind) {
    case 'open':
      return 3 + f.request.length;
    case 'accept':
    case 'ping':
      return 1;
    case 'stream':
      return 12 + f.data.length;
    case 'ack':
      return 4 + 12 * f.ranges.length;
    case 'max-data':
      return 7;
    case 'close':
      return (
        4 + Buffer.byteLength(f.code, 'ascii') + Math.min(Buffer.byteLength(f.reason, 'utf8'), 1024)
      );
  }
}

export function encodeFrames(frames: TransportFrame[]): Buffer {
  const out = Buffer.allocUnsafe(frames.reduce((n, f) => n + frameSize(f), 0));
  let pos = 0;
  for (const f of frames) {
    switch (f.kind) {
      case 'open':
        if (f.request.length > 0xffff) throw malformed('open request too long');
        out[pos] = FrameKind.OPEN;
        out.writeUInt16BE(f.request.length, pos + 1);
        out.set(f.request, pos + 3);
        pos += 3 + f.request.length;
        break;
      case 'accept':
        out[pos++] = FrameKind.ACCEPT;
        break;
      case 'ping':
        out[pos++] = FrameKind.PING;
        break;
      case 'stream':
        if (f.offset + f.data.length >= U48) throw malformed('stream offset over 2^48');
        out[pos] = FrameKind.STREAM;
        out[pos + 1] = f.fin ? 1 : 0;
        writeU48(out, pos + 2, f.offset);
        out.writeUInt32BE(f.data.length, pos + 8);
        out.set(f.data, pos + 12);
        pos += 12 + f.data.length;
        break;
      case 'ack':
        if (f.ranges.length < 1 || f.ranges.length > MAX_ACK_RANGES)
          throw malformed('ack needs 1..32 ranges');
        out[pos] = FrameKind.ACK;
        out.writeUInt16BE(Math.min(0xffff, Math.max(0, Math.round(f.delayMs))), pos + 1);
        out[pos + 3] = f.ranges.length;
        pos += 4;
        for (const [first, last] of f.ranges) {
          writeU48(out, pos, first);
          writeU48(out, pos + 6, last);
          pos += 12;
        }
        break;
      case 'max-data':
        out[pos] = FrameKind.MAX_DATA;
        writeU48(out, pos + 1, Math.min(f.limit, U48 - 1));
        pos += 7;
        break;
      case 'close': {
        const code = Buffer.from(f.code, 'ascii');
        let reason = Buffer.from(f.reason, 'utf8');
        if (code.length > 255) throw malformed('close code too long');
        if (reason.length > 1024) {
          let end = 1024;
          while (end > 0 && ((reason[end] as number) & 0xc0) === 0x80) end--;
          reason = reason.subarray(0, end);
        }
        out[pos] = FrameKind.CLOSE;
        out[pos + 1] = code.length;
        code.copy(out, pos + 2);
        out.writeUInt16BE(reason.length, pos + 2 + code.length);
        reason.copy(out, pos + 4 + code.length);
        pos += 4 + code.length + reason.length;
        break;
      }
    }
  }
  return out.subarray(0, pos);
}

/** Decodes a payload into frames; throws VMESH_ERR_MALFORMED on anything wrong (and on an empty payload). */
export function decodeFrames(payload: Uint8Array): TransportFrame[] {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  if (b.length === 0) throw malformed('empty payload');
  const frames: TransportFrame[] = [];
  let pos = 0;
  const need = (n: number): void => {
    if (pos + n > b.length) throw malformed('frame truncated');
  };
  while (pos < b.length) {
    const kind = b[pos++] as number;
    switch (kind) {
      case FrameKind.OPEN: {
        need(2);
        const n = b.readUInt16BE(pos);
        need(2 + n);
        frames.push({ kind: 'open', request: b.subarray(pos + 2, pos + 2 + n) });
        pos += 2 + n;
        break;
      }
      case FrameKind.ACCEPT:
        frames.push({ kind: 'accept' });
        break;
      case FrameKind.PING:
        frames.push({ kind: 'ping' });
        break;
      case FrameKind.STREAM: {
        need(11);
        const flags = b[pos] as number;
        if ((flags & ~1) !== 0) throw malformed('unknown stream flags');
        const offset = readU48(b, pos + 1);
        const n = b.readUInt32BE(pos + 7);
        need(11 + n);
        if (offset + n >= U48) throw malformed('stream offset over 2^48');
        frames.push({
          kind: 'stream',
          offset,
          fin: (flags & 1) === 1,
          data: b.subarray(pos + 11, pos + 11 + n),
        });
        pos += 11 + n;
        break;
      }
      case FrameKind.ACK: {
        need(3);
        const delayMs = b.readUInt16BE(pos);
        const n = b[pos + 2] as number;
        if (n < 1 || n > MAX_ACK_RANGES) throw malformed('ack range count');
        need(3 + 12 * n);
        const ranges: [number, number][] = [];
        let previousFirst = Infinity;
        for (let i = 0; i < n; i++) {
          const first = readU48(b, pos + 3 + 12 * i);
          const last = readU48(b, pos + 9 + 12 * i);
          if (last < first || last >= previousFirst) throw malformed('ack ranges out of order');
          ranges.push([first, last]);
          previousFirst = first;
        }
        frames.push({ kind: 'ack', delayMs, ranges });
        pos += 3 + 12 * n;
        break;
      }
      case FrameKind.MAX_DATA:
        need(6);
        frames.push({ kind: 'max-data', limit: readU48(b, pos) });
        pos += 6;
        break;
      case FrameKind.CLOSE: {
        need(1);
        const cl = b[pos] as number;
        need(3 + cl);
        const code = b.subarray(pos + 1, pos + 1 + cl).toString('latin1');
        if (!/^[A-Z0-9_]*$/.test(code)) throw malformed('close code not ASCII upper-case');
        const rl = b.readUInt16BE(pos + 1 + cl);
        need(3 + cl + rl);
        let reason: string;
        try {
          reason = new TextDecoder('utf-8', { fatal: true }).decode(
            b.subarray(pos + 3 + cl, pos + 3 + cl + rl),
          );
        } catch {
          throw malformed('close reason not UTF-8');
        }
        frames.push({ kind: 'close', code, reason });
        pos += 3 + cl + rl;
        break;
      }
      default:
        throw malformed(`unknown frame kind ${kind}`);
    }
  }
  return frames;
}
