/**
 * Protocol registry: names and wire ids of the routing protocols a device can
 * run, and the built-in ones. Third-party protocols (a later issue) register
 * here too.
 */
import { VmeshError } from '../errors/index.ts';
import { flooding } from './flooding/index.ts';
import { linkState } from './link-state/index.ts';
import type { ProtocolDescriptor } from './types.ts';

const NAME = /^[a-z][a-z0-9-]{0,31}$/;

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

export function builtinProtocols(): ProtocolDescriptor[] {
  return [
    {
      name: 'link-state',
      id: 1,
      summary: 'OLSR/OSPF-style: hellos, flooded link-state advertisements, shortest paths',
      create: linkState(),
    },
    {
      name: 'flooding',
      id: 2,
      summary: 'controlled flooding: every packet to every neighbour, duplicates suppressed',
      create: flooding(),
    },
  ];
}
