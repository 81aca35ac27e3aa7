/**
 * The contract between the device thread and a VM (one worker_threads Worker
 * per virtual connection per device). Everything here is plain data that
 * crosses `postMessage` (structured clone); byte arrays own their whole
 * ArrayBuffer so they can be transferred, never a view into a pooled slab.
 *
 * A VM has one of three roles (patent claim 1 (b), (g), (h)):
 * - source: carries the app's stream (transport client) and sends it toward the destination;
 * - relay: forwards the vconn's packets with the vconn's protocol, both directions;
 * - destination: carries the stream to the exposed service's TCP address (transport server).
 * Any role also forwards packets of its vconn that are not addressed to its device.
 */
import type { ErrorCode } from '../errors/index.ts';
import type { ForwardingTable } from '../routing/index.ts';
import type { ConnectionId, DeviceId } from '../wire/index.ts';
import type { E2eSpec } from './e2e.ts';

export type VmRole = 'source' | 'relay' | 'destination';

/** Tunables a VM receives at spawn. */
export interface VmOptions {
  /**
   * Hop limit put on packets the VM originates.
   * @default 32
   */
  hopLimit: number;
  /**
   * Largest transport payload per packet, bytes.
   * @default 16384
   */
  maxPayloadBytes: number;
  /**
   * Relay VM ends after this long without any packet.
   * @default 30000
   */
  relayIdleMs: number;
  /**
   * Relay VM ends this long after it has seen the vconn finish in both directions (FIN), or an ERROR.
   * @default 1000
   */
  finLingerMs: number;
  /**
   * Source/destination VM aborts with VMESH_ERR_NO_ROUTE when it had no route this long while it had data to send.
   * @default 3000
   */
  noRouteGraceMs: number;
  /**
   * Transport idle timeout (see TransportOptions.idleTimeoutMs).
   * @default 15000
   */
  idleTimeoutMs: number;
  /**
   * Duplicate-suppression memory per direction for flood-mode forwarding (packet numbers).
   * @default 4096
   */
  floodSeenPackets: number;
}

/** What a VM is spawned for. */
export interface VmSpec {
  vmId: string;
  role: VmRole;
  connection: ConnectionId;
  protocol: number;
  protocolName: string;
  self: DeviceId;
  /** The vconn's source device. */
  source: DeviceId;
  /** The vconn's destination device. */
  destination: DeviceId;
  /** Devices this vconn must not be relayed through. */
  avoid: DeviceId[];
  fib: ForwardingTable;
  options: VmOptions;
  /** Source role: the open request sent to the destination. */
  open?: OpenRequest;
  /** Destination role: exposed services, name -> "host:port". */
  services?: Record<string, string>;
  /** Destination role: service -> device names or ids allowed ("*": all); absent: all. */
  acl?: Record<string, string[]>;
  /** Source and destination roles: the end-to-end session's keys (e2e.ts). */
  e2e?: E2eSpec;
}

/** What the source asks the destination for (carried in the transport OPEN, end-to-end). */
export interface OpenRequest {
  service: string;
  app: string;
}

/** A packet crossing between the device and a VM. */
export interface PacketItem {
  /** Neighbour it came from (device -> VM) or goes to (VM -> device). */
  peer: DeviceId;
  bytes: Uint8Array;
}

/** A hop of a traced path, as seen at the source. */
export interface PathHop {
  device: DeviceId;
  /** Milliseconds since the previous hop's record (clock of each device; same machine = meaningful). */
  deltaMs?: number;
}

/** Live facts a VM reports about itself (merged into the device's VM record). */
export interface VmReport {
  packetsIn?: number;
  packetsOut?: number;
  bytesIn?: number;
  bytesOut?: number;
  dropped?: Record<string, number>;
  /** Source role: forward path (relays then destination) from the trace. */
  forwardPath?: DeviceId[];
  /** Source role: return path (relays then source) from the trace. */
  returnPath?: DeviceId[];
  /** Relay role: neighbours packets came from / went to. */
  neighbours?: DeviceId[];
  rttMs?: number;
  appBytesSent?: number;
  appBytesReceived?: number;
  /** Source mode: packets this VM salvaged with its own route (RFC 4728 §8.4.2). */
  salvaged?: number;
  /** Source: times the first hop changed and unacknowledged data was resent by the new path. */
  pathChanges?: number;
}

