/**
 * The RoutingProtocol contract: every protocol is a pure, sans-I/O state
 * machine. The device (and the simulator, and tests) feed it events with the
 * current time `now` (milliseconds, monotonic) and carry out the actions it
 * returns. It never touches sockets, timers or the wall clock; randomness
 * (timer jitter) comes from the injected `random`.
 *
 * Control plane lives in the device (one instance per protocol per device, the
 * RIB); the data plane lives in VMs, which receive a ForwardingTable (FIB)
 * built by `forwardingTable(avoid)` and pushed by the device when routes change.
 */
import type { DeviceId } from '../wire/ids.ts';
import type { RoutingSigner } from './signing.ts';

/** A protocol control message (the device wraps it in a control envelope). */
export interface ProtocolMessage {
  /** Message type, protocol-specific, 0..255. */
  type: number;
  /** Message body, protocol-specific encoding. */
  body: Uint8Array;
}

/** What a protocol asks its driver to do. */
export type RoutingAction =
  /** Send a message to one neighbour. */
  | { type: 'send'; to: DeviceId; message: ProtocolMessage }
  /** Send a message to every current neighbour except `except`. */
  | { type: 'broadcast'; message: ProtocolMessage; except?: DeviceId }
  /**
   * The routes changed (the route-change event): the driver rebuilds and
   * pushes forwarding tables. `destinations` names the destinations whose
   * route was added, changed or removed, when the protocol knows them.
   */
  | { type: 'routesChanged'; destinations?: DeviceId[] };

/** Things a protocol instance is given when it is created. */
export interface RoutingComponents {
  /** This device. */
  self: DeviceId;
  /** Uniform random in [0, 1); seeded in the simulator and tests. */
  random: () => number;
  /**
   * Signs this device's claims and checks others' (src/routing/signing.ts).
   * Absent: `nullSigner` (no signatures; the simulator and unit tests).
   */
  signer?: RoutingSigner;
}

/** How VMs forward with a protocol's table. */
export type ForwardingMode =
  /** Each packet goes to the one next hop for its destination. */
  | 'unicast'
  /** Each packet goes to every neighbour except the one it came from (and avoided ones). */
  | 'flood'
  /**
   * Source routing (DSR): the source puts the whole path (`ForwardingTable.paths`)
   * in the packet; relays send to the next device on it, and salvage with their
   * own path when that device is unreachable.
   */
  | 'source';

/** Answer to "how do I reach D?". */
export interface Route {
  destination: DeviceId;
  /** Neighbour to send to (unicast); for flood mode, the neighbour the best copy came from. */
  nextHop: DeviceId;
  /** Path cost in the protocol's metric (link-state: sum of link costs). */
  cost: number;
  /** Hops to the destination. */
  hops: number;
  /** Full path from this device to the destination inclusive, when the protocol knows it. */
  path?: DeviceId[];
}

/**
 * Forwarding table (FIB) for VMs: plain data (structured-clone safe), built for
 * one avoid-set, versioned so a VM can tell a newer table from an older one.
 */
export interface ForwardingTable {
  /** Protocol id. */
  protocol: number;
  /** Incremented each time the device rebuilds tables for this protocol. */
  version: number;
  /** The device this table is for. */
  self: DeviceId;
  mode: ForwardingMode;
  /** The avoid-set this table honours (sorted). */
  avoid: DeviceId[];
  /** Live neighbours (not avoided), used by flood mode. */
  neighbours: DeviceId[];
  /** Destination -> next hop, honouring `avoid` (flood mode: reachable destinations). */
  nextHops: Record<DeviceId, DeviceId>;
  /** Source mode: destination -> whole path from `self` to it inclusive, honouring `avoid`. */
  paths?: Record<DeviceId, DeviceId[]>;
}

/** One line of a routing table snapshot. */
export interface RouteEntry extends Route {
  /** When the route was last confirmed, in the protocol's `now` milliseconds. */
  updatedAt: number;
}

/** A protocol's state for the control API, CLI and tests (plain data). */
export interface RoutingSnapshot {
  protocol: string;
  self: DeviceId;
  /** Neighbours the protocol considers usable (e.g. link-state: symmetric). */
  neighbours: { device: DeviceId; cost: number; state: string }[];
  routes: RouteEntry[];
  /** Protocol counters (messages in/out, duplicates, malformed, ...). */
  counters: Record<string, number>;
}

/** A routing protocol instance on one device. */
export interface RoutingProtocol {
  /** Registry name, e.g. "link-state". */
  readonly name: string;
  /** Wire protocol id, 1..255 (0 is the device's own control channel). */
  readonly id: number;
  /** How VMs forward with this protocol. */
  readonly mode: ForwardingMode;

  /** Called once before any other event. */
  start(now: number): RoutingAction[];
  /** A link to `neighbour` came up with the given cost (> 0; measured RTT-based or 1). */
  linkUp(neighbour: DeviceId, cost: number, now: number): RoutingAction[];
  /** The link to `neighbour` went down. */
  linkDown(neighbour: DeviceId, now: number): RoutingAction[];
  /** The cost of the link to `neighbour` changed. */
  linkCost(neighbour: DeviceId, cost: number, now: number): RoutingAction[];
  /**
   * A control message from neighbour `from`. Malformed, stale, duplicate or
   * replayed messages are dropped and counted (never thrown).
   */
  receive(from: DeviceId, message: ProtocolMessage, now: number): RoutingAction[];
  /** Timers: called at (or after) `nextDeadline()`. */
  tick(now: number): RoutingAction[];
  /** Absolute time of the next tick needed. */
  nextDeadline(): number;

  /**
   * Reactive protocols (AODV, DSR) set this: they know routes only after a
   * discovery, which the driver starts with `discover()` when `route()` has
   * nothing, then waits for `routesChanged`.
   */
  readonly reactive?: boolean;
  /**
   * Reactive protocols: start (or keep going) a route discovery for
   * `destination` whose intermediate devices avoid `avoid`. Rate-limited by
   * the protocol; returns no actions when a discovery is already under way.
   */
  discover?(destination: DeviceId, avoid: ReadonlySet<DeviceId>, now: number): RoutingAction[];
  /**
   * Data for `destination` (with this avoid-set) is flowing through this
   * device: reactive protocols refresh the route's lifetime (AODV §6.2) and
   * start a discovery when the route is gone. Proactive protocols may omit it.
   */
  routeInUse?(destination: DeviceId, avoid: ReadonlySet<DeviceId>, now: number): RoutingAction[];

  /** Route to `destination` whose intermediate devices avoid `avoid`, if any. */
  route(destination: DeviceId, avoid?: ReadonlySet<DeviceId>): Route | undefined;
  /** Forwarding table for VMs honouring `avoid` (version is set by the caller). */
  forwardingTable(avoid?: ReadonlySet<DeviceId>): Omit<ForwardingTable, 'version'>;
  /** Plain-data snapshot of the protocol's state. */
  snapshot(now: number): RoutingSnapshot;
}

/** A protocol factory: options bound, components injected (js-libp2p style). */
export type RoutingProtocolFactory = (components: RoutingComponents) => RoutingProtocol;

/** Registry entry. */
export interface ProtocolDescriptor {
  name: string;
  id: number;
  /** One-line description for `vmesh --help` and docs. */
  summary: string;
  create: RoutingProtocolFactory;
}
