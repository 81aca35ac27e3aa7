/**
 * The vconn transport: a reliable, ordered byte stream as a sans-I/O state
 * machine (QUIC-like: RFC 9000 frames and flow control, RFC 9002 loss
 * detection, RFC 6298 RTO — simplified, see README.md).
 *
 * Sender: `unsent` (queued bytes by offset), `sent` (packet number -> what it
 * carried), `retransmit` (byte ranges declared lost), `acked` (byte ranges
 * acknowledged). Receiver: `received` (packet numbers, for duplicates and
 * ACK ranges), `reassembly` (out-of-order bytes by offset), `readOffset`.
 * Loss is decided in `onAck()` (packet threshold 3) and `checkTimers()` (RTO);
 * what goes in the next payload is decided in `poll()`.
 */
import { ERRORS } from '../errors/index.ts';
import { RttEstimator } from './rtt.ts';
import { RangeSet } from './ranges.ts';
import { MAX_ACK_RANGES, decodeFrames, encodeFrames, frameSize } from './frames.ts';
import type { TransportFrame } from './frames.ts';
import type {
  OutgoingPacket,
  StreamTransport,
  TransportEvent,
  TransportOptions,
  TransportStats,
} from './types.ts';

const PACKET_THRESHOLD = 3;

/** The congestion window behind one small interface, so real congestion control can replace it. */
export interface CongestionController {
  /** Bytes that may be in flight now. */
  window(): number;
  onAck(bytes: number, now: number): void;
  onLoss(bytes: number, now: number): void;
}

/** A fixed window (no congestion control yet). */
export function fixedWindow(bytes: number): CongestionController {
  return { window: () => bytes, onAck: () => undefined, onLoss: () => undefined };
}

interface SentPacket {
  time: number;
  ackEliciting: boolean;
  bytes: number;
  streamRanges: [number, number][];
  fin: boolean;
  open: boolean;
  accept: boolean;
  maxData: boolean;
}

type State = 'idle' | 'opening' | 'awaiting-accept' | 'open' | 'closed' | 'failed';

export class Stream implements StreamTransport {
  private readonly o: Required<TransportOptions>;
  private readonly rtt: RttEstimator;
  private readonly cc: CongestionController;
  private state: State = 'idle';
  private queue: TransportEvent[] = [];

  // sender
  private openRequest: Uint8Array | undefined;
  private pendingOpen = false;
  private pendingAccept = false;
  private pendingClose: { code: string; reason: string } | undefined;
  private chunks: { offset: number; data: Uint8Array }[] = [];
  private writeOffset = 0;
  private sendOffset = 0;
  private finOffset: number | undefined;
  private finSent = false;
  private finAcked = false;
  private readonly acked = new RangeSet();
  private readonly retransmit = new RangeSet();
  private readonly sent = new Map<number, SentPacket>();
  private nextPacketNumber = 0;
  private largestAcked = -1;
  private bytesInFlight = 0;
  private peerMaxData = 0;
  private wasBlocked = false;
  private lastProgress = 0;
  private rtoDeadline: number | undefined;

  // receiver
  private readonly received = new RangeSet();
  private largestReceived = -1;
  private ackPending = false;
  private ackDeadline: number | undefined;
  private elicitingSinceAck = 0;
  private readonly reassembly = new Map<number, Uint8Array>();
  private readOffset = 0;
  private consumedOffset = 0;
  private advertisedMax: number;
  private pendingMaxData = false;
  private peerFinOffset: number | undefined;
  private endReported = false;

  private readonly statsData = {
    bytesSent: 0,
    bytesReceived: 0,
    packetsSent: 0,
    packetsReceived: 0,
    retransmits: 0,
    duplicatesDropped: 0,
    malformedDropped: 0,
  };

  constructor(options: TransportOptions, cc?: CongestionController) {
    this.o = {
      role: options.role,
      maxPayloadBytes: options.maxPayloadBytes ?? 16384,
      sendBufferBytes: options.sendBufferBytes ?? 1024 * 1024,
      receiveWindowBytes: options.receiveWindowBytes ?? 1024 * 1024,
      initialRtoMs: options.initialRtoMs ?? 1000,
      minRtoMs: options.minRtoMs ?? 200,
      maxRtoMs: options.maxRtoMs ?? 10000,
      idleTimeoutMs: options.idleTimeoutMs ?? 15000,
      maxAckDelayMs: options.maxAckDelayMs ?? 25,
      maxInFlightBytes: options.maxInFlightBytes ?? 4 * 1024 * 1024,
    };
    this.rtt = new RttEstimator(this.o.initialRtoMs, this.o.minRtoMs, this.o.maxRtoMs);
    this.cc = cc ?? fixedWindow(this.o.maxInFlightBytes);
    this.advertisedMax = this.o.receiveWindowBytes;
  }

