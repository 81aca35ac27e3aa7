/** TCP link transport: listen and dial "host:port" (IPv6 as "[::1]:port"), Nagle off. */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { VmeshError } from '../../errors/index.ts';
import type { Listener, Transport } from '../types.ts';

/** Splits "host:port" / "[v6]:port". Throws VMESH_ERR_CONFIG on bad input. */
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !Number.isInteger(port) || port > 65535) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `bad address "${address}": expected "host:port" (IPv6 as "[::1]:port")`,
    );
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function tcpTransport(): Transport {
  return {
    listen(address, onConnection): Promise<Listener> {
      const { host, port } = parseHostPort(address);
      const sockets = new Set<net.Socket>();
      const server = net.createServer((socket) => {
        socket.setNoDelay(true);
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        onConnection(socket);
      });
      return new Promise((resolve, reject) => {
        server.once('error', (err) =>
          reject(new VmeshError('VMESH_ERR_CONFIG', `cannot listen on ${address}: ${err.message}`)),
        );
        server.listen(port, host, () => {
          const bound = server.address() as net.AddressInfo;
          resolve({
            address: formatAddress(bound.address, bound.port),
            close: () =>
              new Promise((done) => {
                for (const s of sockets) s.destroy();
                server.close(() => done());
              }),
          });
        });
      });
    },
    dial(address, timeoutMs): Promise<Duplex> {
      const { host, port } = parseHostPort(address);
      return new Promise((resolve, reject) => {
        const socket = net.connect({ host, port });
        const timer = setTimeout(() => {
          socket.destroy();
          reject(
            new VmeshError(
              'VMESH_ERR_LINK_DOWN',
              `connect to ${address} timed out after ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        socket.once('connect', () => {
          clearTimeout(timer);
          socket.setNoDelay(true);
          socket.removeAllListeners('error');
          resolve(socket);
        });
        socket.once('error', (err) => {
          clearTimeout(timer);
          reject(
            new VmeshError('VMESH_ERR_LINK_DOWN', `cannot connect to ${address}: ${err.message}`),
          );
        });
      });
    },
  };
}
