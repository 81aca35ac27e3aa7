/**
 * The network directory: which devices exist and what they are called.
 *
 * A small flooded protocol on the device's own control channel (protocol id
 * 0): every device originates ANNOUNCE {origin, seq, hop limit, name} at
 * start, on every new link and every `refreshMs`; receivers keep the newest
 * sequence number per origin, re-flood newer announcements to all other
 * neighbours (hop limit permitting) and drop older or equal ones (duplicate
 * suppression). A new neighbour is sent every known announcement at once.
 * Entries not refreshed within `expireMs` are forgotten. Sans-I/O, like the
 * routing protocols. (Issue 4 will bind names to certificates.)
 *
 * ANNOUNCE body: 16B origin | u32 seq | u8 hop limit | u8 name length | name UTF-8.
 */
import { VmeshError } from '../errors/index.ts';
import type { RoutingAction } from '../routing/index.ts';
import { DEVICE_ID_BYTES, isDeviceId, readHexId, writeHexId } from '../wire/index.ts';
import type { DeviceId } from '../wire/index.ts';

export const DIRECTORY_PROTOCOL_ID = 0;
export const DirectoryMessage = { ANNOUNCE: 1 } as const;

export interface DirectoryOptions {
  /** @default 10000 */
  refreshMs?: number;
  /** @default 35000 */
  expireMs?: number;
  /** @default 32 */
  hopLimit?: number;
}

export interface DirectoryEntry {
  device: DeviceId;
  name: string;
  seq: number;
  seenAt: number;
}

interface Announce {
  origin: DeviceId;
  seq: number;
  hopLimit: number;
  name: string;
}

export class Directory {
  private readonly self: DeviceId;
  private readonly name: string;
  private readonly refreshMs: number;
  private readonly expireMs: number;
  private readonly hopLimit: number;
  private seq = 0;
  private nextRefresh = 0;
  private readonly entries = new Map<DeviceId, DirectoryEntry>();
  /** Counters for snapshots. */
  readonly counters = {
    announceSent: 0,
    announceReceived: 0,
    duplicate: 0,
    malformed: 0,
    expired: 0,
  };

  constructor(self: DeviceId, name: string, options: DirectoryOptions = {}) {
    this.self = self;
    this.name = name;
    this.refreshMs = options.refreshMs ?? 10000;
    this.expireMs = options.expireMs ?? 35000;
    this.hopLimit = options.hopLimit ?? 32;
    this.entries.set(self, { device: self, name, seq: 0, seenAt: 0 });
  }

  start(now: number): RoutingAction[] {
    return this.originate(now);
  }

  linkUp(neighbour: DeviceId, now: number): RoutingAction[] {
    const actions = this.originate(now);
    for (const e of this.entries.values()) {
      if (e.device === this.self || e.device === neighbour) continue;
      actions.push({
        type: 'send',
        to: neighbour,
        message: {
          type: DirectoryMessage.ANNOUNCE,
          body: encodeAnnounce({
            origin: e.device,
            seq: e.seq,
            hopLimit: this.hopLimit,
            name: e.name,
          }),
        },
      });
      this.counters.announceSent++;
    }
    return actions;
  }

  receive(from: DeviceId, type: number, body: Uint8Array, now: number): RoutingAction[] {
    if (type !== DirectoryMessage.ANNOUNCE) {
      this.counters.malformed++;
      return [];
    }
    let a: Announce;
    try {
      a = decodeAnnounce(body);
    } catch {
      this.counters.malformed++;
      return [];
    }
    this.counters.announceReceived++;
    if (a.origin === this.self) {
      this.counters.duplicate++;
      return [];
    }
    const known = this.entries.get(a.origin);
    if (known !== undefined && a.seq <= known.seq) {
      if (a.seq === known.seq) known.seenAt = Math.max(known.seenAt, now);
      this.counters.duplicate++;
      return [];
    }
    this.entries.set(a.origin, { device: a.origin, name: a.name, seq: a.seq, seenAt: now });
    if (a.hopLimit <= 1) return [];
    this.counters.announceSent++;
    return [
      {
        type: 'broadcast',
        except: from,
        message: {
          type: DirectoryMessage.ANNOUNCE,
          body: encodeAnnounce({ ...a, hopLimit: a.hopLimit - 1 }),
        },
      },
    ];
  }

  tick(now: number): RoutingAction[] {
    for (const [id, e] of this.entries) {
      if (id !== this.self && now - e.seenAt > this.expireMs) {
        this.entries.delete(id);
        this.counters.expired++;
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

  list(): DirectoryEntry[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  private originate(now: number): RoutingAction[] {
    this.seq++;
    this.nextRefresh = now + this.refreshMs;
    this.counters.announceSent++;
    return [
      {
        type: 'broadcast',
        message: {
          type: DirectoryMessage.ANNOUNCE,
          body: encodeAnnounce({
            origin: this.self,
            seq: this.seq,
            hopLimit: this.hopLimit,
            name: this.name,
          }),
        },
      },
    ];
  }
}

export function encodeAnnounce(a: Announce): Buffer {
  const name = Buffer.from(a.name, 'utf8');
  if (name.length === 0 || name.length > 64)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'name must be 1..64 bytes');
  const out = Buffer.alloc(DEVICE_ID_BYTES + 6 + name.length);
  writeHexId(out, 0, a.origin, DEVICE_ID_BYTES);
  out.writeUInt32BE(a.seq >>> 0, 16);
  out[20] = a.hopLimit;
  out[21] = name.length;
  name.copy(out, 22);
  return out;
}

export function decodeAnnounce(body: Uint8Array): Announce {
  if (body.length < 23) throw new VmeshError('VMESH_ERR_MALFORMED', 'announce too short');
  const b = Buffer.from(body.buffer, body.byteOffset, body.length);
  const nameLength = b[21] as number;
  if (nameLength === 0 || nameLength > 64 || body.length !== 22 + nameLength) {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'announce name length mismatch');
  }
  let name: string;
  try {
    name = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(22));
  } catch {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'announce name is not UTF-8');
  }
  return {
    origin: readHexId(b, 0, DEVICE_ID_BYTES),
    seq: b.readUInt32BE(16),
    hopLimit: b[20] as number,
    name,
  };
}
