/**
 * Data traffic on a SimNetwork, forwarded hop by hop with each device's
 * current routing decision as a vmesh VM would make it: unicast next hops,
 * floods with duplicate suppression, or source routes carried in the packet
 * (salvaged by a relay whose next link is gone). Reactive protocols are
 * asked to discover a route first and told when a route is in use, as the
 * daemon does. Counts what was sent, delivered and dropped (by reason) and
 * the path stretch of what arrived.
 */
import type { DeviceId } from '../wire/index.ts';
import type { SimNetwork } from './network.ts';

export interface Flow {
  from: number;
  to: number;
}

export interface TrafficStats {
  sent: number;
  delivered: number;
  dropped: Record<string, number>;
  /** Sum over delivered packets of hops taken / shortest hops at send time. */
  stretchSum: number;
  /** Data transmissions on links (a flood makes many per packet). */
  transmissions: number;
}

interface Packet {
  id: number;
  flow: Flow;
  shortest: number;
  hops: number;
  /** Source route (indexes), in source mode. */
  route?: number[];
  visited: Set<number>;
}

export interface TrafficOptions {
  /**
   * How long a source holds a packet while a reactive protocol discovers a route, ms.
   * @default 3000
   */
  discoveryWaitMs?: number;
  /**
   * Packets a source holds per flow while it waits for a route.
   * @default 64
   */
  maxHeld?: number;
  /**
   * Hop limit of data packets.
   * @default 64
   */
  hopLimit?: number;
}

export class Traffic {
  readonly stats: TrafficStats = {
    sent: 0,
    delivered: 0,
    dropped: {},
    stretchSum: 0,
    transmissions: 0,
  };
  /** Packets a relay salvaged with its own source route. */
  salvaged = 0;
  private nextId = 0;
  private readonly held = new Map<string, { packet: Packet; since: number }[]>();
  private readonly floodSeen = new Map<number, Set<number>>();
  private readonly o: Required<TrafficOptions>;

  constructor(
    private readonly net: SimNetwork,
    opts: TrafficOptions = {},
  ) {
    this.o = { discoveryWaitMs: 3000, maxHeld: 64, hopLimit: 64, ...opts };
    net.observe({
      routesChanged: (device) => {
        for (const key of this.held.keys()) if (key.startsWith(`${device}>`)) this.release(key);
      },
    });
  }

  /** Sends one packet of `flow` now. */
  send(flow: Flow): void {
    const net = this.net;
    this.stats.sent++;
    const shortest = net.hopsFrom(flow.from).get(flow.to);
    if (!net.alive(flow.from) || shortest === undefined) {
      this.drop('unreachable');
      return;
    }
    const packet: Packet = { id: this.nextId++, flow, shortest, hops: 0, visited: new Set() };
    const node = net.node(flow.from);
    if (node === undefined) return;
    const dest = net.ids[flow.to] as DeviceId;
    if (node.reactive === true)
      net.apply(flow.from, node.routeInUse?.(dest, new Set(), net.now) ?? []);
    if (node.reactive === true && node.route(dest) === undefined) {
      this.hold(packet);
      return;
    }
    this.at(flow.from, packet, undefined);
  }

  /** Sends `count` packets of `flow`, one every `intervalMs`, starting now. */
  stream(flow: Flow, count: number, intervalMs: number): void {
    for (let k = 0; k < count; k++)
      this.net.at(this.net.now + k * intervalMs, () => this.send(flow));
  }

  /** Delivery ratio so far (0..1). */
  deliveryRatio(): number {
    return this.stats.sent === 0 ? 1 : this.stats.delivered / this.stats.sent;
  }

  meanStretch(): number {
    return this.stats.delivered === 0 ? 0 : this.stats.stretchSum / this.stats.delivered;
  }

