/**
 * LinkSession: a Duplex byte stream turned into an authenticated, encrypted `Link`.
 *
 * States: handshaking (only HELLO frames carrying Noise XX messages are
 * accepted, within handshakeTimeoutMs; handshake.ts checks certificates) ->
 * established (every frame sealed by SecureChannel; an unsealed or
 * unauthentic frame is dropped or closes the link; PING answered with PONG,
 * PONG updates the RTT; other frames go to onFrame listeners) -> closed.
 * Keepalive: a PING every keepaliveIntervalMs; nothing received for
 * deadAfterMs closes the link as 'dead'. A framing error (length 0 or over
 * maxFrameBytes) cannot be recovered from and closes the link. This file is
 * the link's I/O edge: it owns real timers, all cleared on close.
 */
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { VmeshError, toVmeshError } from '../errors/index.ts';
import type { Counters } from '../observe/index.ts';
import { FrameDecoder, FrameType, decodePing, encodeFrame, encodePing } from '../wire/index.ts';
import type { DeviceId } from '../wire/index.ts';
import { LinkHandshake } from './handshake.ts';
import type { LinkCredentials, LinkPeer } from './handshake.ts';
import { SecureChannel } from './secure.ts';
import { DEFAULT_LINK_OPTIONS } from './types.ts';
import type { Link, LinkOptions, LinkStats } from './types.ts';

/** Frames kept for a listener that is not attached yet. */
const MAX_EARLY_FRAMES = 4096;

export class LinkSession implements Link {
  readonly direction: 'inbound' | 'outbound';
  private readonly stream: Duplex;
  private readonly options: Required<LinkOptions>;
  private readonly counters: Counters;
  private readonly decoder: FrameDecoder;
  private peer: LinkPeer | undefined;
  private channel: SecureChannel | undefined;
  private noise: LinkHandshake | undefined;
  private frameListeners: ((type: number, body: Uint8Array) => void)[] = [];
  /** Frames received before anyone listened (undefined once a listener is attached). */
  private early: { type: number; body: Uint8Array }[] | undefined = [];
  private closeListeners: ((reason: string) => void)[] = [];
  private isClosed = false;
  private closeReason = '';
  private lastHeard = performance.now();
  private rtt: number | undefined;
  private loss = 0;
  /** Send times of PINGs not yet answered (at most a few: older ones count as lost). */
  private readonly outstanding: number[] = [];
  private keepalive: NodeJS.Timeout | undefined;
  private readonly statsData: LinkStats = {
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: {},
  };
  private handshakeDone: ((peer: LinkPeer) => void) | undefined;
  private handshakeFailed: ((err: VmeshError) => void) | undefined;

  constructor(
    stream: Duplex,
    direction: 'inbound' | 'outbound',
    options: LinkOptions,
    counters: Counters,
  ) {
    this.stream = stream;
    this.direction = direction;
    this.options = { ...DEFAULT_LINK_OPTIONS, ...stripUndefined(options) };
    this.counters = counters;
    this.decoder = new FrameDecoder({ maxFrameBytes: this.options.maxFrameBytes });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.once('end', () => this.close('closed by neighbour'));
    stream.once('close', () => this.close('connection closed'));
    stream.on('error', (err: Error) => this.close(`connection error: ${err.message}`));
  }

