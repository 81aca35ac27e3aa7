/**
 * Server side of the control API: a unix socket (mode 0600) in the device's
 * state folder. Reads one request line (bounded size and time), validates it,
 * and hands it to the device's `ControlHandler`. Local only by construction.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { VmeshError, toVmeshError } from '../errors/index.ts';
import type { Logger } from '../observe/index.ts';
import { MAX_REQUEST_LINE_BYTES, requestSchema } from './protocol.ts';
import type { ConnectRequest } from './protocol.ts';

/** What the device implements for the control API. */
export interface ControlHandler {
  status(): unknown;
  resolve(name: string): unknown;
  /** Takes over `socket` for the app stream; `rest` holds bytes after the request line. */
  connect(request: ConnectRequest, socket: net.Socket, rest: Buffer): void;
}

export class ControlServer {
  private readonly server: net.Server;
  private readonly path: string;
  private readonly sockets = new Set<net.Socket>();

  constructor(path: string, handler: ControlHandler, logger: Logger) {
    this.path = path;
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      readRequestLine(socket)
        .then(({ line, rest }) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            throw new VmeshError('VMESH_ERR_BAD_REQUEST', 'request is not JSON');
          }
          const result = requestSchema.safeParse(parsed);
          if (!result.success) {
            const issue = result.error.issues[0];
            throw new VmeshError(
              'VMESH_ERR_BAD_REQUEST',
              `bad request: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || 'op'}: ${issue.message}`}`,
            );
          }
          const req = result.data;
          if (req.op === 'connect') {
            handler.connect(req, socket, rest);
            return;
          }
          const body = req.op === 'status' ? handler.status() : handler.resolve(req.name);
          socket.end(`${JSON.stringify({ ok: true, ...(body as object) })}\n`);
        })
        .catch((err: unknown) => {
          const e = toVmeshError(err);
          logger.debug({ code: e.code }, 'control request refused');
          if (!socket.destroyed)
            socket.end(`${JSON.stringify({ ok: false, error: e.toJSON() })}\n`);
        });
    });
  }

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    if (existsSync(this.path)) {
      const inUse = await new Promise<boolean>((resolve) => {
        const probe = net.connect(this.path);
        probe.once('connect', () => {
          probe.destroy();
          resolve(true);
        });
        probe.once('error', () => resolve(false));
      });
      if (inUse) {
        throw new VmeshError(
          'VMESH_ERR_CONFIG',
          `control socket ${this.path} is in use: is another device running?`,
        );
      }
      unlinkSync(this.path);
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    chmodSync(this.path, 0o600);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

function readRequestLine(
  socket: net.Socket,
  timeoutMs = 10000,
): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => {
      cleanup();
      reject(new VmeshError('VMESH_ERR_BAD_REQUEST', 'no request line within 10 s'));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
    };
    const onEnd = (): void => {
      cleanup();
      reject(new VmeshError('VMESH_ERR_BAD_REQUEST', 'connection closed before a request line'));
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) {
        if (buffered.length > MAX_REQUEST_LINE_BYTES) {
          cleanup();
          reject(new VmeshError('VMESH_ERR_BAD_REQUEST', 'request line too long'));
        }
        return;
      }
      cleanup();
      socket.pause();
      resolve({ line: buffered.subarray(0, nl).toString('utf8'), rest: buffered.subarray(nl + 1) });
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}
