/**
 * Protocol registry: names and wire ids of the routing protocols a device can
 * run, and the built-in ones. Third-party protocols (routing.modules) register
 * here too.
 */
import { VmeshError } from '../errors/index.ts';
import { flooding } from './flooding/index.ts';
import { aodv } from './aodv/index.ts';
import { distanceVector } from './distance-vector/index.ts';
import { linkState } from './link-state/index.ts';
import { sourceRoute } from './source-route/index.ts';
import type { ProtocolDescriptor } from './types.ts';

const NAME = /^[a-z][a-z0-9-]{0,31}$/;

const METHODS = [
  'start',
  'linkUp',
  'linkDown',
  'linkCost',
  'receive',
  'tick',
  'nextDeadline',
  'route',
  'forwardingTable',
  'snapshot',
] as const;

/**
 * Checks that `value` is a usable protocol descriptor (a third-party module's
 * export): name, id and summary well formed, and `create` a factory whose
 * instance has every member of the RoutingProtocol contract, the same name
 * and id, a known forwarding mode, and `discover` when it says it is
 * reactive. Throws VMESH_ERR_CONFIG naming `source` and what is wrong.
 */
export function validateDescriptor(value: unknown, source: string): ProtocolDescriptor {
  const bad = (why: string): VmeshError =>
    new VmeshError('VMESH_ERR_CONFIG', `${source}: not a valid routing protocol: ${why}`);
  if (typeof value !== 'object' || value === null)
    throw bad('expected an object { name, id, summary, create }');
  const d = value as Record<string, unknown>;
  if (typeof d.name !== 'string' || !NAME.test(d.name)) throw bad(`"name" must match ${NAME}`);
  if (typeof d.id !== 'number' || !Number.isInteger(d.id) || d.id < 1 || d.id > 255)
    throw bad('"id" must be an integer 1..255');
  if (typeof d.summary !== 'string') throw bad('"summary" must be a string');
  if (typeof d.create !== 'function') throw bad('"create" must be a factory function');
  let instance: Record<string, unknown>;
  try {
    instance = (d.create as (c: unknown) => Record<string, unknown>)({
      self: '0'.repeat(32),
      random: () => 0.5,
    });
  } catch (err) {
    throw bad(`its factory threw: ${(err as Error).message}`);
  }
  if (typeof instance !== 'object' || instance === null)
    throw bad('its factory returned no object');
  for (const m of METHODS)
    if (typeof instance[m] !== 'function') throw bad(`the instance has no ${m}()`);
  if (instance.name !== d.name || instance.id !== d.id)
    throw bad(
      `the instance says it is ${String(instance.name)}/${String(instance.id)}, not ${d.name}/${d.id}`,
    );
  if (!['unicast', 'flood', 'source'].includes(instance.mode as string))
    throw bad('"mode" must be unicast, flood or source');
  if (instance.reactive === true && typeof instance.discover !== 'function')
    throw bad('a reactive protocol needs discover()');
  return d as unknown as ProtocolDescriptor;
}

export class ProtocolRegistry {
  private readonly byName = new Map<string, ProtocolDescriptor>();
  private readonly byWireId = new Map<number, ProtocolDescriptor>();

  register(d: ProtocolDescriptor): void {
    if (!NAME.test(d.name))
      throw new VmeshError('VMESH_ERR_CONFIG', `bad protocol name "${d.name}"`);
    if (!Number.isInteger(d.id) || d.id < 1 || d.id > 255) {
      throw new VmeshError('VMESH_ERR_CONFIG', `protocol ${d.name}: id must be 1..255`);
    }
    if (this.byName.has(d.name))
      throw new VmeshError('VMESH_ERR_CONFIG', `protocol "${d.name}" is already registered`);
    if (this.byWireId.has(d.id))
      throw new VmeshError('VMESH_ERR_CONFIG', `protocol id ${d.id} is already taken`);
    this.byName.set(d.name, d);
    this.byWireId.set(d.id, d);
  }

  get(name: string): ProtocolDescriptor {
    const d = this.byName.get(name);
    if (d === undefined) {
      throw new VmeshError(
        'VMESH_ERR_UNKNOWN_PROTOCOL',
        `unknown routing protocol "${name}" (known: ${this.names().join(', ')})`,
      );
    }
    return d;
  }

  byId(id: number): ProtocolDescriptor | undefined {
    return this.byWireId.get(id);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  list(): ProtocolDescriptor[] {
    return [...this.byName.values()];
  }
}

/** The built-in protocols, in the default order of preference (flooding last: it costs the most per packet). */
export function builtinProtocols(): ProtocolDescriptor[] {
  return [
    {
      name: 'link-state',
      id: 1,
      summary: 'OLSR/OSPF-style: hellos, flooded link-state advertisements, shortest paths',
      create: linkState(),
    },
    {
      name: 'distance-vector',
      id: 3,
      summary:
        'Babel (RFC 8966): distance vector with sequence numbers and the feasibility condition, loop-free',
      create: distanceVector(),
    },
    {
      name: 'aodv',
      id: 4,
      summary:
        'AODV (RFC 3561): on-demand discovery with expanding ring search, sequence numbers, RERR, local repair',
      create: aodv(),
    },
    {
      name: 'source-route',
      id: 5,
      summary:
        'DSR-style (RFC 4728): on-demand route discovery, the whole path carried in each packet, salvaging',
      create: sourceRoute(),
    },
    {
      name: 'flooding',
      id: 2,
      summary: 'controlled flooding: every packet to every neighbour, duplicates suppressed',
      create: flooding(),
    },
  ];
}
