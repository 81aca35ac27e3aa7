/** Plain-text rendering of a device status snapshot for `vmesh status`. */

interface Snapshot {
  device?: {
    id?: string;
    name?: string;
    listen?: string | null;
    protocols?: string[];
    services?: string[];
  };
  links?: { name: string; direction: string; rttMs: number | null }[];
  directory?: { device: string; name: string }[];
  routing?: {
    protocol: string;
    routes: { destination: string; nextHop: string; hops: number; cost: number }[];
  }[];
  vms?: {
    vmId: string;
    role: string;
    connection: string;
    protocol: string;
    endedAt?: string;
    endReason?: string;
  }[];
  vconns?: {
    connection: string;
    app: string;
    destinationName: string;
    service: string;
    protocol: string;
    state: string;
    reason: string;
    forwardPathNames?: string[];
    error?: { code: string };
  }[];
}

export function formatStatus(raw: unknown): string {
  const s = raw as Snapshot;
  const names = new Map((s.directory ?? []).map((e) => [e.device, e.name]));
  const n = (id: string): string => names.get(id) ?? id.slice(0, 8);
  const out: string[] = [];
  out.push(
    `device ${s.device?.name ?? '?'} (${s.device?.id ?? '?'})  listen ${s.device?.listen ?? '-'}`,
  );
  out.push(
    `protocols ${(s.device?.protocols ?? []).join(', ')}   services ${(s.device?.services ?? []).join(', ') || '-'}`,
  );
  out.push('', 'links');
  for (const l of s.links ?? [])
    out.push(
      `  ${l.name.padEnd(12)} ${l.direction.padEnd(9)} rtt ${l.rttMs === null ? '-' : `${l.rttMs.toFixed(2)} ms`}`,
    );
  for (const r of s.routing ?? []) {
    out.push('', `routes (${r.protocol})`);
    for (const e of r.routes)
      out.push(`  ${n(e.destination).padEnd(12)} via ${n(e.nextHop).padEnd(12)} hops ${e.hops}`);
  }
  const live = (s.vms ?? []).filter((v) => v.endedAt === undefined);
  out.push('', `VMs: ${live.length} running, ${(s.vms ?? []).length - live.length} ended`);
  for (const v of s.vms ?? []) {
    out.push(
      `  ${v.vmId} ${v.role.padEnd(11)} conn ${v.connection} ${v.protocol.padEnd(10)} ${v.endedAt === undefined ? 'running' : `ended (${v.endReason ?? '?'})`}`,
    );
  }
  out.push('', 'connections from this device');
  for (const c of s.vconns ?? []) {
    const path = c.forwardPathNames === undefined ? '' : ` via ${c.forwardPathNames.join(' → ')}`;
    out.push(
      `  ${c.connection} ${c.app} → ${c.destinationName}/${c.service} ${c.protocol} ${c.state}${c.error ? ` ${c.error.code}` : ''}${path}`,
    );
    out.push(`    why: ${c.reason}`);
  }
  return out.join('\n');
}
