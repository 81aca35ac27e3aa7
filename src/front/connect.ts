/**
 * The library front door (claim 1 (a)): `connect({ to, service, app })` asks
 * the local device daemon, over its control socket, for a virtual connection
 * and returns a Node Duplex stream once the destination accepted it.
 *
 * The stream after the reply is framed (AppFrame DATA / END / ERROR) so that a
 * failure mid-stream (dead destination, no route, VM crash) reaches the app as
 * a VmeshError with a stable code rather than as a silent close.
 */
import { Duplex } from 'node:stream';
import type net from 'node:net';
import { AppFrame, openControl } from '../control/index.ts';
import type { ConnectionInfo } from '../control/index.ts';
import { VmeshError } from '../errors/index.ts';
import { FrameDecoder, encodeFrame } from '../wire/index.ts';

export interface ConnectOptions {
  /** Destination device: its name or device id. */
  to: string;
  /** Service exposed on the destination. */
  service: string;
  /**
   * Application identity: connections of one app to one destination are spread over protocols and relays.
   * @default "default"
   */
  app?: string;
  /** Ask for this routing protocol instead of letting the policy choose. */
  protocol?: string;
  /**
   * Control socket of the local device.
   * @default process.env.VMESH_CONTROL
   */
  control?: string;
  /**
   * Give up if the connection is not open within this time, ms.
   * @default 30000
   */
  timeoutMs?: number;
}

const APP_FRAME_BYTES = 64 * 1024;

/** Opens a virtual connection; resolves when the destination's service accepted it. */
export async function connect(options: ConnectOptions): Promise<VconnStream> {
  const control = options.control ?? process.env.VMESH_CONTROL;
  if (control === undefined || control === '') {
    throw new VmeshError(
      'VMESH_ERR_DAEMON_UNREACHABLE',
      "no control socket: pass { control: PATH } or set VMESH_CONTROL to the device's control socket",
    );
  }
  const { reply, socket, rest } = await openControl(
    control,
    {
      op: 'connect',
      to: options.to,
      service: options.service,
      app: options.app ?? 'default',
      ...(options.protocol === undefined ? {} : { protocol: options.protocol }),
    },
    options.timeoutMs ?? 30000,
  );
  return new VconnStream(socket, reply.connection as ConnectionInfo, rest);
}

/** A virtual connection as a Duplex stream. `info` says which protocol carries it and why. */
export class VconnStream extends Duplex {
  readonly info: ConnectionInfo;
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder({ maxFrameBytes: 1024 * 1024 });
  private ended = false;
  private failed = false;

  constructor(socket: net.Socket, info: ConnectionInfo, rest: Buffer) {
    super({ allowHalfOpen: true });
    this.socket = socket;
    this.info = info;
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.once('close', () => {
      if (!this.ended && !this.failed) {
        this.fail(
          new VmeshError(
            'VMESH_ERR_DAEMON_UNREACHABLE',
            'the device closed the connection unexpectedly',
          ),
        );
      }
    });
    socket.on('error', () => undefined);
    if (rest.length > 0) this.onBytes(rest);
    socket.resume();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    if (this.failed) {
      callback(new VmeshError('VMESH_ERR_CONN_RESET', 'the connection has failed'));
      return;
    }
    // Frames of at most 64 KiB: the device bounds the frames it accepts.
    let last = true;
    for (let at = 0; at < chunk.length; at += APP_FRAME_BYTES) {
      last = this.socket.write(
        encodeFrame(AppFrame.DATA, chunk.subarray(at, at + APP_FRAME_BYTES)),
      );
    }
    if (last) callback();
    else this.socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.write(encodeFrame(AppFrame.END, new Uint8Array(0)), (err) => callback(err ?? null));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }

  private onBytes(chunk: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch {
      this.fail(new VmeshError('VMESH_ERR_MALFORMED', 'malformed stream from the device'));
      return;
    }
    for (const f of frames) {
      if (f.type === AppFrame.DATA) {
        if (!this.push(Buffer.from(f.body))) this.socket.pause();
      } else if (f.type === AppFrame.END) {
        this.ended = true;
        this.push(null);
      } else if (f.type === AppFrame.ERROR) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.from(f.body).toString('utf8'));
        } catch {
          parsed = { code: 'VMESH_ERR_INTERNAL', message: 'unreadable error from the device' };
        }
        this.fail(VmeshError.fromJSON(parsed));
        return;
      }
    }
  }

  private fail(err: VmeshError): void {
    if (this.failed) return;
    this.failed = true;
    this.destroy(err);
  }
}