  get finished(): boolean {
    return this.state === 'closed' || this.state === 'failed';
  }

  // ---- application side ---------------------------------------------------------------

  open(request: Uint8Array, now: number): void {
    if (this.o.role !== 'client' || this.state !== 'idle') return;
    this.openRequest = new Uint8Array(request);
    this.pendingOpen = true;
    this.pendingMaxData = true;
    this.state = 'opening';
    this.lastProgress = now;
  }

  accept(now: number): void {
    if (this.state !== 'awaiting-accept') return;
    this.pendingAccept = true;
    this.pendingMaxData = true;
    this.state = 'open';
    this.lastProgress = now;
  }

  reject(code: string, message: string, now: number): void {
    if (this.state !== 'awaiting-accept') return;
    this.pendingClose = { code, reason: message };
    this.fail(code, message, false, now, false);
  }

  write(data: Uint8Array, _now: number): boolean {
    if (this.finished || this.finOffset !== undefined) return false;
    if (data.length > 0) {
      this.chunks.push({ offset: this.writeOffset, data: new Uint8Array(data) });
      this.writeOffset += data.length;
    }
    const ok = this.buffered() < this.o.sendBufferBytes;
    if (!ok) this.wasBlocked = true;
    return ok;
  }

  end(_now: number): void {
    if (this.finished || this.finOffset !== undefined) return;
    this.finOffset = this.writeOffset;
  }

  abort(code: string, message: string, now: number): void {
    if (this.finished) return;
    this.pendingClose = { code, reason: message };
    this.fail(code, message, false, now, true);
  }

  consumed(bytes: number, _now: number): void {
    this.consumedOffset = Math.min(this.readOffset, this.consumedOffset + Math.max(0, bytes));
    if (
      this.consumedOffset + this.o.receiveWindowBytes - this.advertisedMax >=
      this.o.receiveWindowBytes / 2
    ) {
      this.advertisedMax = this.consumedOffset + this.o.receiveWindowBytes;
      this.pendingMaxData = true;
    }
  }

  events(): TransportEvent[] {
    const out = this.queue;
    this.queue = [];
    return out;
  }

  // ---- network side ---------------------------------------------------------------------

  receive(packetNumber: number, payload: Uint8Array, now: number): void {
    if (this.state === 'failed') return;
    let frames: TransportFrame[];
    try {
      frames = decodeFrames(payload);
    } catch {
      this.statsData.malformedDropped++;
      return;
    }
    if (this.received.has(packetNumber)) {
      this.statsData.duplicatesDropped++;
      // A duplicate may mean our ACK was lost: acknowledge again.
      this.scheduleAck(now, true);
      return;
    }
    if (this.received.size > 0 && packetNumber < (this.received.first()?.[0] ?? 0)) {
      this.statsData.duplicatesDropped++;
      return;
    }
    this.statsData.packetsReceived++;
    this.received.add(packetNumber, packetNumber + 1);
    this.received.trim(MAX_ACK_RANGES);
    const outOfOrder = packetNumber !== this.largestReceived + 1;
    this.largestReceived = Math.max(this.largestReceived, packetNumber);
    let eliciting = false;
    for (const f of frames) {
      if (f.kind !== 'ack') eliciting = true;
      this.onFrame(f, now);
      if ((this.state as State) === 'failed') return;
    }
    if (eliciting) {
      this.elicitingSinceAck++;
      this.scheduleAck(now, outOfOrder || this.elicitingSinceAck >= 2);
    }
    this.checkClosed();
  }

  poll(now: number): OutgoingPacket[] {
    this.checkTimers(now);
    const out: OutgoingPacket[] = [];
    for (let i = 0; i < 1024; i++) {
      const p = this.buildPacket(now);
      if (p === undefined) break;
      out.push(p);
    }
    if (this.wasBlocked && this.buffered() < this.o.sendBufferBytes && !this.finished) {
      this.wasBlocked = false;
      this.queue.push({ type: 'drain' });
    }
    return out;
  }