/** A packet a VM refused after end-to-end checks, kept for inspection (bounded). */
export interface QuarantineItem {
  reason: 'auth-failed' | 'replay';
  packetNumber: number;
  source: DeviceId;
  /** The packet's first bytes as received (header and ciphertext). */
  bytes: Uint8Array;
}

export type DeviceToVm =
  /**
   * The VM's spec. `ordinal`: how many VMs of this role the hypervisor has
   * spawned, this one included (1-based); only the test fault hook reads it.
   */
  | { t: 'init'; spec: VmSpec; ordinal?: number }
  /** Watchdog: answered by the Worker shell (worker.ts) with a pong of the same `seq`. */
  | { t: 'ping'; seq: number }
  | { t: 'packets'; items: PacketItem[] }
  /** A new forwarding table; `replace`: take it even if older (the VM's avoid-set changed). */
  | { t: 'fib'; fib: ForwardingTable; replace?: boolean }
  | { t: 'app-write'; data: Uint8Array }
  | { t: 'app-end' }
  | { t: 'app-consumed'; bytes: number }
  | { t: 'app-abort'; code: ErrorCode; message: string }
  | { t: 'stop'; code: ErrorCode; message: string };

export type VmToDevice =
  /** The Worker shell has loaded the engine module and waits for `init` (warm pool). */
  | { t: 'booted' }
  /** Watchdog answer from the Worker shell. */
  | { t: 'pong'; seq: number }
  | { t: 'ready' }
  | { t: 'send'; items: PacketItem[] }
  | { t: 'app-open' }
  | { t: 'app-data'; data: Uint8Array }
  | { t: 'app-end' }
  | { t: 'app-error'; code: ErrorCode; message: string }
  | { t: 'app-pause' }
  | { t: 'app-resume' }
  | { t: 'report'; report: VmReport }
  | { t: 'done'; reason: string; code?: ErrorCode }
  /** Source or destination: no route honours this vconn's avoid-set; the device may drop it (failover). */
  | { t: 'avoid-unreachable' }
  | ({ t: 'quarantine' } & QuarantineItem)
  | {
      t: 'log';
      level: 'debug' | 'info' | 'warn' | 'error';
      msg: string;
      fields?: Record<string, unknown>;
    };

/** The device's record of one VM (also kept after it ended, for snapshots and tests). */
export interface VmRecord {
  vmId: string;
  role: VmRole;
  connection: ConnectionId;
  protocol: string;
  source: DeviceId;
  destination: DeviceId;
  avoid: DeviceId[];
  /** Worker thread id. */
  threadId: number;
  spawnedAt: string;
  /** True when the VM was a pre-booted Worker from the warm pool, false for a cold spawn. */
  pooled: boolean;
  /** Milliseconds from `spawn()` to the VM's `ready` (absent until it is ready). */
  readyMs?: number;
  endedAt?: string;
  /**
   * Why it ended: 'closed', 'idle', 'fin', an error code, or set by the
   * hypervisor: 'crashed: ...', 'out-of-memory: ...', 'hung: no answer for N ms',
   * 'idle: no message to the device for N ms'.
   */
  endReason?: string;
  report: VmReport;
}

/** Defaults for VmOptions. */
export const DEFAULT_VM_OPTIONS: VmOptions = {
  hopLimit: 32,
  maxPayloadBytes: 16384,
  relayIdleMs: 30000,
  finLingerMs: 1000,
  noRouteGraceMs: 3000,
  idleTimeoutMs: 15000,
  floodSeenPackets: 4096,
};
