/**
 * The inside of a VM: everything one virtual connection does on one device.
 *
 * Owns: the vconn's forwarding (unicast next hop or controlled flood with
 * duplicate suppression, hop limit, trace records, avoid-set), and for the
 * endpoints the transport state machine (src/transport) plus the far side of
 * the stream: the app (through the device, source role) or the exposed
 * service's TCP socket (destination role, opened from inside the VM).
 *
 * Main structures: `fib` (the ForwardingTable the device pushed), `transport`,
 * `out` (packets batched for one postMessage per turn), `seen` (flood mode
 * duplicate suppression per direction). The forwarding decision is
 * `nextHopsFor()`; the end-of-life decision is `checkTimers()`.
 *
 * The engine is driven by worker.ts (the I/O shell): it never reads the clock
 * itself (`io.now()`), and asks for a wake-up with `io.wake(at)`.
 */
import net from 'node:net';
import { ERRORS, codeFromWire, isErrorCode, toVmeshError } from '../errors/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import type { ForwardingTable } from '../routing/index.ts';
import { createTransport } from '../transport/index.ts';
import type { StreamTransport, TransportEvent } from '../transport/index.ts';
import {
  PacketFlag,
  PacketKind,
  decodeErrorPayload,
  decodePacket,
  encodeErrorPayload,
  encodePacket,
  MAX_LIST_ENTRIES,
} from '../wire/index.ts';
import type { DeviceId, Packet, TraceRecord } from '../wire/index.ts';
import { EndToEnd } from './e2e.ts';
import type { DeviceToVm, OpenRequest, PacketItem, VmReport, VmSpec, VmToDevice } from './types.ts';

/** The engine's window on the world (worker.ts provides it). */
export interface VmIo {
  post(message: VmToDevice): void;
  now(): number;
  /** Ask to be woken (onTimer) at absolute time `at`, replacing any earlier request. */
  wake(at: number | undefined): void;
}

const MAX_PUMP_ROUNDS = 64;

/** Errors from a relay that end the connection at once: they will not heal by rerouting. */
const HARD_RELAY_ERRORS: ReadonlySet<ErrorCode> = new Set([
  'VMESH_ERR_VM_LIMIT',
  'VMESH_ERR_UNKNOWN_PROTOCOL',
  'VMESH_ERR_UNKNOWN_CONNECTION',
]);

