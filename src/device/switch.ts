/**
 * The packet switch: where a PACKET frame from a link meets the VMs.
 *
 * Decision (claim 1 (g), (h)): a packet of a connection that has a VM here
 * goes to that VM; a packet of an unknown connection spawns a relay VM (any
 * DATA or HANDSHAKE packet, when this device is not the destination) or a
 * destination VM (the vconn's first end-to-end HANDSHAKE packet, flagged SYN,
 * addressed to this device). Everything else is dropped and counted
 * by reason, and — for DATA and HANDSHAKE packets — answered with an ERROR packet back to
 * the neighbour it came from, so the source learns why (never an ERROR about
 * an ERROR). Malformed frames are dropped and counted; the link carries on.
 */
import { ERRORS, toVmeshError } from '../errors/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import type { Counters } from '../observe/index.ts';
import type { RoutingProtocol } from '../routing/index.ts';
import type { VmHandle, VmRole } from '../vm/index.ts';
import {
  PacketFlag,
  PacketKind,
  decodePacket,
  encodeErrorPayload,
  encodePacket,
} from '../wire/index.ts';
import type { ConnectionId, DeviceId, Packet } from '../wire/index.ts';

export interface SwitchDeps {
  self: DeviceId;
  counters: Counters;
  protocols: ReadonlyMap<number, RoutingProtocol>;
  vms: ReadonlyMap<ConnectionId, VmHandle>;
  send(to: DeviceId, bytes: Uint8Array): void;
  /** Spawns a VM for the packet's connection; throws VmeshError to refuse. */
  spawn(role: Exclude<VmRole, 'source'>, packet: Packet): VmHandle;
}

export class Switch {
  private readonly deps: SwitchDeps;

  constructor(deps: SwitchDeps) {
    this.deps = deps;
  }

  onPacket(from: DeviceId, body: Uint8Array): void {
    const { counters } = this.deps;
    let packet: Packet;
    try {
      packet = decodePacket(body);
    } catch {
      counters.inc('switch.dropped', { reason: 'malformed' });
      return;
    }
    counters.inc('switch.received');
    let vm = this.deps.vms.get(packet.connection);
    if (vm === undefined || !vm.alive) {
      if (packet.kind === PacketKind.ERROR) {
        counters.inc('switch.dropped', { reason: 'error-for-unknown-connection' });
        return;
      }
      const toMe = packet.destination === this.deps.self;
      // A destination VM starts only with the vconn's end-to-end handshake.
      if (toMe && (packet.kind !== PacketKind.HANDSHAKE || (packet.flags & PacketFlag.SYN) === 0)) {
        this.refuse(
          from,
          packet,
          'VMESH_ERR_UNKNOWN_CONNECTION',
          'no such connection at the destination',
        );
        return;
      }
      if (packet.source === this.deps.self) {
        // One of our own vconn's packets came back after its source VM ended.
        counters.inc('switch.dropped', { reason: 'own-ended-connection' });
        return;
      }
      try {
        vm = this.deps.spawn(toMe ? 'destination' : 'relay', packet);
      } catch (err) {
        const e = toVmeshError(err);
        this.refuse(from, packet, e.code, e.message);
        return;
      }
    }
    // Own the bytes: the frame body is a view into a socket chunk shared with other frames.
    if (!vm.deliver({ peer: from, bytes: new Uint8Array(body) })) {
      counters.inc('switch.dropped', { reason: 'vm-queue-full' });
    }
  }

  private refuse(from: DeviceId, about: Packet, code: ErrorCode, reason: string): void {
    this.deps.counters.inc('switch.dropped', { reason: code });
    const error: Packet = {
      kind: PacketKind.ERROR,
      protocol: about.protocol,
      flags: 0,
      hopLimit: 32,
      connection: about.connection,
      source: this.deps.self,
      destination: about.source,
      packetNumber: 0,
      payload: encodeErrorPayload({ wire: ERRORS[code].wire, reason: reason.slice(0, 200) }),
    };
    if (about.avoid !== undefined) error.avoid = about.avoid;
    this.deps.send(from, encodePacket(error));
  }
}
