/**
 * Client side of the control API: one request, one reply; for `connect`, the
 * socket is then handed over carrying the framed app stream.
 */
import net from 'node:net';
import { VmeshError } from '../errors/index.ts';
import type { ControlRequest } from './protocol.ts';

export interface ReplyAndSocket {
  reply: Record<string, unknown>;
  socket: net.Socket;
  /** Bytes that arrived after the reply line (start of the stream). */
  rest: Buffer;
}

/**
 * Sends `request` and waits for the reply line. The socket stays open (the
 * caller owns it). A failed reply ({ok:false}) is thrown as VmeshError.
 */
export function openControl(
  socketPath: string,
  request: ControlRequest,
  timeoutMs = 30000,
): Promise<ReplyAndSocket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buffered = Buffer.alloc(0);
    let settled = false;
    const timer = setTimeout(() => {
      fail(
        new VmeshError(
          'VMESH_ERR_TIMEOUT',
          `no reply from the device at ${socketPath} in ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    const fail = (err: VmeshError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(buffered.subarray(0, nl).toString('utf8')) as Record<string, unknown>;
      } catch {
        socket.destroy();
        reject(new VmeshError('VMESH_ERR_MALFORMED', 'the device sent a malformed reply'));
        return;
      }
      if (reply.ok !== true) {
        socket.destroy();
        reject(VmeshError.fromJSON(reply.error));
        return;
      }
      resolve({ reply, socket, rest: buffered.subarray(nl + 1) });
    };
    socket.on('data', onData);
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      fail(
        new VmeshError(
          'VMESH_ERR_DAEMON_UNREACHABLE',
          `cannot reach the vmesh device at ${socketPath} (${err.code ?? err.message}); is \`vmesh up\` running?`,
        ),
      );
    });
    socket.once('close', () =>
      fail(new VmeshError('VMESH_ERR_DAEMON_UNREACHABLE', 'the device closed the control socket')),
    );
  });
}

/** One request, one reply, socket closed. */
export async function controlRequest(
  socketPath: string,
  request: ControlRequest,
  timeoutMs?: number,
): Promise<Record<string, unknown>> {
  const { reply, socket } = await openControl(socketPath, request, timeoutMs);
  socket.destroy();
  return reply;
}