export class VmEngine {
  private readonly spec: VmSpec;
  private readonly io: VmIo;
  private fib: ForwardingTable;
  private readonly transport: StreamTransport | undefined;
  private out: PacketItem[] = [];
  private done = false;
  private readonly counters: Required<
    Pick<VmReport, 'packetsIn' | 'packetsOut' | 'bytesIn' | 'bytesOut'>
  > & {
    dropped: Record<string, number>;
    appBytesSent: number;
    appBytesReceived: number;
    salvaged: number;
    pathChanges: number;
  } = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: {},
    appBytesSent: 0,
    appBytesReceived: 0,
    salvaged: 0,
    pathChanges: 0,
  };
  private readonly seen = new Map<DeviceId, PacketWindow>();
  private readonly neighboursSeen = new Set<DeviceId>();
  private lastPacketAt: number;
  private readonly finSeen = new Set<DeviceId>();
  private lingerFrom: number | undefined;
  private noRouteSince: number | undefined;
  private opened = false;
  private peerSynActive = true;
  private echoTrace: TraceRecord[] | undefined;
  private pathKnown = false;
  private sentEnd = false;
  private appPaused = false;
  private failedCode: ErrorCode | undefined;
  private softError: { code: ErrorCode; message: string } | undefined;
  private closedCleanly = false;
  /** Neighbour the source's packets last came from: replies go back that way (symmetric path). */
  private towardSource: DeviceId | undefined;
  /** Destination, source mode: the source's route reversed, for replies. */
  private replyRoute: DeviceId[] | undefined;
  /** The end-to-end session (source and destination roles; e2e.ts). */
  private readonly e2e: EndToEnd | undefined;
  /** Authentic data packet numbers received (replay window). */
  private readonly received = new PacketWindow(REPLAY_WINDOW);
  private handshakeSent = 0;
  private askedAvoidDrop = false;
  private nextHandshakeAt = 0;
  private readonly startedAt: number;
  private service: net.Socket | undefined;
  private serviceEnded = false;
  private reportDirty = false;
  private lastReportAt = 0;

  constructor(spec: VmSpec, io: VmIo) {
    this.spec = spec;
    this.io = io;
    this.fib = spec.fib;
    this.lastPacketAt = io.now();
    this.startedAt = io.now();
    if (spec.role !== 'relay' && spec.e2e !== undefined) {
      this.e2e = new EndToEnd(
        spec.role,
        spec.e2e,
        spec.connection,
        spec.role === 'source' ? spec.destination : spec.source,
      );
    }
    if (spec.role !== 'relay') {
      this.transport = createTransport({
        role: spec.role === 'source' ? 'client' : 'server',
        maxPayloadBytes: spec.options.maxPayloadBytes,
        idleTimeoutMs: spec.options.idleTimeoutMs,
      });
    }
  }

  /** Called once after construction. */
  start(): void {
    if (this.spec.role === 'source' && this.transport !== undefined) {
      const open = this.spec.open ?? { service: '', app: '' };
      this.transport.open(Buffer.from(JSON.stringify(open)), this.io.now());
    }
    this.pump();
    this.io.post({ t: 'ready' });
    this.flush();
  }

  onMessage(msg: DeviceToVm): void {
    if (this.done) return;
    const now = this.io.now();
    switch (msg.t) {
      case 'init':
        return;
      case 'packets':
        for (const item of msg.items) this.onPacket(item, now);
        break;
      case 'fib':
        if (msg.replace === true || msg.fib.version >= this.fib.version) this.onFib(msg.fib, now);
        break;
      case 'app-write':
        this.counters.appBytesSent += msg.data.length;
        if (this.transport?.write(msg.data, now) === false && !this.appPaused) {
          this.appPaused = true;
          this.io.post({ t: 'app-pause' });
        }
        break;
      case 'app-end':
        this.transport?.end(now);
        this.sentEnd = true;
        break;
      case 'app-consumed':
        this.transport?.consumed(msg.bytes, now);
        break;
      case 'app-abort':
        this.transport?.abort(msg.code, msg.message, now);
        this.sentEnd = true;
        break;
      case 'stop':
        if (this.transport !== undefined && !this.transport.finished) {
          this.transport.abort(msg.code, msg.message, now);
          this.sentEnd = true;
          this.pump();
        }
        this.fail(msg.code, msg.message);
        this.finish(msg.code);
        break;
    }
    this.pump();
    this.flush();
  }

  onTimer(): void {
    if (this.done) return;
    this.pump();
    this.checkTimers(this.io.now());
    this.flush();
  }

  // ---- packets in -------------------------------------------------------------------------

  private onPacket(item: PacketItem, now: number): void {
    this.counters.packetsIn++;
    this.counters.bytesIn += item.bytes.length;
    this.lastPacketAt = now;
    this.neighboursSeen.add(item.peer);
    let packet: Packet;
    try {
      packet = decodePacket(item.bytes);
    } catch {
      this.drop('malformed');
      return;
    }
    if (packet.connection !== this.spec.connection) {
      this.drop('wrong-connection');
      return;
    }
    if (packet.source === this.spec.source && packet.kind !== PacketKind.ERROR) {
      this.towardSource = item.peer;
      if (this.spec.role === 'destination' && packet.route !== undefined)
        this.replyRoute = [...packet.route].reverse();
    }
    if (packet.destination === this.spec.self && this.spec.role !== 'relay') {
      this.deliver(packet, now);
    } else {
      this.forward(packet, item.peer, now);
    }
  }

  private deliver(packet: Packet, now: number): void {
    if (packet.kind === PacketKind.ERROR) {
      if (this.closedCleanly) {
        // A late report about a connection that already finished well (e.g. a straggler that
        // reached a destination whose VM had ended): nothing to fail.
        this.drop('error-after-close');
        return;
      }
      let wire: number;
      let reason: string;
      try {
        ({ wire, reason } = decodeErrorPayload(packet.payload));
      } catch {
        this.drop('malformed');
        return;
      }
      const code = codeFromWire(wire);
      const message = `${reason} (reported by device ${packet.source.slice(0, 8)})`;
      const peer = this.spec.role === 'source' ? this.spec.destination : this.spec.source;
      if (packet.source !== peer && !HARD_RELAY_ERRORS.has(code)) {
        // A soft error (RFC 1122 §4.2.3.9 style): a relay could not forward now; routes may heal.
        // It becomes the connection's error only if the connection then times out or loses its route.
        this.softError = { code, message };
        this.drop(`soft-error:${code}`);
        return;
      }
      if (this.transport !== undefined && !this.transport.finished) {
        this.transport.abort(code, message, now);
        this.sentEnd = true;
      }
      this.fail(code, message);
      return;
    }
    if (packet.kind === PacketKind.HANDSHAKE) {
      this.onHandshake(packet);
      return;
    }
    if (packet.kind !== PacketKind.DATA || this.transport === undefined) {
      this.drop('unexpected-kind');
      return;
    }
    let payload = packet.payload;
    if (this.e2e !== undefined) {
      try {
        payload = this.e2e.open(packet);
      } catch {
        this.reject(packet, 'auth-failed');
        return;
      }
      if (!this.received.add(packet.packetNumber)) {
        this.reject(packet, 'replay');
        return;
      }
    }
    if (this.spec.role === 'destination') {
      this.peerSynActive = (packet.flags & PacketFlag.SYN) !== 0;
      if (this.peerSynActive && packet.trace !== undefined && this.echoTrace === undefined) {
        this.echoTrace = [...packet.trace, { device: this.spec.self, timeMs: now >>> 0 }];
      }
    } else if (!this.pathKnown && packet.trace !== undefined && packet.trace.length > 0) {
      this.learnPath(packet.trace);
    }
    this.transport.receive(packet.packetNumber, payload, now);
  }

  /**
   * A packet that failed end-to-end checks: dropped, counted, and
   * quarantined (its bytes go to the device for inspection; never delivered).
   */
  private reject(packet: Packet, reason: 'auth-failed' | 'replay'): void {
    this.drop(reason);
    this.io.post({
      t: 'quarantine',
      reason,
      packetNumber: packet.packetNumber,
      source: packet.source,
      bytes: ownBytes(encodePacket(packet).subarray(0, QUARANTINE_BYTES)),
    });
  }

  /**
   * A new forwarding table. The ends adopt the table's avoid-set (the
   * device drops the avoid-set when no route honours it), and when the table
   * sends its packets another way, the transport resends what is
   * unacknowledged at once by the new path (failover) rather than waiting
   * for its retransmission timer.
   */
  private onFib(fib: ForwardingTable, now: number): void {
    const before = this.firstHop();
    this.fib = fib;
    if (this.spec.role === 'relay') return;
    if (fib.avoid.join() !== this.spec.avoid.join()) this.spec.avoid = [...fib.avoid];
    if (this.spec.role !== 'source') return;
    const after = this.firstHop();
    if (before !== undefined && after !== undefined && after !== before) {
      this.counters.pathChanges++;
      this.transport?.pathChanged(now);
      this.pump();
    }
  }

  /** The source's first hop toward the destination now, if it has one (unicast and source modes). */
  private firstHop(): DeviceId | undefined {
    if (this.fib.mode === 'flood') return undefined;
    if (this.fib.mode === 'source') return this.fib.paths?.[this.spec.destination]?.[1];
    return this.fib.nextHops[this.spec.destination];
  }

  /**
   * An end that has had no route honouring its avoid-set for AVOID_GRACE_MS
   * (not a passing gap while routes converge): ask the device once to drop it.
   */
  private avoidUnreachable(): void {
    if (this.spec.role === 'relay' || this.spec.avoid.length === 0 || this.askedAvoidDrop) return;
    if (this.noRouteSince === undefined || this.io.now() - this.noRouteSince < AVOID_GRACE_MS)
      return;
    this.askedAvoidDrop = true;
    this.io.post({ t: 'avoid-unreachable' });
  }

  /** The source (re)sends its first handshake message, with backoff, until the answer comes. */
  private sendHandshake(now: number): void {
    const e2e = this.e2e;
    if (e2e === undefined || e2e.ready || now < this.nextHandshakeAt) return;
    const packet: Packet = {
      kind: PacketKind.HANDSHAKE,
      protocol: this.spec.protocol,
      flags: PacketFlag.SYN,
      hopLimit: this.spec.options.hopLimit,
      connection: this.spec.connection,
      source: this.spec.self,
      destination: this.spec.destination,
      // A fresh number per attempt: flood relays suppress repeats by packet number.
      packetNumber: this.handshakeSent,
      payload: e2e.hello(),
    };
    if (this.spec.avoid.length > 0) packet.avoid = this.spec.avoid;
    this.handshakeSent++;
    this.nextHandshakeAt = now + Math.min(2000, 100 * 2 ** Math.min(this.handshakeSent, 5));
    const hops = this.hopsFor(packet, undefined);
    if (hops.length === 0) {
      this.drop('no-route');
      this.noRouteSince ??= now;
      this.avoidUnreachable();
      return;
    }
    this.noRouteSince = undefined;
    const bytes = encodePacket(packet);
    for (const hop of hops) this.emit(hop, bytes);
  }

  private onHandshake(packet: Packet): void {
    const e2e = this.e2e;
    if (e2e === undefined) {
      this.drop('unexpected-kind');
      return;
    }
    let reply: Uint8Array | undefined;
    try {
      reply = e2e.onHandshake(packet.payload, packet.source, Date.now());
    } catch (err) {
      const e = toVmeshError(err, 'VMESH_ERR_HANDSHAKE');
      this.drop('handshake-failed');
      if (this.spec.role === 'destination') {
        this.sendError(packet, e.code, `end-to-end handshake refused: ${e.message}`);
        this.fail(e.code, e.message);
        this.finish(e.code);
      }
      return;
    }
    if (this.spec.role === 'destination') {
      if (reply === undefined) return;
      const answer: Packet = {
        kind: PacketKind.HANDSHAKE,
        protocol: this.spec.protocol,
        flags: 0,
        hopLimit: this.spec.options.hopLimit,
        connection: this.spec.connection,
        source: this.spec.self,
        destination: this.spec.source,
        packetNumber: packet.packetNumber,
        payload: reply,
      };
      if (this.spec.avoid.length > 0) answer.avoid = this.spec.avoid;
      const hops = this.hopsFor(answer, undefined);
      const bytes = encodePacket(answer);
      for (const hop of hops) this.emit(hop, bytes);
    }
    this.pump();
  }

  /** Source: the destination echoed the forward trace (ending with itself) and relays added the return hops. */
  private learnPath(trace: TraceRecord[]): void {
    const at = trace.findIndex((r) => r.device === this.spec.destination);
    if (at < 0) return;
    this.pathKnown = true;
    this.report({
      forwardPath: trace.slice(0, at + 1).map((r) => r.device),
      returnPath: [...trace.slice(at + 1).map((r) => r.device), this.spec.self],
    });
  }

  private forward(packet: Packet, from: DeviceId, now: number): void {
    if ((packet.flags & PacketFlag.FIN) !== 0 || packet.kind === PacketKind.ERROR) {
      this.finSeen.add(packet.source);
      if (packet.kind === PacketKind.ERROR) this.finSeen.add(packet.destination);
    }
    if (this.fib.mode === 'flood' && this.isDuplicate(packet)) {
      this.drop('duplicate');
      return;
    }
    if (packet.hopLimit <= 0) {
      this.drop('ttl-expired');
      this.sendError(packet, 'VMESH_ERR_TTL_EXPIRED', 'hop limit reached');
      return;
    }
    packet.hopLimit -= 1;
    if ((packet.flags & PacketFlag.TRACE) !== 0) {
      const trace = packet.trace ?? [];
      if (trace.length < MAX_LIST_ENTRIES)
        packet.trace = [...trace, { device: this.spec.self, timeMs: now >>> 0 }];
    }
    if (this.fib.mode === 'source' && packet.route !== undefined) {
      if (packet.route[packet.routeIndex ?? 0] !== this.spec.self) {
        this.drop('misrouted');
        return;
      }
    }
    const hops = this.hopsFor(packet, from);
    if (hops.length === 0) {
      this.drop('no-route');
      this.sendError(packet, 'VMESH_ERR_NO_ROUTE', `no ${this.spec.protocolName} route onward`);
      return;
    }
    const bytes = encodePacket(packet);
    for (const hop of hops) this.emit(hop, bytes);
    if (this.finSeen.has(this.spec.source) && this.finSeen.has(this.spec.destination)) {
      this.lingerFrom ??= now;
    }
  }

  private isDuplicate(packet: Packet): boolean {
    const key = `${packet.kind}:${packet.source}`;
    let window = this.seen.get(key);
    if (window === undefined) {
      window = new PacketWindow(this.spec.options.floodSeenPackets);
      this.seen.set(key, window);
    }
    return !window.add(packet.packetNumber);
  }

  /**
   * The forwarding decision. Unicast: the table's one next hop. Flood: every
   * live, non-avoided neighbour except where the packet came from and its
   * source — or just the destination when it is a neighbour.
   */
  private hopsFor(packet: Packet, from: DeviceId | undefined): DeviceId[] {
    if (this.fib.mode !== 'source')
      return this.nextHopsFor(packet.destination, from, packet.source);
    const hop = this.sourceRouteHop(packet);
    return hop === undefined ? [] : [hop];
  }

  /**
   * Source mode (DSR, RFC 4728 §8.1.3–§8.1.4): a packet without a route gets
   * one (replies at the destination: the source's route reversed while its
   * first hop is alive; else the table's path); `routeIndex` names the device
   * holding the packet. The next device on the route is used if it is a live
   * neighbour; otherwise the packet is salvaged (§8.4.2): this device's own
   * path replaces the rest of the route. Sets `route`/`routeIndex` on the packet.
   */
  private sourceRouteHop(packet: Packet): DeviceId | undefined {
    const self = this.spec.self;
    const live = this.fib.neighbours;
    if (packet.route === undefined) {
      const reply = this.replyRoute;
      const path =
        reply !== undefined &&
        packet.destination === reply[reply.length - 1] &&
        live.includes(reply[1] as DeviceId)
          ? reply
          : this.fib.paths?.[packet.destination];
      if (path === undefined || path.length < 2 || path[0] !== self) return undefined;
      packet.route = path;
      packet.routeIndex = 0;
    }
    const route = packet.route;
    const k = packet.routeIndex ?? 0;
    const next = route[k + 1];
    if (next !== undefined && live.includes(next)) {
      packet.routeIndex = k + 1;
      return next;
    }
    const own = this.fib.paths?.[packet.destination];
    if (
      own === undefined ||
      own.length < 2 ||
      own[0] !== self ||
      !live.includes(own[1] as DeviceId)
    )
      return undefined;
    const salvaged = [...route.slice(0, k), ...own];
    if (new Set(salvaged).size !== salvaged.length || salvaged.length > MAX_LIST_ENTRIES)
      return undefined;
    this.counters.salvaged++;
    packet.route = salvaged;
    packet.routeIndex = k + 1;
    return own[1];
  }

  private nextHopsFor(
    destination: DeviceId,
    from: DeviceId | undefined,
    source: DeviceId,
  ): DeviceId[] {
    if (this.fib.mode === 'unicast') {
      // Replies retrace the forward path while its first hop back is alive, so one relay VM per
      // vconn carries both directions (the protocol's own route is the fallback).
      if (
        destination === this.spec.source &&
        this.towardSource !== undefined &&
        this.fib.neighbours.includes(this.towardSource)
      ) {
        return [this.towardSource];
      }
      const hop = this.fib.nextHops[destination];
      return hop === undefined ? [] : [hop];
    }
    if (this.fib.neighbours.includes(destination)) return [destination];
    return this.fib.neighbours.filter((n) => n !== from && n !== source);
  }

  private sendError(about: Packet, code: ErrorCode, reason: string): void {
    if (about.kind === PacketKind.ERROR) return;
    const error: Packet = {
      kind: PacketKind.ERROR,
      protocol: about.protocol,
      flags: 0,
      hopLimit: this.spec.options.hopLimit,
      connection: about.connection,
      source: this.spec.self,
      destination: about.source,
      packetNumber: 0,
      payload: encodeErrorPayload({ wire: ERRORS[code].wire, reason }),
    };
    if (about.avoid !== undefined) error.avoid = about.avoid;
    if (about.route !== undefined) {
      // Back the way it came (DSR ROUTE ERROR travels the reversed route).
      const k = about.route.indexOf(this.spec.self);
      if (k > 0) {
        error.route = about.route.slice(0, k + 1).reverse();
        error.routeIndex = 0;
      }
    }
    const hops = this.hopsFor(error, undefined);
    if (hops.length === 0) return;
    const bytes = encodePacket(error);
    for (const hop of hops) this.emit(hop, bytes);
  }

  // ---- endpoint: transport and the far side of the stream ----------------------------------

  private pump(): void {
    const transport = this.transport;
    if (transport === undefined) return;
    if (this.e2e !== undefined && !this.e2e.ready) {
      // No transport data before the end-to-end handshake: the source (re)sends its first message.
      if (this.spec.role === 'source') this.sendHandshake(this.io.now());
      return;
    }
    for (let round = 0; round < MAX_PUMP_ROUNDS; round++) {
      const now = this.io.now();
      const packets = transport.poll(now);
      for (const p of packets) this.originate(p.packetNumber, p.payload, now);
      const events = transport.events();
      for (const e of events) this.onTransportEvent(e);
      if (packets.length === 0 && events.length === 0) break;
    }
  }

  private originate(packetNumber: number, payload: Uint8Array, now: number): void {
    const role = this.spec.role;
    let flags = 0;
    if (role === 'source' && !this.opened) flags |= PacketFlag.SYN | PacketFlag.TRACE;
    if (this.sentEnd || this.transport?.finished === true) flags |= PacketFlag.FIN;
    const packet: Packet = {
      kind: PacketKind.DATA,
      protocol: this.spec.protocol,
      flags,
      hopLimit: this.spec.options.hopLimit,
      connection: this.spec.connection,
      source: this.spec.self,
      destination: role === 'source' ? this.spec.destination : this.spec.source,
      packetNumber,
      payload,
    };
    if (this.spec.avoid.length > 0) packet.avoid = this.spec.avoid;
    if (this.e2e !== undefined) packet.payload = this.e2e.seal(packet, payload);
    if (role === 'destination' && this.peerSynActive && this.echoTrace !== undefined) {
      packet.flags |= PacketFlag.TRACE;
      packet.trace = this.echoTrace;
    }
    const hops = this.hopsFor(packet, undefined);
    if (hops.length === 0) {
      this.drop('no-route');
      this.noRouteSince ??= now;
      this.avoidUnreachable();
      return;
    }
    this.noRouteSince = undefined;
    const bytes = encodePacket(packet);
    for (const hop of hops) this.emit(hop, bytes);
  }

  private onTransportEvent(e: TransportEvent): void {
    const source = this.spec.role === 'source';
    switch (e.type) {
      case 'open':
        this.opened = true;
        if (source) this.io.post({ t: 'app-open' });
        break;
      case 'openRequest':
        this.onOpenRequest(e.request);
        break;
      case 'data':
        this.counters.appBytesReceived += e.data.length;
        if (source) this.io.post({ t: 'app-data', data: ownBytes(e.data) });
        else this.toService(e.data);
        break;
      case 'end':
        if (source) this.io.post({ t: 'app-end' });
        else if (this.service !== undefined && !this.serviceEnded) {
          this.serviceEnded = true;
          this.service.end();
        }
        break;
      case 'drain':
        if (source && this.appPaused) {
          this.appPaused = false;
          this.io.post({ t: 'app-resume' });
        } else this.service?.resume();
        break;
      case 'closed':
        this.closedCleanly = true;
        this.lingerFrom ??= this.io.now();
        this.service?.destroy();
        break;
      case 'error': {
        const code: ErrorCode = isErrorCode(e.code) ? e.code : 'VMESH_ERR_INTERNAL';
        if (code === 'VMESH_ERR_TIMEOUT' && this.softError !== undefined) {
          this.fail(
            this.softError.code,
            `${this.softError.message}; then no acknowledgement (${e.message})`,
          );
        } else this.fail(code, e.message);
        break;
      }
    }
  }

  private fail(code: ErrorCode, message: string): void {
    if (this.failedCode !== undefined) return;
    this.failedCode = code;
    if (this.spec.role === 'source') this.io.post({ t: 'app-error', code, message });
    this.service?.destroy();
    this.lingerFrom ??= this.io.now();
  }

  /** Destination: the open request names a service; connect to it from inside the VM. */
  private onOpenRequest(raw: Uint8Array): void {
    const transport = this.transport as StreamTransport;
    let request: OpenRequest;
    try {
      request = parseOpen(raw);
    } catch {
      transport.reject('VMESH_ERR_BAD_REQUEST', 'malformed open request', this.io.now());
      return;
    }
    const address = this.spec.services?.[request.service];
    if (address === undefined) {
      transport.reject(
        'VMESH_ERR_UNKNOWN_SERVICE',
        `service "${request.service}" is not exposed`,
        this.io.now(),
      );
      return;
    }
    const allowed = this.spec.acl?.[request.service];
    const peer = this.e2e?.peerDevice;
    if (
      allowed !== undefined &&
      !allowed.includes('*') &&
      (peer === undefined || !(allowed.includes(peer.name) || allowed.includes(peer.device)))
    ) {
      transport.reject(
        'VMESH_ERR_ACCESS_DENIED',
        `device "${peer?.name ?? this.spec.source}" may not use service "${request.service}"`,
        this.io.now(),
      );
      return;
    }
    const { host, port } = splitHostPort(address);
    const socket = net.connect({ host, port });
    this.service = socket;
    socket.setNoDelay(true);
    socket.once('connect', () => {
      transport.accept(this.io.now());
      this.afterIo();
    });
    socket.on('data', (chunk: Buffer) => {
      if (!transport.write(chunk, this.io.now())) socket.pause();
      this.afterIo();
    });
    socket.once('end', () => {
      transport.end(this.io.now());
      this.sentEnd = true;
      this.afterIo();
    });
    socket.once('error', (err) => {
      const now = this.io.now();
      if (!this.opened && !transport.finished) {
        transport.reject(
          'VMESH_ERR_SERVICE_UNAVAILABLE',
          `service "${request.service}": ${err.message}`,
          now,
        );
      } else if (!transport.finished) {
        transport.abort(
          'VMESH_ERR_SERVICE_UNAVAILABLE',
          `service socket failed: ${err.message}`,
          now,
        );
      }
      this.sentEnd = true;
      this.afterIo();
    });
    this.opened = true;
  }

  private toService(data: Uint8Array): void {
    const socket = this.service;
    const transport = this.transport;
    if (socket === undefined || transport === undefined || socket.destroyed) return;
    const length = data.length;
    socket.write(data, () => {
      transport.consumed(length, this.io.now());
      this.afterIo();
    });
  }

  private afterIo(): void {
    if (this.done) return;
    this.pump();
    this.checkTimers(this.io.now());
    this.flush();
  }

  // ---- timers, reports, output ----------------------------------------------------------

  private checkTimers(now: number): void {
    if (this.done) return;
    const o = this.spec.options;
    this.avoidUnreachable();
    if (
      this.noRouteSince !== undefined &&
      now - this.noRouteSince >= o.noRouteGraceMs &&
      this.transport?.finished === false
    ) {
      const message =
        `no ${this.spec.protocolName} route to the destination for ${o.noRouteGraceMs} ms` +
        (this.softError === undefined ? '' : ` (last report: ${this.softError.message})`);
      this.transport.abort('VMESH_ERR_NO_ROUTE', message, now);
      this.sentEnd = true;
      this.fail('VMESH_ERR_NO_ROUTE', message);
    }
    if (
      this.e2e !== undefined &&
      !this.e2e.ready &&
      this.spec.role === 'source' &&
      now - this.startedAt >= o.idleTimeoutMs &&
      this.failedCode === undefined
    ) {
      // As for an unacknowledged transport: the last relay report, if any, says why.
      const message = `no answer to the end-to-end handshake within ${o.idleTimeoutMs} ms`;
      const code = this.softError?.code ?? 'VMESH_ERR_TIMEOUT';
      this.fail(
        code,
        this.softError === undefined ? message : `${this.softError.message}; ${message}`,
      );
      this.finish(code);
      return;
    }
    if (this.lingerFrom !== undefined && now - this.lingerFrom >= o.finLingerMs) {
      this.finish(this.failedCode ?? (this.spec.role === 'relay' ? 'fin' : 'closed'));
      return;
    }
    if (this.spec.role === 'relay' && now - this.lastPacketAt >= o.relayIdleMs) {
      this.finish('idle');
      return;
    }
  }

  private nextWake(): number | undefined {
    const o = this.spec.options;
    const times: number[] = [];
    const t = this.transport?.nextDeadline();
    if (t !== undefined) times.push(t);
    if (this.noRouteSince !== undefined) {
      times.push(this.noRouteSince + o.noRouteGraceMs);
      if (this.spec.avoid.length > 0 && !this.askedAvoidDrop)
        times.push(this.noRouteSince + AVOID_GRACE_MS);
    }
    if (this.lingerFrom !== undefined) times.push(this.lingerFrom + o.finLingerMs);
    if (this.spec.role === 'relay') times.push(this.lastPacketAt + o.relayIdleMs);
    if (this.reportDirty) times.push(this.lastReportAt + 500);
    if (this.e2e !== undefined && !this.e2e.ready && this.spec.role === 'source') {
      times.push(this.nextHandshakeAt, this.startedAt + o.idleTimeoutMs);
    }
    return times.length === 0 ? undefined : Math.min(...times);
  }

  private finish(reason: string): void {
    if (this.done) return;
    this.flushPackets();
    this.done = true;
    this.sendReport();
    this.service?.destroy();
    const code = isErrorCode(reason) ? reason : undefined;
    this.io.post(code === undefined ? { t: 'done', reason } : { t: 'done', reason, code });
    this.io.wake(undefined);
  }

  private drop(reason: string): void {
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    this.reportDirty = true;
  }

  private emit(peer: DeviceId, bytes: Uint8Array): void {
    this.counters.packetsOut++;
    this.counters.bytesOut += bytes.length;
    this.neighboursSeen.add(peer);
    this.out.push({ peer, bytes: ownBytes(bytes) });
    this.reportDirty = true;
  }

  private report(patch: VmReport): void {
    this.io.post({ t: 'report', report: patch });
  }

  private sendReport(): void {
    this.reportDirty = false;
    this.lastReportAt = this.io.now();
    const stats = this.transport?.stats();
    const patch: VmReport = {
      packetsIn: this.counters.packetsIn,
      packetsOut: this.counters.packetsOut,
      bytesIn: this.counters.bytesIn,
      bytesOut: this.counters.bytesOut,
      dropped: { ...this.counters.dropped },
      neighbours: [...this.neighboursSeen],
      appBytesSent: this.counters.appBytesSent,
      appBytesReceived: this.counters.appBytesReceived,
      salvaged: this.counters.salvaged,
      pathChanges: this.counters.pathChanges,
    };
    if (stats?.smoothedRttMs !== undefined) patch.rttMs = stats.smoothedRttMs;
    this.report(patch);
  }

  private flushPackets(): void {
    if (this.out.length === 0) return;
    const items = this.out;
    this.out = [];
    this.io.post({ t: 'send', items });
  }

  private flush(): void {
    if (this.done) return;
    this.flushPackets();
    if (this.reportDirty && this.io.now() - this.lastReportAt >= 500) this.sendReport();
    this.io.wake(this.nextWake());
  }
}

