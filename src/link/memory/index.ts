/**
 * In-memory link transport for tests and simulation: addresses are any
 * strings registered on one `MemoryNetwork`; a dial gets one end of an
 * in-process duplex pair and the listener the other. Node 20 has no
 * stream.duplexPair, hence `duplexPair()` here.
 */
import { Duplex } from 'node:stream';
import { VmeshError } from '../../errors/index.ts';
import type { Listener, Transport } from '../types.ts';

/** Two connected Duplex streams: what one writes, the other reads (next tick, in order). */
export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, callback) {
        const copy = Buffer.from(chunk);
        process.nextTick(() => {
          const p = peer();
          if (!p.destroyed) p.push(copy);
        });
        callback();
      },
      final(callback) {
        process.nextTick(() => {
          const p = peer();
          if (!p.destroyed) p.push(null);
        });
        callback();
      },
      destroy(err, callback) {
        process.nextTick(() => {
          const p = peer();
          if (!p.destroyed) p.destroy();
        });
        callback(err);
      },
    });
  ends.push(
    make(() => ends[1] as Duplex),
    make(() => ends[0] as Duplex),
  );
  return [ends[0] as Duplex, ends[1] as Duplex];
}

/** A namespace of in-memory addresses shared by the transports made from it. */
export class MemoryNetwork {
  private readonly listeners = new Map<string, (stream: Duplex) => void>();

  transport(): Transport {
    return {
      listen: (address, onConnection): Promise<Listener> => {
        if (this.listeners.has(address)) {
          return Promise.reject(
            new VmeshError('VMESH_ERR_CONFIG', `memory address ${address} is in use`),
          );
        }
        this.listeners.set(address, onConnection);
        return Promise.resolve({
          address,
          close: async () => {
            this.listeners.delete(address);
          },
        });
      },
      dial: (address): Promise<Duplex> => {
        const accept = this.listeners.get(address);
        if (accept === undefined) {
          return Promise.reject(
            new VmeshError('VMESH_ERR_LINK_DOWN', `nothing listens on memory address ${address}`),
          );
        }
        const [local, remote] = duplexPair();
        process.nextTick(() => accept(remote));
        return Promise.resolve(local);
      },
    };
  }
}
