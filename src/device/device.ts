/**
 * The device daemon: wires identity, links, the packet switch, the routing
 * protocols (one instance each: the RIB), the directory, the selection policy,
 * the hypervisor (VMs) and the local control API.
 *
 * Main structures: `protocols` (id -> RoutingProtocol), `vms` (connection id ->
 * VmHandle: one VM per vconn on this device, whatever its role), `vconns`
 * (connections this device is the source of, with protocol, reason, path) and
 * `fibs` (forwarding tables pushed to VMs). Decisions: protocol choice in
 * `connect()` via policy.ts; spawn-or-drop for unknown connections in
 * switch.ts; protocol timers are driven from `schedule()` (earliest deadline).
 */
import { mkdirSync, statSync } from 'node:fs';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { ControlServer } from '../control/index.ts';
import type { ConnectRequest, ConnectionInfo, ControlHandler } from '../control/index.ts';
import {
  identitySigner,
  loadOrCreateIdentity,
  newerRevocationList,
  readCertificateFile,
  readRevocationListFile,
  readTrustFile,
  verifyCertificate,
} from '../crypto/index.ts';
import type { Certificate, Identity, RevocationList, Trust } from '../crypto/index.ts';
import { ERRORS, VmeshError, toVmeshError } from '../errors/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import { LinkManager, tcpTransport } from '../link/index.ts';
import type { Link, Transport } from '../link/index.ts';
import { Counters, silentLogger } from '../observe/index.ts';
import type { Logger } from '../observe/index.ts';
import {
  ProtocolRegistry,
  builtinProtocols,
  costChanged,
  linkCost,
  loadProtocolModule,
} from '../routing/index.ts';
import type { ForwardingTable, RoutingAction, RoutingProtocol } from '../routing/index.ts';
import { DEFAULT_VM_OPTIONS, Hypervisor } from '../vm/index.ts';
import type {
  E2eSpec,
  QuarantineItem,
  VmHandle,
  VmOptions,
  VmRecord,
  VmRole,
  VmToDevice,
} from '../vm/index.ts';
import {
  FrameType,
  PacketKind,
  decodeControl,
  encodeControl,
  encodeErrorPayload,
  encodePacket,
} from '../wire/index.ts';
import type { ConnectionId, DeviceId, Packet } from '../wire/index.ts';
import { AppSession } from './app-session.ts';
import type { DeviceConfig } from './config.ts';
import { DIRECTORY_PROTOCOL_ID, Directory } from './directory.ts';
import { FaultInjector, faultsFromEnv } from './faults.ts';
import { FairQueue } from './scheduler.ts';
import { ForwardingTables } from './fib.ts';
import { selectProtocol } from './policy.ts';
import type { Selection } from './policy.ts';
import { Switch } from './switch.ts';

/** A connection this device is the source of. */
export interface VconnRecord {
  connection: ConnectionId;
  app: string;
  destination: DeviceId;
  destinationName: string;
  service: string;
  protocol: string;
  reason: string;
  avoid: DeviceId[];
  state: 'opening' | 'open' | 'closed' | 'failed';
  error?: { code: ErrorCode; message: string };
  openedAt: string;
  setupMs?: number;
  endedAt?: string;
  /** Devices after this one up to the destination, from the trace (by id). */
  forwardPath?: DeviceId[];
  returnPath?: DeviceId[];
  bytesSent: number;
  bytesReceived: number;
}

/** Refreshes in a row a changed link cost must be measured before the protocols hear of it. */
const COST_STREAK = 3;
/** Quarantined packets kept for inspection. */
const MAX_QUARANTINE = 64;

export interface DeviceOptions {
  config: DeviceConfig;
  logger?: Logger;
  /** Link transport; default TCP. */
  transport?: Transport;
}

export class Device implements ControlHandler {
  readonly config: DeviceConfig;
  readonly counters = new Counters();
  private readonly logger: Logger;
  private readonly transport: Transport;
  private identity!: Identity;
  private links!: LinkManager;
  private directory!: Directory;
  private switch!: Switch;
  private control!: ControlServer;
  private readonly registry = new ProtocolRegistry();
  private readonly protocols = new Map<number, RoutingProtocol>();
  private readonly hypervisor: Hypervisor;
  private readonly fibs = new ForwardingTables();
  private readonly vms = new Map<ConnectionId, VmHandle>();
  private readonly vconns = new Map<ConnectionId, VconnRecord>();
  private readonly sessions = new Map<ConnectionId, AppSession>();
  private readonly vmOptions: VmOptions;
  private timer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** Called whenever any protocol's routes change (connections waiting for a discovery). */
  private readonly routeWaiters = new Set<() => void>();
  /** Refreshes in a row a neighbour's measured cost has differed from the reported one. */
  private readonly costStreak = new Map<DeviceId, number>();
  /** Link cost last reported to the protocols, per neighbour. */
  private readonly reportedCost = new Map<DeviceId, number>();
  private readonly startedAt = performance.now();
  private stopping = false;

