/**
 * One simulation run per protocol on the same topology, churn and traffic
 * (same seed), measuring what `vmesh sim` reports: time to converge, control
 * overhead per device per second, delivery ratio and path stretch under churn.
 */
import { VmeshError } from '../errors/index.ts';
import type { ProtocolDescriptor } from '../routing/index.ts';
import type { DeviceId } from '../wire/index.ts';
import { SimNetwork } from './network.ts';
import { randomInt, seeded } from './rng.ts';
import { distance } from './topology.ts';
import type { LinkSpec, Topology } from './topology.ts';
import { Traffic } from './traffic.ts';
import type { Flow } from './traffic.ts';

/** A scripted event, at a time relative to the start of the churn phase. */
export type ScriptEvent =
  | { at: number; action: 'link-down' | 'link-up'; a: string; b: string }
  | { at: number; action: 'crash' | 'restart'; device: string }
  | { at: number; action: 'partition'; group: string[] }
  | { at: number; action: 'heal' };

export interface SimSpec {
  topology: Topology;
  protocols: ProtocolDescriptor[];
  /** @default 1 */
  seed?: number;
  link?: Partial<LinkSpec>;
  /**
   * Longest time allowed to converge before traffic starts anyway, ms.
   * @default 60000
   */
  convergeLimitMs?: number;
  /**
   * Length of the traffic and churn phase, ms.
   * @default 60000
   */
  durationMs?: number;
  /**
   * Flows (random source/destination pairs, the same for every protocol).
   * @default min(20, devices)
   */
  flows?: number;
  /**
   * Interval between packets of one flow, ms.
   * @default 200
   */
  packetIntervalMs?: number;
  /**
   * Random link failures per minute during the churn phase.
   * @default 6
   */
  linkFailuresPerMinute?: number;
  /**
   * How long a randomly failed link stays down, ms.
   * @default 10000
   */
  linkDownMs?: number;
  /** Scripted events (link down/up, crash/restart, partition/heal). */
  events?: ScriptEvent[];
  /**
   * Mobility (geometric topologies only): devices move by a random walk at this
   * speed (unit square per second) and links follow the radius.
   * @default 0
   */
  mobilitySpeed?: number;
  /** Told when each protocol's run starts (progress for the CLI). */
  onProgress?: (protocol: string, index: number, total: number) => void;
}

export interface ProtocolResult {
  protocol: string;
  /** Virtual ms until every flow's source had a loop-free route; null if never within the limit. */
  convergeMs: number | null;
  controlMessagesPerDeviceSecond: number;
  controlBytesPerDeviceSecond: number;
  packetsSent: number;
  packetsDelivered: number;
  deliveryRatio: number;
  meanStretch: number;
  drops: Record<string, number>;
  routeChanges: number;
  dataTransmissions: number;
}

export interface SimResult {
  topology: string;
  devices: number;
  links: number;
  seed: number;
  durationMs: number;
  flows: number;
  linkFailures: number;
  results: ProtocolResult[];
}

interface Churn {
  at: number;
  a: number;
  b: number;
  upAt: number;
}

export function simulate(spec: SimSpec): SimResult {
  const seed = spec.seed ?? 1;
  const t = spec.topology;
  if (spec.protocols.length === 0)
    throw new VmeshError('VMESH_ERR_CONFIG', 'no protocols to simulate');
  const durationMs = spec.durationMs ?? 60000;
  const random = seeded(seed ^ 0x5eed);
  const flowCount = Math.max(1, spec.flows ?? Math.min(20, t.size));
  const flows: Flow[] = [];
  for (let k = 0; k < flowCount; k++) {
    const from = randomInt(random, t.size);
    let to = randomInt(random, t.size - 1);
    if (to >= from) to++;
    flows.push({ from, to });
  }
  const failures = Math.round(((spec.linkFailuresPerMinute ?? 6) * durationMs) / 60000);
  const churn: Churn[] = [];
  for (let k = 0; k < failures && t.edges.length > 0; k++) {
    const e = t.edges[randomInt(random, t.edges.length)] as { a: number; b: number };
    const at = random() * durationMs * 0.8;
    churn.push({ at, a: e.a, b: e.b, upAt: at + (spec.linkDownMs ?? 10000) });
  }
  const byName = new Map(t.names.map((n, i) => [n, i]));
  const dev = (name: string): number => {
    const i = byName.get(name);
    if (i === undefined)
      throw new VmeshError(
        'VMESH_ERR_UNKNOWN_DEVICE',
        `scripted event names unknown device "${name}"`,
      );
    return i;
  };
  for (const e of spec.events ?? []) {
    if ('a' in e) [e.a, e.b].forEach(dev);
    if ('device' in e) dev(e.device);
    if ('group' in e) e.group.forEach(dev);
  }
  if ((spec.mobilitySpeed ?? 0) > 0 && t.positions === undefined)
    throw new VmeshError('VMESH_ERR_CONFIG', 'mobility needs a geometric topology (positions)');

  const results = spec.protocols.map((p, i) => {
    spec.onProgress?.(p.name, i, spec.protocols.length);
    return runOne(spec, p, { seed, flows, churn, dev, durationMs });
  });
  return {
    topology: t.label,
    devices: t.size,
    links: t.edges.length,
    seed,
    durationMs,
    flows: flowCount,
    linkFailures: churn.length,
    results,
  };
}

