/**
 * Forwarding tables for VMs (the FIB side of rule 3, "control plane in the
 * device, data plane in the VMs").
 *
 * One table per (protocol, avoid-set) in use, built from that protocol's RIB
 * by `forwardingTable(avoid)`, versioned, and pushed to every VM subscribed
 * to it whenever the protocol reports `routesChanged` or a link changes. A VM
 * never asks per packet. Tables nobody uses any more are dropped.
 */
import type { ForwardingTable, RoutingProtocol } from '../routing/index.ts';
import type { DeviceId } from '../wire/index.ts';

export interface FibSubscriber {
  push(table: ForwardingTable): void;
}

interface Entry {
  protocol: RoutingProtocol;
  avoid: ReadonlySet<DeviceId>;
  table: ForwardingTable;
  digest: string;
  subscribers: Set<FibSubscriber>;
}

export class ForwardingTables {
  private readonly entries = new Map<string, Entry>();
  private version = 0;

  /** The current table for (protocol, avoid), subscribing `subscriber` to its updates. */
  subscribe(
    protocol: RoutingProtocol,
    avoid: readonly DeviceId[],
    subscriber: FibSubscriber,
  ): ForwardingTable {
    const key = keyOf(protocol.id, avoid);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const avoidSet = new Set(avoid);
      const table = this.build(protocol, avoidSet);
      entry = { protocol, avoid: avoidSet, table, digest: digestOf(table), subscribers: new Set() };
      this.entries.set(key, entry);
    }
    entry.subscribers.add(subscriber);
    return entry.table;
  }

  /** Moves `subscriber` to (protocol, avoid) and returns that table (failover drops an avoid-set). */
  resubscribe(
    protocol: RoutingProtocol,
    avoid: readonly DeviceId[],
    subscriber: FibSubscriber,
  ): ForwardingTable {
    this.unsubscribe(subscriber);
    return this.subscribe(protocol, avoid, subscriber);
  }

  unsubscribe(subscriber: FibSubscriber): void {
    for (const [key, entry] of this.entries) {
      entry.subscribers.delete(subscriber);
      if (entry.subscribers.size === 0) this.entries.delete(key);
    }
  }

  /** Rebuilds the tables of `protocol` (or all) and pushes changed ones. */
  refresh(protocol?: RoutingProtocol): void {
    for (const entry of this.entries.values()) {
      if (protocol !== undefined && entry.protocol !== protocol) continue;
      const table = this.build(entry.protocol, entry.avoid);
      const digest = digestOf(table);
      if (digest === entry.digest) continue;
      entry.table = table;
      entry.digest = digest;
      for (const s of entry.subscribers) s.push(table);
    }
  }

  private build(protocol: RoutingProtocol, avoid: ReadonlySet<DeviceId>): ForwardingTable {
    return { ...protocol.forwardingTable(avoid), version: ++this.version };
  }
}

function keyOf(protocol: number, avoid: readonly DeviceId[]): string {
  return `${protocol}|${[...avoid].sort().join(',')}`;
}

function digestOf(t: ForwardingTable): string {
  return JSON.stringify([
    t.mode,
    t.neighbours,
    Object.entries(t.nextHops).sort(),
    Object.entries(t.paths ?? {}).sort(),
  ]);
}