  nextDeadline(): number | undefined {
    if (this.state === 'failed') return undefined;
    const times: number[] = [];
    if (this.ackPending && this.ackDeadline !== undefined) times.push(this.ackDeadline);
    if (this.rtoDeadline !== undefined) times.push(this.rtoDeadline);
    if (this.outstanding()) times.push(this.lastProgress + this.o.idleTimeoutMs);
    return times.length === 0 ? undefined : Math.min(...times);
  }

  stats(): TransportStats {
    return {
      state: this.state,
      ...this.statsData,
      smoothedRttMs: this.rtt.srtt,
      rtoMs: this.rtt.rto(),
      bytesInFlight: this.bytesInFlight,
    };
  }

  // ---- internals ----------------------------------------------------------------------

  private buffered(): number {
    return this.writeOffset - this.acked.contiguousFrom(0);
  }

  private outstanding(): boolean {
    if (this.state === 'opening' || this.state === 'awaiting-accept') return true;
    for (const p of this.sent.values()) if (p.ackEliciting) return true;
    return false;
  }

  private onFrame(f: TransportFrame, now: number): void {
    switch (f.kind) {
      case 'open':
        if (this.o.role === 'server' && this.state === 'idle') {
          this.state = 'awaiting-accept';
          this.lastProgress = now;
          this.queue.push({ type: 'openRequest', request: new Uint8Array(f.request) });
        }
        break;
      case 'accept':
        if (this.state === 'opening') {
          this.state = 'open';
          this.pendingOpen = false;
          this.lastProgress = now;
          this.queue.push({ type: 'open' });
        }
        break;
      case 'max-data':
        this.peerMaxData = Math.max(this.peerMaxData, f.limit);
        break;
      case 'ping':
        break;
      case 'close':
        this.fail(
          f.code === '' || !Object.hasOwn(ERRORS, f.code) ? 'VMESH_ERR_CONN_RESET' : f.code,
          f.reason === '' ? 'the peer closed the connection' : f.reason,
          true,
          now,
          false,
        );
        break;
      case 'ack':
        this.onAck(f.ranges, now);
        break;
      case 'stream':
        this.onStream(f.offset, f.data, f.fin, now);
        break;
    }
  }

  private onStream(offset: number, data: Uint8Array, fin: boolean, now: number): void {
    const end = offset + data.length;
    if (end > this.advertisedMax) {
      this.pendingClose = {
        code: 'VMESH_ERR_FLOW_CONTROL',
        reason: `peer sent up to ${end} past its window ${this.advertisedMax}`,
      };
      this.fail('VMESH_ERR_FLOW_CONTROL', this.pendingClose.reason, false, now, true);
      return;
    }
    if (fin) {
      if (this.peerFinOffset !== undefined && this.peerFinOffset !== end) return;
      this.peerFinOffset = end;
    }
    if (end > this.readOffset && data.length > 0) {
      const start = Math.max(offset, this.readOffset);
      const existing = this.reassembly.get(start);
      const piece = data.subarray(start - offset);
      if (existing === undefined || existing.length < piece.length)
        this.reassembly.set(start, new Uint8Array(piece));
    }
    // Deliver whatever is now contiguous.
    for (;;) {
      let progressed = false;
      for (const [off, bytes] of this.reassembly) {
        if (off > this.readOffset) continue;
        this.reassembly.delete(off);
        const tail = bytes.subarray(this.readOffset - off);
        if (tail.length > 0) {
          this.readOffset += tail.length;
          this.statsData.bytesReceived += tail.length;
          this.queue.push({ type: 'data', data: tail });
        }
        progressed = true;
      }
      if (!progressed) break;
    }
    if (
      !this.endReported &&
      this.peerFinOffset !== undefined &&
      this.readOffset >= this.peerFinOffset
    ) {
      this.endReported = true;
      this.queue.push({ type: 'end' });
    }
  }

  private onAck(ranges: [number, number][], now: number): void {
    const largest = ranges[0]?.[1] ?? -1;
    let newlyAcked = 0;
    let rttSample: number | undefined;
    for (const [first, last] of ranges) {
      for (const [pn, p] of this.sent) {
        if (pn < first || pn > last) continue;
        this.sent.delete(pn);
        if (p.ackEliciting) this.bytesInFlight -= p.bytes;
        newlyAcked += p.bytes;
        if (pn === largest && p.ackEliciting) rttSample = now - p.time;
        for (const [s, e] of p.streamRanges) {
          this.acked.add(s, e);
          this.retransmit.remove(s, e);
        }
        if (p.fin) this.finAcked = true;
        if (p.open) this.pendingOpen = false;
        if (p.accept) this.pendingAccept = false;
      }
    }
    if (largest > this.largestAcked) this.largestAcked = largest;
    if (rttSample !== undefined) this.rtt.sample(rttSample);
    if (newlyAcked > 0) {
      this.lastProgress = now;
      this.cc.onAck(newlyAcked, now);
      this.freeAcked();
    }
    // Packet threshold (RFC 9002 §6.1.1): older than largest acked - 3 and unacknowledged is lost.
    for (const [pn, p] of this.sent) {
      if (pn < this.largestAcked - PACKET_THRESHOLD + 1 && p.ackEliciting) this.lost(pn, p, now);
    }
    this.armRto(now);
  }