  constructor(options: DeviceOptions) {
    this.config = options.config;
    this.logger = options.logger ?? silentLogger;
    this.transport = options.transport ?? tcpTransport();
    this.hypervisor = new Hypervisor(
      {
        maxVms: this.config.limits.maxVms,
        vmHeapMb: this.config.limits.vmHeapMb,
        vmYoungMb: this.config.limits.vmYoungMb,
        vmStackMb: this.config.limits.vmStackMb,
        maxQueuedBytes: this.config.limits.maxQueuedBytes,
        poolSize: this.config.limits.vmPool,
        watchdogIntervalMs: this.config.limits.watchdogIntervalMs,
        watchdogTimeoutMs: this.config.limits.watchdogTimeoutMs,
        ...(this.config.limits.maxIdleMs === undefined
          ? {}
          : { maxIdleMs: this.config.limits.maxIdleMs }),
      },
      this.logger,
      this.counters,
    );
    const vm = this.config.vm;
    this.vmOptions = {
      ...DEFAULT_VM_OPTIONS,
      ...Object.fromEntries(Object.entries(vm).filter(([, v]) => v !== undefined)),
    };
    for (const d of builtinProtocols()) this.registry.register(d);
    const faults = faultsFromEnv(process.env.VMESH_TEST_FAULTS);
    if (faults !== undefined) {
      this.faults = new FaultInjector(faults, this.counters);
      this.logger.warn({ faults }, 'fault injection is on (VMESH_TEST_FAULTS): for tests only');
    }
  }

  /** Test-only tampering by this device's relay VMs (faults.ts); undefined in normal use. */
  private readonly faults: FaultInjector | undefined;

  get id(): DeviceId {
    return this.identity.deviceId;
  }

  /** Starts links, protocols and the control socket. */
  async start(): Promise<void> {
    mkdirSync(this.config.stateDir, { recursive: true, mode: 0o700 });
    this.identity = loadOrCreateIdentity(this.config.identity);
    this.loadCredentials();
    const signer = identitySigner(this.identity);
    for (const file of this.config.routing.modules) {
      for (const d of await loadProtocolModule(file, this.config.stateDir)) {
        this.registry.register(d);
        this.logger.info({ protocol: d.name, id: d.id, module: file }, 'routing module loaded');
      }
    }
    const names = this.config.protocols ?? this.registry.names();
    for (const name of names) {
      const d = this.registry.get(name);
      const p = d.create({ self: this.id, random: Math.random, signer });
      this.protocols.set(p.id, p);
    }
    this.directory = new Directory({
      certificate: this.certificate.raw,
      verify: (bytes) => {
        const c = this.verifyPeer(bytes);
        return {
          device: c.deviceId,
          name: c.name,
          agreementPublic: c.agreementPublic,
          relay: c.roles.includes('relay'),
        };
      },
      signer,
    });
    this.switch = new Switch({
      self: this.id,
      counters: this.counters,
      protocols: this.protocols,
      vms: this.vms,
      send: (to, bytes) => this.sendPacket(to, bytes),
      spawn: (role, packet) => this.spawnForPacket(role, packet),
    });
    this.links = new LinkManager({
      credentials: {
        identity: this.identity,
        certificate: this.certificate.raw,
        trust: this.trust,
        revocations: () => this.revocations,
      },
      rekeyAfterFrames: this.config.security.rekeyAfterFrames,
      transport: this.transport,
      listen: this.config.listen,
      neighbours: this.config.neighbours,
      logger: this.logger,
      counters: this.counters,
      options: { ...this.config.link, maxFrameBytes: this.config.limits.maxFrameBytes },
    });
    this.links.onLinkUp((link) => this.onLinkUp(link));
    this.links.onLinkDown((link, reason) => this.onLinkDown(link, reason));
    this.control = new ControlServer(this.config.control, this, this.logger);
    await this.control.listen();
    const now = performance.now();
    for (const p of this.protocols.values()) this.run(p, p.start(now));
    this.runDirectory(this.directory.start(now));
    await this.links.start();
    this.schedule();
    this.refreshTimer = setInterval(() => this.refresh(), this.config.routing.refreshMs);
    this.refreshTimer.unref();
    this.logger.info(
      {
        id: this.id,
        listen: this.links.listenAddress,
        control: this.config.control,
      },
      'device up',
    );
  }

