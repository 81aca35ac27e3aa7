/**
 * The device's end of one app stream: the control socket after a successful
 * `connect`, carrying AppFrames (src/control/protocol.ts). Bytes from the app
 * go to the source VM as `app-write` messages; bytes from the VM are written
 * back as DATA frames, and the VM is told when they have been flushed
 * (`app-consumed`) so the vconn's receive window follows the app's reading
 * speed. Backpressure: the VM's app-pause/app-resume pause the socket.
 */
import type net from 'node:net';
import { AppFrame } from '../control/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import type { Counters } from '../observe/index.ts';
import { FrameDecoder, encodeFrame } from '../wire/index.ts';

export interface AppSessionSink {
  write(data: Uint8Array): void;
  end(): void;
  consumed(bytes: number): void;
  /** The app went away before the stream finished. */
  abort(): void;
}

export class AppSession {
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder({ maxFrameBytes: 1024 * 1024 });
  private sink: AppSessionSink | undefined;
  private early: Buffer[] = [];
  private finished = false;
  private sentEnd = false;
  private receivedEnd = false;

  constructor(socket: net.Socket, rest: Buffer, counters: Counters) {
    this.socket = socket;
    if (rest.length > 0) this.early.push(rest);
    socket.on('data', (chunk: Buffer) => {
      if (this.sink === undefined) {
        this.early.push(chunk);
        return;
      }
      this.onBytes(chunk, counters);
    });
    socket.once('close', () => {
      if (!this.finished) {
        this.finished = true;
        this.sink?.abort();
      }
    });
  }

  /** Binds the session to its VM once the vconn is open; starts reading the app. */
  attach(sink: AppSessionSink, counters: Counters): void {
    this.sink = sink;
    for (const chunk of this.early) this.onBytes(chunk, counters);
    this.early = [];
    this.socket.resume();
  }

  get closed(): boolean {
    return this.finished || this.socket.destroyed;
  }

  /** Stream bytes to the app; `consumed` is reported once the socket flushed them. */
  data(bytes: Uint8Array): void {
    if (this.closed) return;
    const length = bytes.length;
    this.socket.write(encodeFrame(AppFrame.DATA, bytes), () => this.sink?.consumed(length));
  }

  end(): void {
    if (this.closed || this.sentEnd) return;
    this.sentEnd = true;
    this.socket.write(encodeFrame(AppFrame.END, new Uint8Array(0)));
    this.maybeClose();
  }

  error(code: ErrorCode, message: string): void {
    if (this.closed) return;
    this.finished = true;
    this.socket.end(encodeFrame(AppFrame.ERROR, Buffer.from(JSON.stringify({ code, message }))));
  }

  /** The vconn finished cleanly in both directions. */
  close(): void {
    if (this.closed) return;
    this.end();
    this.finished = true;
    this.socket.end();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (this.sink !== undefined) this.socket.resume();
  }

  private onBytes(chunk: Buffer, counters: Counters): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch {
      counters.inc('app.stream.malformed');
      this.error('VMESH_ERR_MALFORMED', 'malformed app stream frame');
      this.sink?.abort();
      return;
    }
    for (const f of frames) {
      if (f.type === AppFrame.DATA) this.sink?.write(new Uint8Array(f.body));
      else if (f.type === AppFrame.END && !this.receivedEnd) {
        this.receivedEnd = true;
        this.sink?.end();
        this.maybeClose();
      } else counters.inc('app.stream.malformed');
    }
  }

  private maybeClose(): void {
    // Both directions ended: nothing more to say on this socket.
    if (this.sentEnd && this.receivedEnd && !this.finished) {
      this.finished = true;
      this.socket.end();
    }
  }
}