  private lost(pn: number, p: SentPacket, now: number): void {
    this.sent.delete(pn);
    this.bytesInFlight -= p.bytes;
    this.cc.onLoss(p.bytes, now);
    for (const [s, e] of p.streamRanges) {
      this.retransmit.add(s, e);
      // Keep only what is not acked yet.
      for (const [as, ae] of this.acked.list()) this.retransmit.remove(as, ae);
    }
    if (p.fin && !this.finAcked) this.finSent = false;
    if (p.open && this.state === 'opening') this.pendingOpen = true;
    if (p.accept && this.state === 'open' && this.o.role === 'server') this.pendingAccept = true;
    if (p.maxData) this.pendingMaxData = true;
    if (p.streamRanges.length > 0) this.statsData.retransmits++;
  }

  private freeAcked(): void {
    const done = this.acked.contiguousFrom(0);
    while (this.chunks.length > 0) {
      const c = this.chunks[0] as { offset: number; data: Uint8Array };
      if (c.offset + c.data.length > done) break;
      this.chunks.shift();
    }
  }

  private checkTimers(now: number): void {
    if (this.finished) return;
    if (this.outstanding() && now - this.lastProgress >= this.o.idleTimeoutMs) {
      this.fail(
        'VMESH_ERR_TIMEOUT',
        `no acknowledgement for ${this.o.idleTimeoutMs} ms`,
        false,
        now,
        false,
      );
      return;
    }
    if (this.rtoDeadline !== undefined && now >= this.rtoDeadline) {
      this.rtt.timedOut();
      for (const [pn, p] of [...this.sent]) if (p.ackEliciting) this.lost(pn, p, now);
      if (this.state === 'opening') this.pendingOpen = true;
      this.rtoDeadline = undefined;
    }
  }

  private armRto(now: number): void {
    let oldest: number | undefined;
    for (const p of this.sent.values())
      if (p.ackEliciting && (oldest === undefined || p.time < oldest)) oldest = p.time;
    this.rtoDeadline = oldest === undefined ? undefined : Math.max(now, oldest + this.rtt.rto());
  }

  private scheduleAck(now: number, immediately: boolean): void {
    this.ackPending = true;
    const at = immediately ? now : now + this.o.maxAckDelayMs;
    this.ackDeadline = this.ackDeadline === undefined ? at : Math.min(this.ackDeadline, at);
  }

  /** Bytes of the stream range [start, end) from the queued chunks. */
  private slice(start: number, end: number): Uint8Array {
    const out = new Uint8Array(end - start);
    for (const c of this.chunks) {
      const cs = c.offset;
      const ce = c.offset + c.data.length;
      if (ce <= start) continue;
      if (cs >= end) break;
      const from = Math.max(cs, start);
      const to = Math.min(ce, end);
      out.set(c.data.subarray(from - cs, to - cs), from - start);
    }
    return out;
  }