  /** Stops everything: VMs, links, control socket. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.refreshTimer !== undefined) clearInterval(this.refreshTimer);
    for (const w of this.routeWaiters) w();
    for (const s of this.sessions.values())
      s.error('VMESH_ERR_SHUTDOWN', 'the device is shutting down');
    await this.hypervisor.stopAll('VMESH_ERR_SHUTDOWN', 'the device is shutting down');
    await this.links.stop();
    await this.control.close();
    this.logger.info({ id: this.id }, 'device down');
  }

  get listenAddress(): string | undefined {
    return this.links.listenAddress;
  }

  // ---- admission ---------------------------------------------------------------------------

  private trust!: Trust;
  private certificate!: Certificate;
  private revocations: RevocationList | undefined;
  private revocationsMtime = 0;
  /** Packets VMs refused after end-to-end checks (newest last, bounded). */
  private readonly quarantine: (QuarantineItem & { connection: ConnectionId; at: string })[] = [];

  /**
   * Reads the trust file, this device's certificate and the revocation list;
   * refuses to start (VMESH_ERR_CONFIG / CERT_*) unless the certificate is
   * this network's, valid now, not revoked, issued for this device's keys and
   * for its configured name.
   */
  private loadCredentials(): void {
    const s = this.config.security;
    this.trust = readTrustFile(s.trust);
    this.reloadRevocations();
    const cert = readCertificateFile(s.certificate);
    const checked = verifyCertificate(cert, this.trust, {
      now: Date.now(),
      keys: {
        signingPublic: this.identity.signingPublic,
        agreementPublic: this.identity.agreementPublic,
      },
      ...(this.revocations === undefined ? {} : { revocations: this.revocations }),
    });
    if (checked.name !== this.config.name) {
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `certificate ${s.certificate} is for "${checked.name}", but this device is configured as "${this.config.name}"`,
      );
    }
    this.certificate = checked;
  }

  /** Re-reads the revocation list when its file changed; a newer list replaces the older. */
  private reloadRevocations(): void {
    const file = this.config.security.revocations;
    if (file === undefined) return;
    let mtime: number;
    try {
      mtime = statSync(file).mtimeMs;
    } catch {
      return;
    }
    if (mtime === this.revocationsMtime) return;
    this.revocationsMtime = mtime;
    try {
      const list = readRevocationListFile(file, this.trust);
      const before = this.revocations;
      this.revocations = newerRevocationList(before, list);
      if (this.revocations !== before) {
        this.logger.info({ revoked: this.revocations.serials.length }, 'revocation list loaded');
        // Links to devices that are now revoked end at once.
        for (const link of this.links?.links() ?? []) {
          const serial = this.links.peerOf(link.remote)?.certificate.serial;
          if (serial !== undefined && this.revocations.has(serial)) {
            this.counters.inc('link.refused', { code: 'VMESH_ERR_CERT_REVOKED' });
            link.close('revoked');
          }
        }
      }
    } catch (err) {
      if (this.revocations === undefined) throw err;
      this.logger.warn({ err: toVmeshError(err).message }, 'revocation list not reloaded');
    }
  }

  /** Checks another device's certificate now (network, validity, revocation). */
  private verifyPeer(bytes: Uint8Array): Certificate {
    return verifyCertificate(bytes, this.trust, {
      now: Date.now(),
      ...(this.revocations === undefined ? {} : { revocations: this.revocations }),
    });
  }

  // ---- control plane ----------------------------------------------------------------------

  private onLinkUp(link: Link): void {
    const now = performance.now();
    this.counters.inc('device.link.up');
    this.logger.info(
      { neighbour: link.remoteName, id: link.remote, direction: link.direction },
      'link up',
    );
    const cost = this.config.routing.measuredCosts ? linkCost(link.rttMs, link.lossRate) : 1;
    this.reportedCost.set(link.remote, cost);
    for (const p of this.protocols.values()) this.run(p, p.linkUp(link.remote, cost, now));
    this.runDirectory(this.directory.linkUp(link.remote, now));
    // Only now: frames that came early are delivered to protocols that know the neighbour.
    link.onFrame((type, body) => this.onFrame(link, type, body));
    this.fibs.refresh();
    this.schedule();
  }

  private onLinkDown(link: Link, reason: string): void {
    const now = performance.now();
    this.logger.info({ neighbour: link.remoteName, reason }, 'link down');
    this.reportedCost.delete(link.remote);
    for (const p of this.protocols.values()) this.run(p, p.linkDown(link.remote, now));
    this.fibs.refresh();
    this.schedule();
  }

  private onFrame(link: Link, type: number, body: Uint8Array): void {
    if (type === FrameType.PACKET) {
      this.switch.onPacket(link.remote, body);
      return;
    }
    if (type !== FrameType.CONTROL) {
      this.counters.inc('device.frames.dropped', { reason: 'unknown-frame-type' });
      return;
    }
    let envelope;
    try {
      envelope = decodeControl(body);
    } catch {
      this.counters.inc('device.frames.dropped', { reason: 'malformed-control' });
      return;
    }
    const now = performance.now();
    if (envelope.protocol === DIRECTORY_PROTOCOL_ID) {
      this.runDirectory(this.directory.receive(link.remote, envelope.type, envelope.body, now));
      return;
    }
    const p = this.protocols.get(envelope.protocol);
    if (p === undefined) {
      this.counters.inc('device.frames.dropped', { reason: 'unknown-protocol' });
      return;
    }
    this.run(p, p.receive(link.remote, { type: envelope.type, body: envelope.body }, now));
    this.schedule();
  }

  private run(p: RoutingProtocol, actions: RoutingAction[]): void {
    let changed = false;
    for (const a of actions) {
      if (a.type === 'routesChanged') changed = true;
      else this.dispatch(p.id, a);
    }
    if (changed) {
      this.counters.inc('routing.changes', { protocol: p.name });
      this.fibs.refresh(p);
      for (const w of [...this.routeWaiters]) w();
    }
  }

  /**
   * Every `routing.refreshMs`: links report their measured cost (RTT and
   * keepalive loss) when it moved past the hysteresis, and reactive protocols
   * hear which routes open connections use here (AODV route lifetimes; a
   * source whose route broke rediscovers).
   */
  private refresh(): void {
    if (this.stopping) return;
    this.reloadRevocations();
    const now = performance.now();
    for (const link of this.config.routing.measuredCosts ? this.links.links() : []) {
      const was = this.reportedCost.get(link.remote);
      const cost = linkCost(link.rttMs, link.lossRate);
      if (was === undefined || !costChanged(was, cost)) {
        this.costStreak.delete(link.remote);
        continue;
      }
      // A new cost must hold for COST_STREAK refreshes in a row: a busy moment is not a slow link.
      const streak = (this.costStreak.get(link.remote) ?? 0) + 1;
      if (streak < COST_STREAK) {
        this.costStreak.set(link.remote, streak);
        continue;
      }
      this.costStreak.delete(link.remote);
      this.reportedCost.set(link.remote, cost);
      this.counters.inc('link.cost.changes');
      for (const p of this.protocols.values()) this.run(p, p.linkCost(link.remote, cost, now));
    }
    for (const vm of this.vms.values()) {
      const r = vm.record;
      const p = [...this.protocols.values()].find((x) => x.name === r.protocol);
      if (p?.routeInUse === undefined) continue;
      const avoid = new Set(r.avoid);
      if (r.role !== 'destination') this.run(p, p.routeInUse(r.destination, avoid, now));
      if (r.role !== 'source') this.run(p, p.routeInUse(r.source, avoid, now));
    }
    this.schedule();
  }

  /**
   * Starts route discoveries for the reactive protocols that lack a route to
   * `destination` (plain, and avoiding `relays`), and resolves once `ready()`
   * holds after a route change, or after `routing.discoveryWaitMs`.
   */
  private discoverRoutes(
    candidates: readonly RoutingProtocol[],
    destination: DeviceId,
    relays: DeviceId[],
    ready: () => boolean,
  ): Promise<void> {
    const now = performance.now();
    const avoid = new Set(relays);
    for (const p of candidates) {
      if (p.reactive !== true || p.discover === undefined) continue;
      if (relays.length > 0 && p.route(destination, avoid) === undefined)
        this.run(p, p.discover(destination, avoid, now));
      if (p.route(destination) === undefined) this.run(p, p.discover(destination, new Set(), now));
    }
    this.schedule();
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.routeWaiters.delete(check);
        resolve();
      };
      const check = (): void => {
        if (this.stopping || ready()) done();
      };
      const timer = setTimeout(done, this.config.routing.discoveryWaitMs);
      this.routeWaiters.add(check);
    });
  }

  private runDirectory(actions: RoutingAction[]): void {
    for (const a of actions)
      if (a.type !== 'routesChanged') this.dispatch(DIRECTORY_PROTOCOL_ID, a);
  }

  private dispatch(protocol: number, a: Exclude<RoutingAction, { type: 'routesChanged' }>): void {
    const frame = encodeControl({ protocol, type: a.message.type, body: a.message.body });
    if (a.type === 'send') {
      this.links.link(a.to)?.send(FrameType.CONTROL, frame);
      return;
    }
    for (const link of this.links.links()) {
      if (link.remote !== a.except) link.send(FrameType.CONTROL, frame);
    }
  }

  /** Drives every protocol's and the directory's timers from one timer at the earliest deadline. */
  private schedule(): void {
    if (this.stopping) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    let next = this.directory.nextDeadline();
    for (const p of this.protocols.values()) next = Math.min(next, p.nextDeadline());
    const delay = Math.max(0, Math.min(next - performance.now(), 60000));
    this.timer = setTimeout(() => {
      const now = performance.now();
      for (const p of this.protocols.values())
        if (p.nextDeadline() <= now) this.run(p, p.tick(now));
      if (this.directory.nextDeadline() <= now) this.runDirectory(this.directory.tick(now));
      this.schedule();
    }, delay);
  }

  // ---- data plane ---------------------------------------------------------------------

  /** One fair queue per link (scheduler.ts): connections take turns when a link is busy. */
  private readonly queues = new Map<Link, FairQueue>();

  private sendPacket(to: DeviceId, bytes: Uint8Array): void {
    const link = this.links.link(to);
    if (link === undefined) {
      this.counters.inc('switch.dropped', { reason: 'no-link' });
      return;
    }
    let queue = this.queues.get(link);
    if (queue === undefined) {
      queue = new FairQueue(link, this.counters);
      this.queues.set(link, queue);
      link.onClose(() => this.queues.delete(link));
    }
    // The connection id (packet bytes 12..19) names the flow.
    const flow =
      bytes.length >= 20 ? Buffer.from(bytes.buffer, bytes.byteOffset + 12, 8).toString('hex') : '';
    // Drops are counted by the queue (fair-queue-full) or the link (link-refused).
    if (queue.send(flow, bytes)) this.counters.inc('switch.forwarded');
  }

  /** Called by the switch for a packet of a connection with no VM here. Throws VmeshError to refuse. */
  private spawnForPacket(
    role: Exclude<VmRole, 'source'>,
    packet: {
      connection: ConnectionId;
      protocol: number;
      source: DeviceId;
      destination: DeviceId;
      avoid?: DeviceId[];
    },
  ): VmHandle {
    const protocol = this.protocols.get(packet.protocol);
    if (protocol === undefined) {
      throw new VmeshError(
        'VMESH_ERR_UNKNOWN_PROTOCOL',
        `protocol ${packet.protocol} is not enabled here`,
      );
    }
    if (role === 'relay' && !this.certificate.roles.includes('relay')) {
      throw new VmeshError(
        'VMESH_ERR_NOT_ADMITTED',
        `device "${this.config.name}" is not certified to relay (its certificate lacks the relay role)`,
      );
    }
    return this.spawnVm(
      role,
      protocol,
      packet.connection,
      packet.source,
      packet.destination,
      packet.avoid ?? [],
    );
  }

  private spawnVm(
    role: VmRole,
    protocol: RoutingProtocol,
    connection: ConnectionId,
    source: DeviceId,
    destination: DeviceId,
    avoid: DeviceId[],
    open?: { service: string; app: string },
  ): VmHandle {
    const subscriber = {
      push: (fib: ForwardingTable) => handle.post({ t: 'fib', fib }),
    };
    const fib = this.fibs.subscribe(protocol, avoid, subscriber);
    this.subscriptions.set(connection, { protocol, subscriber });
    let handle: VmHandle;
    try {
      handle = this.hypervisor.spawn(
        {
          role,
          connection,
          protocol: protocol.id,
          protocolName: protocol.name,
          self: this.id,
          source,
          destination,
          avoid,
          fib,
          options: this.vmOptions,
          ...(open === undefined ? {} : { open }),
          ...(role === 'destination' ? { services: this.config.expose, acl: this.config.acl } : {}),
          ...(role === 'relay' ? {} : { e2e: this.e2eSpec(role, destination) }),
        },
        {
          onMessage: (msg, vm) => this.onVmMessage(vm, msg),
          onExit: (vm, reason, code) => {
            this.fibs.unsubscribe(subscriber);
            this.subscriptions.delete(vm.record.connection);
            if (this.vms.get(vm.record.connection) === vm) this.vms.delete(vm.record.connection);
            this.onVmExit(vm, reason, code);
          },
        },
      );
    } catch (err) {
      this.fibs.unsubscribe(subscriber);
      throw err;
    }
    this.vms.set(connection, handle);
    this.logger.info(
      {
        role,
        connection,
        protocol: protocol.name,
        vm: handle.record.vmId,
        thread: handle.record.threadId,
      },
      'vm spawned',
    );
    return handle;
  }

  /** The forwarding-table subscription of each VM, by connection (to move it on failover). */
  private readonly subscriptions = new Map<
    ConnectionId,
    { protocol: RoutingProtocol; subscriber: { push(fib: ForwardingTable): void } }
  >();

  /**
   * Failover: a source or destination VM has no route that avoids its
   * avoid-set (the relays of the app's other connections) — diversity gives
   * way to continuity. The VM moves to the protocol's unconstrained table;
   * on the source the reason is recorded.
   */
  private dropAvoidSet(vm: VmHandle): void {
    const connection = vm.record.connection;
    const sub = this.subscriptions.get(connection);
    const vconn = this.vconns.get(connection);
    if (sub === undefined || vm.record.role === 'relay') return;
    const fib = this.fibs.resubscribe(sub.protocol, [], sub.subscriber);
    vm.post({ t: 'fib', fib, replace: true });
    const avoided = (vconn?.avoid ?? []).map((d) => this.directory.nameOf(d) ?? d.slice(0, 8));
    if (vconn !== undefined) {
      vconn.avoid = [];
      vconn.reason += `; failover: no route avoided ${avoided.join(', ')} any more, so it may use them`;
    }
    this.counters.inc('vconn.failover', { kind: 'avoid-dropped' });
    this.logger.info({ connection, avoided }, 'failover: avoid-set dropped');
  }

  /**
   * Tells a connection's source that this device's VM for it ended by error
   * (crash, out of memory, hang): an ERROR packet from the destination is
   * final for the source, so the app gets the code at once instead of a timeout.
   */
  private reportToSource(record: VmRecord, code: ErrorCode, reason: string): void {
    const protocol = [...this.protocols.values()].find((p) => p.name === record.protocol);
    const hop =
      protocol?.route(record.source, new Set(record.avoid))?.nextHop ??
      protocol?.route(record.source)?.nextHop;
    if (protocol === undefined || hop === undefined) return;
    const error: Packet = {
      kind: PacketKind.ERROR,
      protocol: protocol.id,
      flags: 0,
      hopLimit: this.vmOptions.hopLimit,
      connection: record.connection,
      source: this.id,
      destination: record.source,
      packetNumber: 0,
      payload: encodeErrorPayload({ wire: ERRORS[code].wire, reason: reason.slice(0, 200) }),
    };
    if (record.avoid.length > 0) error.avoid = record.avoid;
    this.sendPacket(hop, encodePacket(error));
  }

  /** Keys and trust for a source or destination VM's end-to-end session. */
  private e2eSpec(role: VmRole, destination: DeviceId): E2eSpec {
    const spec: E2eSpec = {
      staticKey: {
        publicKey: this.identity.agreementPublic,
        privateKey: this.identity.agreementPrivate,
      },
      certificate: this.certificate.raw,
      trust: this.trust,
      ...(this.revocations === undefined ? {} : { revocations: this.revocations.raw }),
    };
    if (role === 'source') {
      const entry = this.directory.get(destination);
      if (entry === undefined) {
        throw new VmeshError(
          'VMESH_ERR_UNKNOWN_DEVICE',
          `no certificate of ${destination.slice(0, 8)} is known here`,
        );
      }
      spec.remoteStatic = entry.agreementPublic;
    }
    return spec;
  }

  private onVmMessage(vm: VmHandle, msg: VmToDevice): void {
    const connection = vm.record.connection;
    const session = this.sessions.get(connection);
    const vconn = this.vconns.get(connection);
    switch (msg.t) {
      case 'send':
        for (const item of msg.items) {
          if (this.faults === undefined || vm.record.role !== 'relay')
            this.sendPacket(item.peer, item.bytes);
          else for (const bytes of this.faults.apply(item.bytes)) this.sendPacket(item.peer, bytes);
        }
        break;
      case 'app-open':
        if (vconn !== undefined) {
          vconn.state = 'open';
          vconn.setupMs = Date.now() - Date.parse(vconn.openedAt);
        }
        this.pendingOpens.get(connection)?.(undefined);
        break;
      case 'app-data':
        if (vconn !== undefined) vconn.bytesReceived += msg.data.length;
        session?.data(msg.data);
        break;
      case 'app-end':
        session?.end();
        break;
      case 'app-error':
        this.failVconn(connection, msg.code, msg.message);
        break;
      case 'app-pause':
        session?.pause();
        break;
      case 'app-resume':
        session?.resume();
        break;
      case 'report':
        if (vconn !== undefined) {
          if (msg.report.forwardPath !== undefined) vconn.forwardPath = msg.report.forwardPath;
          if (msg.report.returnPath !== undefined) vconn.returnPath = msg.report.returnPath;
        }
        break;
      case 'log':
        this.logger[msg.level]({ vm: vm.record.vmId, ...msg.fields }, msg.msg);
        break;
      case 'avoid-unreachable':
        this.dropAvoidSet(vm);
        break;
      case 'quarantine': {
        const { t: _t, ...item } = msg;
        this.quarantine.push({ ...item, connection, at: new Date().toISOString() });
        if (this.quarantine.length > MAX_QUARANTINE) this.quarantine.shift();
        this.counters.inc('vconn.quarantined', { reason: msg.reason });
        this.logger.warn(
          { connection, reason: msg.reason, packetNumber: msg.packetNumber, from: msg.source },
          'packet quarantined',
        );
        break;
      }
      case 'ready':
      case 'done':
        break;
    }
  }

  private onVmExit(vm: VmHandle, reason: string, code: ErrorCode | undefined): void {
    const connection = vm.record.connection;
    this.logger.info({ role: vm.record.role, connection, vm: vm.record.vmId, reason }, 'vm ended');
    if (
      vm.record.role === 'destination' &&
      (code === 'VMESH_ERR_VM_CRASHED' || code === 'VMESH_ERR_TIMEOUT')
    ) {
      this.reportToSource(vm.record, code, `the destination's VM ended: ${reason}`);
    }
    if (vm.record.role !== 'source') return;
    if (code !== undefined) this.failVconn(connection, code, `VM ended: ${reason}`);
    const vconn = this.vconns.get(connection);
    if (vconn !== undefined && vconn.state !== 'failed') {
      vconn.state = 'closed';
      vconn.endedAt = new Date().toISOString();
    }
    this.sessions.get(connection)?.close();
    this.sessions.delete(connection);
  }

  private failVconn(connection: ConnectionId, code: ErrorCode, message: string): void {
    const vconn = this.vconns.get(connection);
    if (vconn !== undefined && vconn.state !== 'failed' && vconn.state !== 'closed') {
      vconn.state = 'failed';
      vconn.error = { code, message };
      vconn.endedAt = new Date().toISOString();
      this.counters.inc('vconn.failed', { code });
    }
    const pending = this.pendingOpens.get(connection);
    if (pending !== undefined) pending(new VmeshError(code, message));
    else this.sessions.get(connection)?.error(code, message);
  }

  // ---- control API ----------------------------------------------------------------------

  private readonly pendingOpens = new Map<ConnectionId, (err: VmeshError | undefined) => void>();

  /** Claim 1 (a): an app's request for a connection. */
  connect(request: ConnectRequest, socket: net.Socket, rest: Buffer): void {
    const session = new AppSession(socket, rest, this.counters);
    void this.open(request, socket, session);
  }

  private async open(
    request: ConnectRequest,
    socket: net.Socket,
    session: AppSession,
  ): Promise<void> {
    let connection: ConnectionId | undefined;
    try {
      const destination = this.directory.resolve(request.to);
      if (destination === undefined) {
        throw new VmeshError(
          'VMESH_ERR_UNKNOWN_DEVICE',
          `no device named "${request.to}" is known here`,
        );
      }
      if (destination === this.id) {
        throw new VmeshError(
          'VMESH_ERR_UNKNOWN_DEVICE',
          `"${request.to}" is this device; connect to the service directly`,
        );
      }
      const siblings = [...this.vconns.values()]
        .filter(
          (v) =>
            v.app === request.app &&
            v.destination === destination &&
            (v.state === 'open' || v.state === 'opening'),
        )
        .map((v) => ({ connection: v.connection, protocol: v.protocol, relays: this.relaysOf(v) }));
      const protocols = [...this.protocols.values()];
      const select = (): Selection =>
        selectProtocol(this.config.policy, {
          app: request.app,
          destination,
          ...(request.protocol === undefined ? {} : { protocol: request.protocol }),
          protocols,
          siblings,
          nameOf: (d) => this.directory.nameOf(d) ?? d.slice(0, 8),
        });
      const candidates =
        request.protocol === undefined
          ? protocols
          : protocols.filter((p) => p.name === request.protocol);
      const relays = [...new Set(siblings.flatMap((x) => x.relays))].filter(
        (r) => r !== destination,
      );
      const used = new Set(siblings.map((x) => x.protocol));
      // Reactive protocols know routes only after a discovery: wait for one when a reactive
      // protocol without a route would be preferred over what the policy can pick now.
      const waitFor = (): boolean => {
        const pending = candidates.filter(
          (p) =>
            p.reactive === true &&
            (p.route(destination) === undefined ||
              (relays.length > 0 && p.route(destination, new Set(relays)) === undefined)),
        );
        if (pending.length === 0) return false;
        let pick: Selection;
        try {
          pick = select();
        } catch {
          return true;
        }
        const rank = (p: RoutingProtocol): number => candidates.indexOf(p);
        return pending.some(
          (p) =>
            rank(p) < rank(pick.protocol) ||
            (p === pick.protocol && relays.length > 0 && pick.avoid.length === 0) ||
            (used.has(pick.protocol.name) && !used.has(p.name)),
        );
      };
      if (waitFor()) {
        await this.discoverRoutes(candidates, destination, relays, () => !waitFor());
        if (socket.destroyed) {
          throw new VmeshError('VMESH_ERR_CONN_RESET', 'the app went away during route discovery');
        }
      }
      const selection = select();
      connection = randomBytes(8).toString('hex');
      const record: VconnRecord = {
        connection,
        app: request.app,
        destination,
        destinationName: this.directory.nameOf(destination) ?? destination,
        service: request.service,
        protocol: selection.protocol.name,
        reason: selection.reason,
        avoid: selection.avoid,
        state: 'opening',
        openedAt: new Date().toISOString(),
        bytesSent: 0,
        bytesReceived: 0,
      };
      this.predicted.set(connection, (selection.route.path ?? []).slice(1, -1));
      this.vconns.set(connection, record);
      this.counters.inc('vconn.opened', { protocol: selection.protocol.name });
      this.logger.info(
        {
          connection,
          app: request.app,
          to: record.destinationName,
          protocol: record.protocol,
          reason: record.reason,
        },
        'connection requested',
      );
      const id = connection;
      const vm = this.spawnVm(
        'source',
        selection.protocol,
        id,
        this.id,
        destination,
        selection.avoid,
        {
          service: request.service,
          app: request.app,
        },
      );
      this.sessions.set(id, session);
      this.pendingOpens.set(id, (err) => {
        this.pendingOpens.delete(id);
        if (err !== undefined) {
          socket.end(`${JSON.stringify({ ok: false, error: err.toJSON() })}\n`);
          return;
        }
        const info: ConnectionInfo = {
          connection: id,
          destination,
          destinationName: record.destinationName,
          service: record.service,
          app: record.app,
          protocol: record.protocol,
          reason: record.reason,
          avoid: record.avoid.map((a) => this.directory.nameOf(a) ?? a),
          setupMs: record.setupMs ?? 0,
        };
        socket.write(`${JSON.stringify({ ok: true, connection: info })}\n`);
        session.attach(
          {
            write: (data) => {
              record.bytesSent += data.length;
              vm.post({ t: 'app-write', data });
            },
            end: () => vm.post({ t: 'app-end' }),
            consumed: (bytes) => vm.post({ t: 'app-consumed', bytes }),
            abort: () =>
              vm.post({
                t: 'app-abort',
                code: 'VMESH_ERR_CONN_RESET',
                message: 'the app closed its stream',
              }),
          },
          this.counters,
        );
      });
      socket.once('close', () => {
        if (this.pendingOpens.has(id))
          vm.post({ t: 'app-abort', code: 'VMESH_ERR_CONN_RESET', message: 'the app went away' });
      });
    } catch (err) {
      const e = toVmeshError(err);
      this.counters.inc('vconn.refused', { code: e.code });
      if (connection !== undefined) this.vconns.delete(connection);
      socket.end(`${JSON.stringify({ ok: false, error: e.toJSON() })}\n`);
    }
  }

  private readonly predicted = new Map<ConnectionId, DeviceId[]>();

  /** Relays of a vconn: from its trace once known, else the route predicted at selection time. */
  private relaysOf(v: VconnRecord): DeviceId[] {
    if (v.forwardPath !== undefined) return v.forwardPath.filter((d) => d !== v.destination);
    return this.predicted.get(v.connection) ?? [];
  }

  resolve(name: string): unknown {
    const device = this.directory.resolve(name);
    if (device === undefined)
      throw new VmeshError('VMESH_ERR_UNKNOWN_DEVICE', `no device named "${name}" is known here`);
    return { device, name: this.directory.nameOf(device) };
  }

  status(): unknown {
    const now = performance.now();
    const nameOf = (d: DeviceId): string => this.directory.nameOf(d) ?? d.slice(0, 8);
    return {
      device: {
        id: this.id,
        name: this.config.name,
        listen: this.listenAddress ?? null,
        control: this.config.control,
        uptimeMs: Math.round(now - this.startedAt),
        protocols: [...this.protocols.values()].map((p) => p.name),
        policy: this.config.policy,
        services: Object.keys(this.config.expose),
      },
      links: this.links.links().map((l) => ({
        neighbour: l.remote,
        name: l.remoteName,
        direction: l.direction,
        rttMs: l.rttMs ?? null,
      })),
      directory: this.directory.list().map((e) => ({ device: e.device, name: e.name })),
      routing: [...this.protocols.values()].map((p) => ({
        ...p.snapshot(now),
        mode: p.mode,
        reactive: p.reactive === true,
      })),
      vms: this.hypervisor.records().map((r: VmRecord) => ({
        ...r,
        sourceName: nameOf(r.source),
        destinationName: nameOf(r.destination),
      })),
      vconns: [...this.vconns.values()].map((v) => ({
        ...v,
        avoidNames: v.avoid.map(nameOf),
        forwardPathNames: v.forwardPath?.map(nameOf),
        returnPathNames: v.returnPath?.map(nameOf),
      })),
      quarantine: this.quarantine.map((q) => ({
        at: q.at,
        connection: q.connection,
        reason: q.reason,
        packetNumber: q.packetNumber,
        source: q.source,
        bytesHex: Buffer.from(q.bytes).toString('hex'),
      })),
      counters: this.counters.snapshot(),
    };
  }
}
