/**
 * link-state message codecs (bodies of control envelopes, protocol id 1).
 *
 * HELLO (type 1): u32 seq | u8 n | n x 16B ids of neighbours the sender has heard
 * LSA   (type 2): 16B origin | u32 seq | u32 lifetime ms | u8 hop limit | u8 n | n x (16B neighbour | u32 cost)
 */
import { VmeshError } from '../../errors/index.ts';
import { DEVICE_ID_BYTES, writeHexId } from '../../wire/index.ts';
import type { DeviceId } from '../../wire/index.ts';
import { Reader } from '../ids.ts';

export const LinkStateMessage = { HELLO: 1, LSA: 2 } as const;

export interface HelloMessage {
  seq: number;
  heard: DeviceId[];
}

export interface LsaMessage {
  origin: DeviceId;
  seq: number;
  lifetimeMs: number;
  hopLimit: number;
  links: { neighbour: DeviceId; cost: number }[];
}

function tooMany(n: number): void {
  if (n > 255) throw new VmeshError('VMESH_ERR_MALFORMED', 'at most 255 entries');
}

export function encodeHello(m: HelloMessage): Buffer {
  tooMany(m.heard.length);
  const out = Buffer.alloc(5 + m.heard.length * DEVICE_ID_BYTES);
  out.writeUInt32BE(m.seq >>> 0, 0);
  out[4] = m.heard.length;
  m.heard.forEach((id, i) => writeHexId(out, 5 + i * DEVICE_ID_BYTES, id, DEVICE_ID_BYTES));
  return out;
}

export function decodeHello(body: Uint8Array): HelloMessage {
  const r = new Reader(body);
  const seq = r.u32();
  const n = r.u8();
  const heard: DeviceId[] = [];
  for (let i = 0; i < n; i++) heard.push(r.id());
  r.end();
  return { seq, heard };
}

export function encodeLsa(m: LsaMessage): Buffer {
  tooMany(m.links.length);
  const out = Buffer.alloc(DEVICE_ID_BYTES + 10 + m.links.length * (DEVICE_ID_BYTES + 4));
  writeHexId(out, 0, m.origin, DEVICE_ID_BYTES);
  out.writeUInt32BE(m.seq >>> 0, 16);
  out.writeUInt32BE(Math.min(m.lifetimeMs, 0xffffffff) >>> 0, 20);
  out[24] = m.hopLimit;
  out[25] = m.links.length;
  let pos = 26;
  for (const l of m.links) {
    writeHexId(out, pos, l.neighbour, DEVICE_ID_BYTES);
    out.writeUInt32BE(
      Math.max(1, Math.min(Math.round(l.cost), 0xffffffff)) >>> 0,
      pos + DEVICE_ID_BYTES,
    );
    pos += DEVICE_ID_BYTES + 4;
  }
  return out;
}

export function decodeLsa(body: Uint8Array): LsaMessage {
  const r = new Reader(body);
  const origin = r.id();
  const seq = r.u32();
  const lifetimeMs = r.u32();
  const hopLimit = r.u8();
  const n = r.u8();
  const links: LsaMessage['links'] = [];
  for (let i = 0; i < n; i++) {
    const neighbour = r.id();
    const cost = r.u32();
    if (cost === 0) throw new VmeshError('VMESH_ERR_MALFORMED', 'link cost 0');
    links.push({ neighbour, cost });
  }
  r.end();
  return { origin, seq, lifetimeMs, hopLimit, links };
}