  private buildPacket(now: number): OutgoingPacket | undefined {
    if (this.state === 'failed' && this.pendingClose === undefined) return undefined;
    const frames: TransportFrame[] = [];
    let room = this.o.maxPayloadBytes;
    const sp: SentPacket = {
      time: now,
      ackEliciting: false,
      bytes: 0,
      streamRanges: [],
      fin: false,
      open: false,
      accept: false,
      maxData: false,
    };
    const add = (f: TransportFrame): void => {
      frames.push(f);
      room -= frameSize(f);
    };
    if (this.pendingClose !== undefined) {
      add({ kind: 'close', code: this.pendingClose.code, reason: this.pendingClose.reason });
      this.pendingClose = undefined;
      return this.emit(frames, sp, now, false);
    }
    if (this.finished && !this.ackPending) return undefined;
    if (this.pendingOpen && this.openRequest !== undefined) {
      add({ kind: 'open', request: this.openRequest });
      sp.open = true;
      this.pendingOpen = false;
    }
    if (this.pendingAccept) {
      add({ kind: 'accept' });
      sp.accept = true;
      this.pendingAccept = false;
    }
    if (this.pendingMaxData) {
      add({ kind: 'max-data', limit: this.advertisedMax });
      sp.maxData = true;
      this.pendingMaxData = false;
    }
    const ackDue = this.ackPending && this.ackDeadline !== undefined && now >= this.ackDeadline;
    if (this.state === 'open' && !this.finished)
      this.addStream(
        sp,
        frames,
        () => room,
        (f) => add(f),
      );
    const eliciting = frames.length > 0;
    if (this.ackPending && (ackDue || eliciting)) {
      const ranges = [...this.received.list()]
        .reverse()
        .slice(0, MAX_ACK_RANGES)
        .map(([s, e]): [number, number] => [s, e - 1]);
      if (ranges.length > 0) add({ kind: 'ack', delayMs: 0, ranges });
      this.ackPending = false;
      this.ackDeadline = undefined;
      this.elicitingSinceAck = 0;
    }
    if (frames.length === 0) return undefined;
    return this.emit(frames, sp, now, eliciting);
  }

  private addStream(
    sp: SentPacket,
    frames: TransportFrame[],
    room: () => number,
    add: (f: TransportFrame) => void,
  ): void {
    const window = this.cc.window();
    const fits = (n: number): number =>
      Math.min(
        n,
        room() - 12 - 16 /* leave space for an ack */,
        window - this.bytesInFlight - sp.bytes,
      );
    // Retransmissions first.
    for (const [s, e] of [...this.retransmit.list()]) {
      const n = fits(e - s);
      if (n <= 0) return;
      add({ kind: 'stream', offset: s, fin: false, data: this.slice(s, s + n) });
      this.retransmit.remove(s, s + n);
      sp.streamRanges.push([s, s + n]);
      sp.bytes += n;
    }
    // New data, within the peer's flow-control limit.
    const limit = Math.min(this.writeOffset, this.peerMaxData);
    if (this.sendOffset < limit) {
      const n = fits(limit - this.sendOffset);
      if (n > 0) {
        const s = this.sendOffset;
        this.sendOffset += n;
        const fin =
          this.finOffset !== undefined && this.sendOffset === this.finOffset && !this.finSent;
        add({ kind: 'stream', offset: s, fin, data: this.slice(s, s + n) });
        sp.streamRanges.push([s, s + n]);
        sp.bytes += n;
        if (fin) {
          this.finSent = true;
          sp.fin = true;
        }
      }
    }
    if (
      this.finOffset !== undefined &&
      this.sendOffset === this.finOffset &&
      !this.finSent &&
      room() >= 12
    ) {
      add({ kind: 'stream', offset: this.finOffset, fin: true, data: new Uint8Array(0) });
      this.finSent = true;
      sp.fin = true;
    }
    void frames;
  }

  private emit(
    frames: TransportFrame[],
    sp: SentPacket,
    now: number,
    eliciting: boolean,
  ): OutgoingPacket {
    const packetNumber = this.nextPacketNumber++;
    sp.ackEliciting = eliciting;
    if (eliciting) {
      this.sent.set(packetNumber, sp);
      this.bytesInFlight += sp.bytes;
      this.statsData.bytesSent += sp.bytes;
      if (this.rtoDeadline === undefined) this.rtoDeadline = now + this.rtt.rto();
    }
    this.statsData.packetsSent++;
    return { packetNumber, payload: encodeFrames(frames) };
  }

  private checkClosed(): void {
    if (this.state !== 'open') return;
    const allSent =
      this.finOffset !== undefined &&
      this.finAcked &&
      this.acked.contiguousFrom(0) >= this.finOffset;
    const allReceived = this.endReported;
    if (allSent && allReceived) {
      this.state = 'closed';
      this.rtoDeadline = undefined;
      this.queue.push({ type: 'closed' });
    }
  }

  private fail(
    code: string,
    message: string,
    remote: boolean,
    _now: number,
    _sendClose: boolean,
  ): void {
    if (this.finished) return;
    this.state = 'failed';
    this.rtoDeadline = undefined;
    this.ackPending = false;
    this.queue.push({ type: 'error', code, message, remote });
  }
}

export function createTransport(
  options: TransportOptions,
  cc?: CongestionController,
): StreamTransport {
  return new Stream(options, cc);
}