  /**
   * The handshake: Noise XX with certificates (handshake.ts). Resolves with
   * the authenticated peer; rejects with the VmeshError that says why (and
   * closes the link).
   */
  handshake(creds: LinkCredentials, rekeyAfterFrames?: number): Promise<LinkPeer> {
    const verifying = new Promise<LinkPeer>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new VmeshError(
          'VMESH_ERR_HANDSHAKE',
          `handshake not finished within ${this.options.handshakeTimeoutMs} ms`,
        );
        this.handshakeFailed?.(err);
      }, this.options.handshakeTimeoutMs);
      this.handshakeDone = (peer) => {
        clearTimeout(timer);
        this.handshakeDone = undefined;
        this.handshakeFailed = undefined;
        resolve(peer);
      };
      this.handshakeFailed = (err) => {
        clearTimeout(timer);
        this.handshakeDone = undefined;
        this.handshakeFailed = undefined;
        this.close(`handshake failed: ${err.message}`);
        reject(err);
      };
    });
    this.rekeyAfter = rekeyAfterFrames;
    try {
      this.noise = new LinkHandshake(creds, this.direction === 'outbound');
      const first = this.noise.start();
      if (first !== undefined) this.write(FrameType.HELLO, first);
    } catch (err) {
      this.handshakeFailed?.(toVmeshError(err, 'VMESH_ERR_HANDSHAKE'));
    }
    return verifying.then((peer) => {
      this.lastHeard = performance.now();
      // The link may have closed between the handshake's end and this continuation.
      if (!this.isClosed)
        this.keepalive = setInterval(() => this.onKeepalive(), this.options.keepaliveIntervalMs);
      return peer;
    });
  }

  private rekeyAfter: number | undefined;

  /** The authenticated peer (after the handshake). */
  get remotePeer(): LinkPeer | undefined {
    return this.peer;
  }

  get remote(): DeviceId {
    return this.peer?.device ?? '';
  }

  get remoteName(): string {
    return this.peer?.name ?? '';
  }

  get rttMs(): number | undefined {
    return this.rtt;
  }

  /** Share of keepalive PINGs whose PONG did not come back within two intervals (EWMA, 1/8). */
  get lossRate(): number {
    return this.loss;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get reason(): string {
    return this.closeReason;
  }

  send(type: number, body: Uint8Array): boolean {
    if (this.isClosed || this.channel === undefined) {
      this.drop('closed');
      return false;
    }
    // Only data packets are subject to the queue limit: control frames are few and small, and
    // dropping them under a data backlog would make the routing protocols see a dead neighbour.
    if (type === FrameType.PACKET && this.stream.writableLength > this.options.maxQueuedBytes) {
      this.drop('queue-full');
      return false;
    }
    this.write(type, body);
    return true;
  }

  onFrame(listener: (type: number, body: Uint8Array) => void): void {
    this.frameListeners.push(listener);
    // Frames that arrived between the handshake and the first listener (often in the same
    // socket read as the peer's hello) are delivered now, in order, rather than lost.
    const early = this.early;
    this.early = undefined;
    for (const f of early ?? []) listener(f.type, f.body);
  }

  get queuedBytes(): number {
    return this.stream.writableLength;
  }

  onDrain(listener: () => void): void {
    this.stream.on('drain', listener);
  }

  onClose(listener: (reason: string) => void): void {
    if (this.isClosed) listener(this.closeReason);
    else this.closeListeners.push(listener);
  }

  close(reason = 'closed'): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    if (this.keepalive !== undefined) clearInterval(this.keepalive);
    this.handshakeFailed?.(
      new VmeshError('VMESH_ERR_HANDSHAKE', `link closed during handshake: ${reason}`),
    );
    this.stream.destroy();
    const listeners = this.closeListeners;
    this.closeListeners = [];
    this.frameListeners = [];
    for (const l of listeners) l(reason);
  }

  stats(): LinkStats {
    return { ...this.statsData, dropped: { ...this.statsData.dropped } };
  }

  private write(type: number, body: Uint8Array): void {
    const frame =
      this.channel === undefined ? encodeFrame(type, body) : this.channel.seal(type, body);
    this.statsData.framesOut++;
    this.statsData.bytesOut += frame.length;
    this.stream.write(frame);
  }

  private drop(reason: string): void {
    this.statsData.dropped[reason] = (this.statsData.dropped[reason] ?? 0) + 1;
    this.counters.inc('link.frames.dropped', { reason });
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed) return;
    this.lastHeard = performance.now();
    this.statsData.bytesIn += chunk.length;
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.counters.inc('link.closed', { reason: 'framing-error' });
      this.close(`framing-error: ${(err as Error).message}`);
      return;
    }
    for (const frame of frames) {
      if (this.isClosed) return;
      this.statsData.framesIn++;
      this.onFrameIn(frame.type, frame.body);
    }
  }

  private onFrameIn(type: number, body: Uint8Array): void {
    if (this.channel === undefined) {
      this.onHandshakeFrame(type, body);
      return;
    }
    if (type !== FrameType.SEALED && type !== FrameType.SEALED_PACKET) {
      this.drop('unsealed');
      return;
    }
    let inner: { type: number; body: Uint8Array };
    try {
      inner = this.channel.open(type, body);
    } catch (err) {
      // Counters would no longer match: whatever this was, the stream cannot be trusted.
      this.counters.inc('link.closed', { reason: 'auth-failed' });
      this.close(`auth-failed: ${toVmeshError(err).message}`);
      return;
    }
    this.onOpened(inner.type, inner.body);
  }

  private onHandshakeFrame(type: number, body: Uint8Array): void {
    const noise = this.noise;
    if (noise === undefined || this.handshakeDone === undefined) return;
    if (type !== FrameType.HELLO) {
      this.handshakeFailed?.(
        new VmeshError(
          'VMESH_ERR_HANDSHAKE',
          `expected a handshake message, got frame type ${type}`,
        ),
      );
      return;
    }
    try {
      const step = noise.receive(body);
      if (step.reply !== undefined) this.write(FrameType.HELLO, step.reply);
      if (step.done !== undefined) {
        this.peer = step.done.peer;
        this.channel = new SecureChannel(step.done.send, step.done.receive, this.rekeyAfter);
        this.noise = undefined;
        this.handshakeDone(step.done.peer);
      }
    } catch (err) {
      this.handshakeFailed?.(toVmeshError(err, 'VMESH_ERR_HANDSHAKE'));
    }
  }

  private onOpened(type: number, body: Uint8Array): void {
    switch (type) {
      case FrameType.HELLO:
        this.drop('hello-after-handshake');
        return;
      case FrameType.PING:
        if (body.length === 8) this.write(FrameType.PONG, body);
        else this.counters.inc('link.frames.dropped', { reason: 'malformed-ping' });
        return;
      case FrameType.PONG: {
        let sent: number;
        try {
          sent = decodePing(body);
        } catch {
          this.counters.inc('link.frames.dropped', { reason: 'malformed-ping' });
          return;
        }
        const k = this.outstanding.indexOf(sent);
        if (k >= 0) {
          this.outstanding.splice(k, 1);
          this.loss -= this.loss / 8;
        }
        const sample = performance.now() - sent;
        if (sample >= 0 && sample < 60000)
          this.rtt = this.rtt === undefined ? sample : this.rtt + (sample - this.rtt) / 8;
        return;
      }
      default:
        if (this.early !== undefined) {
          if (this.early.length < MAX_EARLY_FRAMES) this.early.push({ type, body });
          else this.drop('early-overflow');
          return;
        }
        for (const l of this.frameListeners) l(type, body);
    }
  }

  private onKeepalive(): void {
    if (performance.now() - this.lastHeard > this.options.deadAfterMs) {
      this.counters.inc('link.closed', { reason: 'dead' });
      this.close(`dead: nothing heard for ${this.options.deadAfterMs} ms`);
      return;
    }
    const now = performance.now();
    while (
      this.outstanding.length > 0 &&
      now - (this.outstanding[0] as number) > 2 * this.options.keepaliveIntervalMs
    ) {
      this.outstanding.shift();
      this.loss += (1 - this.loss) / 8;
    }
    // A PING's body is its send time (ms, float64, exact): the PONG echoes it back.
    if (this.outstanding.length < 16) this.outstanding.push(now);
    this.write(FrameType.PING, encodePing(now));
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