/** Sliding window of seen packet numbers (flood duplicate suppression), bounded memory. */
/** How long an end has no route around its avoid-set before it asks to drop the set (failover). */
const AVOID_GRACE_MS = 1000;
/** Packet numbers remembered for replay detection (per direction). */
const REPLAY_WINDOW = 8192;
/** Bytes of a rejected packet kept for inspection. */
const QUARANTINE_BYTES = 512;

export class PacketWindow {
  private readonly size: number;
  private highest = -1;
  private readonly bits: Uint8Array;

  constructor(size: number) {
    this.size = Math.max(64, size);
    this.bits = new Uint8Array(this.size);
  }

  /** Returns false if `n` was seen before or is too old to tell. */
  add(n: number): boolean {
    if (n > this.highest) {
      const clearFrom = Math.max(this.highest + 1, n - this.size + 1);
      for (let i = clearFrom; i < n; i++) this.bits[i % this.size] = 0;
      this.highest = n;
      this.bits[n % this.size] = 1;
      return true;
    }
    if (this.highest - n >= this.size) return false;
    if (this.bits[n % this.size] === 1) return false;
    this.bits[n % this.size] = 1;
    return true;
  }
}

function parseOpen(raw: Uint8Array): OpenRequest {
  const value: unknown = JSON.parse(Buffer.from(raw).toString('utf8'));
  if (typeof value !== 'object' || value === null) throw new Error('not an object');
  const { service, app } = value as { service?: unknown; app?: unknown };
  if (typeof service !== 'string' || typeof app !== 'string') throw new Error('missing fields');
  return { service, app };
}

function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(at + 1)) };
}

/** A copy that owns its whole ArrayBuffer (safe to transfer; never a pooled slab). */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  if (
    bytes.byteOffset === 0 &&
    bytes.buffer.byteLength === bytes.length &&
    !(bytes.buffer instanceof SharedArrayBuffer)
  ) {
    return bytes;
  }
  return new Uint8Array(bytes);
}

export { toVmeshError };