function runOne(
  spec: SimSpec,
  p: ProtocolDescriptor,
  ctx: {
    seed: number;
    flows: Flow[];
    churn: Churn[];
    dev: (n: string) => number;
    durationMs: number;
  },
): ProtocolResult {
  const net = new SimNetwork(spec.topology, p.create, { seed: ctx.seed, link: spec.link ?? {} });
  const pairs = [...new Map(ctx.flows.map((f) => [`${f.from}>${f.to}`, f])).values()];
  // Reactive protocols discover on demand: ask for the flows' routes at once.
  for (const f of pairs) {
    const node = net.node(f.from);
    if (node?.discover !== undefined)
      net.apply(f.from, node.discover(net.ids[f.to] as DeviceId, new Set(), net.now));
  }
  let routesChangedSince = true;
  let converged: number | null = null;
  const stop = net.observe({
    routesChanged: () => {
      routesChangedSince = true;
    },
    step: (now) => {
      if (converged !== null || !routesChangedSince) return;
      routesChangedSince = false;
      if (pairs.every((f) => 'failed' in net.follow(f.from, f.to) === false)) converged = now;
    },
  });
  const limit = spec.convergeLimitMs ?? 60000;
  for (let at = 0; converged === null && at < limit; at += 100) net.runUntil(at + 100);
  stop();

  const start = net.now;
  const before = net.stats.map((s) => ({ ...s }));
  const traffic = new Traffic(net);
  const interval = spec.packetIntervalMs ?? 200;
  const count = Math.floor(ctx.durationMs / interval);
  for (const f of ctx.flows) traffic.stream(f, count, interval);
  for (const c of ctx.churn) {
    net.at(start + c.at, () => net.linkDown(c.a, c.b));
    net.at(start + c.upAt, () => net.linkUp(c.a, c.b));
  }
  for (const e of spec.events ?? []) {
    net.at(start + e.at, () => {
      if (e.action === 'link-down') net.linkDown(ctx.dev(e.a), ctx.dev(e.b));
      else if (e.action === 'link-up') net.linkUp(ctx.dev(e.a), ctx.dev(e.b));
      else if (e.action === 'crash') net.crash(ctx.dev(e.device));
      else if (e.action === 'restart') net.restart(ctx.dev(e.device));
      else if (e.action === 'partition') net.partition(e.group.map(ctx.dev));
      else net.heal();
    });
  }
  if ((spec.mobilitySpeed ?? 0) > 0) moveDevices(net, spec, start, ctx.durationMs);
  // Let the last packets arrive.
  net.runUntil(start + ctx.durationMs + 5000);
  const seconds = (net.now - start) / 1000;
  let msgs = 0;
  let bytes = 0;
  let changes = 0;
  net.stats.forEach((s, i) => {
    const b = before[i] as typeof s;
    msgs += s.messagesSent - b.messagesSent;
    bytes += s.bytesSent - b.bytesSent;
    changes += s.routeChanges - b.routeChanges;
  });
  const perDevSec = (x: number): number => x / net.size / Math.max(seconds, 1e-9);
  return {
    protocol: p.name,
    convergeMs: converged,
    controlMessagesPerDeviceSecond: perDevSec(msgs),
    controlBytesPerDeviceSecond: perDevSec(bytes),
    packetsSent: traffic.stats.sent,
    packetsDelivered: traffic.stats.delivered,
    deliveryRatio: traffic.deliveryRatio(),
    meanStretch: traffic.meanStretch(),
    drops: traffic.stats.dropped,
    routeChanges: changes,
    dataTransmissions: traffic.stats.transmissions,
  };
}

/** Random-walk mobility: every second each device moves, and links follow the radius. */
function moveDevices(net: SimNetwork, spec: SimSpec, start: number, durationMs: number): void {
  const t = spec.topology;
  const pos = (t.positions ?? []).map((p) => [...p] as [number, number]);
  const random = seeded((spec.seed ?? 1) ^ 0x30b1e);
  const radius = t.radius ?? 0.3;
  const speed = spec.mobilitySpeed ?? 0;
  for (let s = 1000; s < durationMs; s += 1000) {
    net.at(start + s, () => {
      for (const p of pos) {
        const angle = random() * 2 * Math.PI;
        p[0] = Math.min(1, Math.max(0, p[0] + speed * Math.cos(angle)));
        p[1] = Math.min(1, Math.max(0, p[1] + speed * Math.sin(angle)));
      }
      for (let i = 0; i < pos.length; i++) {
        for (let j = i + 1; j < pos.length; j++) {
          const near = distance(pos[i] as [number, number], pos[j] as [number, number]) < radius;
          if (near && !net.linked(i, j)) net.linkUp(i, j);
          else if (!near && net.linked(i, j)) net.linkDown(i, j);
        }
      }
    });
  }
}
