/**
 * Wire types: the data packet header, the control message envelope and the
 * link hello. One doc comment per field; byte layouts are in docs/wire.md and
 * in the codec files (packet.ts, control.ts).
 */
import type { ConnectionId, DeviceId } from './ids.ts';

/** Version byte of packets, control envelopes and hellos this code speaks. */
export const WIRE_VERSION = 1;

/** What a data packet carries. */
export const PacketKind = {
  /** Transport segment of a virtual connection (end-to-end payload). */
  DATA: 1,
  /** A device reports an error about a vconn to its source (payload: ErrorPayload). */
  ERROR: 2,
  /** The vconn's end-to-end Noise IK handshake (source <-> destination), before any DATA. */
  HANDSHAKE: 3,
} as const;
export type PacketKindValue = (typeof PacketKind)[keyof typeof PacketKind];

/** Header flag bits. */
export const PacketFlag = {
  /** First packets of a vconn: a device without a VM for it may spawn one. */
  SYN: 0x01,
  /** The vconn is over: relays end their VM for it after forwarding. */
  FIN: 0x02,
  /** Devices on the way append a trace record (device id + time). */
  TRACE: 0x04,
  /** A source route is present (`route`, `routeIndex`). */
  ROUTE: 0x08,
  /** An avoid list is present: relays must not forward via these devices. */
  AVOID: 0x10,
} as const;

/** Every flag bit this version defines; a decoder rejects others. */
export const KNOWN_PACKET_FLAGS = 0x1f;

/** Fixed part of the packet header, in bytes. */
export const PACKET_HEADER_BYTES = 60;
/** Bytes of one trace record: device id (16) + u32 time. */
export const TRACE_RECORD_BYTES = 20;
/** Largest number of route, avoid or trace entries (each count is one byte). */
export const MAX_LIST_ENTRIES = 255;

/** One relay's self-record in a traced packet. */
export interface TraceRecord {
  /** Device that handled the packet. */
  device: DeviceId;
  /** That device's clock in milliseconds, modulo 2^32, when it handled the packet. */
  timeMs: number;
}

/** A decoded data packet. */
export interface Packet {
  /** What the packet carries (PacketKind). */
  kind: number;
  /** Routing protocol id of the vconn: every hop forwards with this protocol. */
  protocol: number;
  /** PacketFlag bits. ROUTE/AVOID/TRACE are derived from the lists on encode. */
  flags: number;
  /** Remaining hops; a device that would forward a packet with 0 drops it. */
  hopLimit: number;
  /** Virtual connection id (same in both directions). */
  connection: ConnectionId;
  /** Device that sent this packet (the vconn's source, or its destination for replies). */
  source: DeviceId;
  /** Device the packet is for. */
  destination: DeviceId;
  /**
   * Per-direction packet number, strictly increasing, never reused (a
   * retransmission gets a new number). At most 2^53 - 1.
   */
  packetNumber: number;
  /** Source route (devices after the source, ending with the destination), if any. */
  route?: DeviceId[];
  /** Index into `route` of the next device to reach. */
  routeIndex?: number;
  /** Devices this vconn must not be relayed through, if any. */
  avoid?: DeviceId[];
  /** Trace records appended on the way, if tracing. */
  trace?: TraceRecord[];
  /** The rest of the frame: end-to-end payload (transport segment, or ErrorPayload). */
  payload: Uint8Array;
}

/** Body of an ERROR packet. */
export interface ErrorPayload {
  /** Wire number of the error (src/errors ERRORS[code].wire). */
  wire: number;
  /** Short human reason, UTF-8, at most 255 bytes. */
  reason: string;
}

/** A control message inside a CONTROL frame. */
export interface ControlEnvelope {
  /** Routing protocol id, or 0 for device-level messages (directory). */
  protocol: number;
  /** Message type, meaningful to that protocol. */
  type: number;
  /** Message body, decoded by that protocol. */
  body: Uint8Array;
}

/** Keepalive probe body: 8 bytes echoed back unchanged. */
export const PING_BODY_BYTES = 8;