  private drop(reason: string): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
  }

  private hold(packet: Packet): void {
    const net = this.net;
    const key = `${packet.flow.from}>${packet.flow.to}`;
    let list = this.held.get(key);
    if (list === undefined) {
      list = [];
      this.held.set(key, list);
    }
    if (list.length >= this.o.maxHeld) {
      this.drop('held-queue-full');
      return;
    }
    list.push({ packet, since: net.now });
    const node = net.node(packet.flow.from);
    if (node?.discover !== undefined)
      net.apply(
        packet.flow.from,
        node.discover(net.ids[packet.flow.to] as DeviceId, new Set(), net.now),
      );
    net.at(net.now + this.o.discoveryWaitMs, () => {
      const l = this.held.get(key);
      const i = l?.findIndex((h) => h.packet === packet) ?? -1;
      if (l === undefined || i < 0) return;
      l.splice(i, 1);
      this.drop('no-route');
    });
  }

  private release(key: string): void {
    const list = this.held.get(key);
    if (list === undefined || list.length === 0) return;
    const first = list[0] as { packet: Packet };
    const node = this.net.node(first.packet.flow.from);
    if (node?.route(this.net.ids[first.packet.flow.to] as DeviceId) === undefined) return;
    this.held.delete(key);
    for (const h of list) this.at(h.packet.flow.from, h.packet, undefined);
  }

  /** Packet `p` is at device `i` (arrived from `from`). */
  private at(i: number, p: Packet, from: number | undefined): void {
    const net = this.net;
    const node = net.node(i);
    if (node === undefined) {
      this.drop('device-down');
      return;
    }
    if (i === p.flow.to) {
      if (node.mode === 'flood') {
        const seen = this.floodSeen.get(p.id) ?? new Set<number>();
        this.floodSeen.set(p.id, seen);
        if (seen.has(i)) return;
        seen.add(i);
      }
      this.stats.delivered++;
      this.stats.stretchSum += p.hops / Math.max(1, p.shortest);
      return;
    }
    if (p.hops >= this.o.hopLimit) {
      this.drop('hop-limit');
      return;
    }
    const dest = net.ids[p.flow.to] as DeviceId;
    if (node.reactive === true && i !== p.flow.from)
      net.apply(i, node.routeInUse?.(dest, new Set(), net.now) ?? []);
    if (node.mode === 'flood') {
      const seen = this.floodSeen.get(p.id) ?? new Set<number>();
      this.floodSeen.set(p.id, seen);
      if (seen.has(i)) return;
      seen.add(i);
      const next = net.linked(i, p.flow.to)
        ? [p.flow.to]
        : net.neighbours(i).filter((n) => n !== from && n !== p.flow.from);
      if (next.length === 0 && i === p.flow.from) this.drop('no-route');
      for (const n of next) this.hop(i, n, { ...p, hops: p.hops + 1 });
      return;
    }
    if (p.visited.has(i)) {
      this.drop('loop');
      return;
    }
    p.visited.add(i);
    let next: number | undefined;
    if (node.mode === 'source') {
      if (p.route === undefined) {
        const path = node.route(dest)?.path;
        if (path !== undefined) p.route = path.map((id) => net.indexOf(id));
      }
      const k = p.route?.indexOf(i) ?? -1;
      next = k >= 0 ? p.route?.[k + 1] : undefined;
      if (next === undefined || !net.linked(i, next)) {
        // Salvage: this device's own path to the destination replaces the rest of the route.
        const own = node.route(dest)?.path?.map((id) => net.indexOf(id));
        if (own !== undefined && own.length > 1 && net.linked(i, own[1] as number)) {
          p.route = [...(p.route?.slice(0, Math.max(0, k)) ?? []), ...own];
          next = own[1];
          this.salvaged++;
        } else next = undefined;
      }
    } else {
      const hop = node.route(dest)?.nextHop;
      next = hop === undefined ? undefined : net.indexOf(hop);
    }
    if (next === undefined || next < 0 || !net.linked(i, next)) {
      this.drop('no-route');
      return;
    }
    this.hop(i, next, { ...p, hops: p.hops + 1 });
  }

  private hop(from: number, to: number, p: Packet): void {
    const net = this.net;
    const spec = net.linkSpec(from, to);
    if (spec === undefined) {
      this.drop('link-down');
      return;
    }
    this.stats.transmissions++;
    if (spec.loss > 0 && net.dataRandom() < spec.loss) {
      this.drop('lost');
      return;
    }
    net.at(net.now + spec.delayMs, () => {
      if (!net.linked(from, to)) {
        this.drop('link-down');
        return;
      }
      this.at(to, p, from);
    });
  }
}
