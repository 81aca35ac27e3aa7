/**
 * The vconn transport: a reliable, ordered byte stream as a sans-I/O state
 * machine (QUIC-like: RFC 9000 frames, flow control and path change, RFC 9002
 * loss detection and congestion control — see README.md for the sections).
 *
 * Sender: `chunks` (queued bytes by offset, freed once acknowledged),
 * `retransmit` (byte ranges to send again), `acked` (byte ranges
 * acknowledged), `detector` (what each outstanding packet carried, loss and
 * probe timers: loss-detector.ts), `cc` (the congestion window:
 * congestion.ts), `pacer` (optional, pacer.ts). Receiver: `received` (packet
 * numbers, for duplicates and ACK ranges), `reassembly` (out-of-order bytes
 * by offset), `readOffset`.
 *
 * Where things are decided: losses in `onAck()` and `checkTimers()` (through
 * the detector); what goes in the next payload in `buildPacket()` (control
 * frames first, then retransmissions, then new data, within the congestion
 * window, the pacer and the peer's flow-control limit; probes, keepalives).
 */
import { ERRORS } from '../errors/index.ts';
import { RttEstimator } from './rtt.ts';
import { RangeSet } from './ranges.ts';
import { MAX_ACK_RANGES, decodeFrames, encodeFrames, frameSize } from './frames.ts';
import type { TransportFrame } from './frames.ts';
import { LossDetector } from './loss-detector.ts';
import type { SentPacket } from './loss-detector.ts';
import { initialWindowFor, newReno } from './congestion.ts';
import type { CongestionController } from './congestion.ts';
import { Pacer } from './pacer.ts';
import type {
  OutgoingPacket,
  StreamTransport,
  TransportEvent,
  TransportOptions,
  TransportStats,
} from './types.ts';

/** Stream frame header bytes (kind, flags, u48 offset, u32 length). */
const STREAM_OVERHEAD = 12;
/** Probe packets sent per PTO expiry (RFC 9002 §6.2.4 allows up to two). */
const PROBES_PER_PTO = 2;
/** Payloads built per poll at most (the caller polls again at `nextDeadline`). */
const MAX_PACKETS_PER_POLL = 1024;
/** Times a CLOSE is sent again in answer to a peer that keeps sending. */
const MAX_CLOSE_RESENDS = 16;

type State = 'idle' | 'opening' | 'awaiting-accept' | 'open' | 'closed' | 'failed';

export class Stream implements StreamTransport {
  private readonly o: Required<TransportOptions>;
  private readonly rtt: RttEstimator;
  private readonly cc: CongestionController;
  private readonly detector: LossDetector;
  private readonly pacer: Pacer | undefined;
  private state: State = 'idle';
  private queue: TransportEvent[] = [];

  // sender
  private openRequest: Uint8Array | undefined;
  private pendingOpen = false;
  private pendingAccept = false;
  private pendingClose: { code: string; reason: string } | undefined;
  /** The CLOSE we sent, answered again to a peer that keeps sending. */
  private sentClose: { code: string; reason: string } | undefined;
  private closeResends = 0;
  private lastCloseAt = -Infinity;
  private chunks: { offset: number; data: Uint8Array }[] = [];
  private chunkHead = 0;
  private writeOffset = 0;
  private sendOffset = 0;
  private finOffset: number | undefined;
  private finSent = false;
  private finAcked = false;
  private readonly acked = new RangeSet();
  private readonly retransmit = new RangeSet();
  private nextPacketNumber = 0;
  private peerMaxData = 0;
  private wasBlocked = false;
  /** Start of the current wait for an acknowledgement (idle timeout). */
  private lastProgress = 0;
  private probes = 0;
  private pendingPing = false;
  private lastElicitingSentAt = 0;
  private pacingBlocked = false;
  private moreToSend = false;
  private lastPollAt = 0;

  // receiver
  private readonly received = new RangeSet();
  private largestReceived = -1;
  private largestReceivedAt = 0;
  private lastReceivedAt = 0;
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
    lostPackets: 0,
    spuriousLosses: 0,
    ptoExpirations: 0,
    persistentCongestions: 0,
    keepalivesSent: 0,
    pathChanges: 0,
  };

  constructor(options: TransportOptions, cc?: CongestionController) {
    const maxPayloadBytes = options.maxPayloadBytes ?? 16384;
    this.o = {
      role: options.role,
      maxPayloadBytes,
      sendBufferBytes: options.sendBufferBytes ?? 1024 * 1024,
      receiveWindowBytes: options.receiveWindowBytes ?? 1024 * 1024,
      initialRtoMs: options.initialRtoMs ?? 1000,
      minRtoMs: options.minRtoMs ?? 200,
      maxRtoMs: options.maxRtoMs ?? 10000,
      idleTimeoutMs: options.idleTimeoutMs ?? 15000,
      maxAckDelayMs: options.maxAckDelayMs ?? 25,
      maxInFlightBytes: options.maxInFlightBytes ?? 4 * 1024 * 1024,
      initialWindowBytes: options.initialWindowBytes ?? initialWindowFor(maxPayloadBytes),
      keepaliveMs: options.keepaliveMs ?? 5000,
      pacing: options.pacing ?? false,
    };
    this.rtt = new RttEstimator(this.o.initialRtoMs, this.o.minRtoMs, this.o.maxRtoMs);
    this.detector = new LossDetector(this.rtt, this.o.maxAckDelayMs);
    this.cc =
      cc ??
      newReno({
        maxDatagramBytes: maxPayloadBytes,
        initialWindowBytes: this.o.initialWindowBytes,
        maxWindowBytes: this.o.maxInFlightBytes,
      });
    this.pacer = this.o.pacing ? new Pacer(this.o.initialWindowBytes) : undefined;
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
    this.sendClose(code, message);
    this.fail(code, message, false, now);
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
    this.sendClose(code, message);
    this.fail(code, message, false, now);
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

  pathChanged(now: number): void {
    if (this.finished) return;
    this.statsData.pathChanges++;
    for (const p of this.detector.abandonAll()) this.requeue(p);
    this.rtt.reset();
    this.cc.reset?.(now);
    this.pacer?.reset();
    this.probes = 0;
    this.lastProgress = now;
    // Tell the peer at once what arrived, over the new path.
    if (this.received.size > 0) this.scheduleAck(now, true);
    // Something ack-eliciting goes at once even with nothing to resend: the first RTT sample of the path.
    if (this.state === 'open') this.pendingPing = true;
  }

  events(): TransportEvent[] {
    const out = this.queue;
    this.queue = [];
    return out;
  }

  // ---- network side ---------------------------------------------------------------------

  receive(packetNumber: number, payload: Uint8Array, now: number): void {
    let frames: TransportFrame[];
    try {
      frames = decodeFrames(payload);
    } catch {
      this.statsData.malformedDropped++;
      return;
    }
    if (this.state === 'failed') {
      this.answerAfterClose(frames, now);
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
    this.lastReceivedAt = now;
    this.received.add(packetNumber, packetNumber + 1);
    this.received.trim(MAX_ACK_RANGES);
    const outOfOrder = packetNumber !== this.largestReceived + 1;
    if (packetNumber > this.largestReceived) {
      this.largestReceived = packetNumber;
      this.largestReceivedAt = now;
    }
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
    this.lastPollAt = now;
    this.checkTimers(now);
    const out: OutgoingPacket[] = [];
    this.pacingBlocked = false;
    this.moreToSend = false;
    for (;;) {
      if (out.length >= MAX_PACKETS_PER_POLL) {
        this.moreToSend = true;
        break;
      }
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
    if (!this.finished) {
      if (this.moreToSend) times.push(this.lastPollAt);
      const loss = this.detector.deadline();
      if (loss !== undefined) times.push(loss);
      if (this.outstanding()) times.push(this.lastProgress + this.o.idleTimeoutMs);
      const keepalive = this.keepaliveAt();
      if (keepalive !== undefined) times.push(keepalive);
      if (this.pacingBlocked && this.pacer !== undefined) {
        times.push(this.pacer.nextSendTime(this.lastPollAt, this.cc.window(), this.rtt.srtt));
      }
    }
    return times.length === 0 ? undefined : Math.min(...times);
  }

  stats(): TransportStats {
    const snapshot = this.cc.snapshot?.();
    return {
      state: this.state,
      ...this.statsData,
      smoothedRttMs: this.rtt.srtt,
      minRttMs: this.rtt.minRtt,
      rtoMs: this.detector.pto(),
      bytesInFlight: this.detector.bytesInFlight,
      congestionWindowBytes: this.cc.window(),
      ssthreshBytes: snapshot?.ssthreshBytes,
      congestionEvents: snapshot?.congestionEvents ?? 0,
      sendBufferedBytes: this.buffered(),
    };
  }

  // ---- internals ----------------------------------------------------------------------

  private buffered(): number {
    return this.writeOffset - this.acked.contiguousFrom(0);
  }

  /** Waiting for the peer: the open, or an ack-eliciting packet not yet acknowledged. */
  private outstanding(): boolean {
    if (this.state === 'opening' || this.state === 'awaiting-accept') return true;
    return this.detector.ackElicitingInFlight;
  }

  /** When an idle open connection sends its next keepalive, or undefined. */
  private keepaliveAt(): number | undefined {
    if (this.o.keepaliveMs <= 0 || this.state !== 'open') return undefined;
    if (this.detector.ackElicitingInFlight || this.pendingPing) return undefined;
    return Math.max(this.lastElicitingSentAt, this.lastReceivedAt) + this.o.keepaliveMs;
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
        );
        break;
      case 'ack':
        this.onAck(f.ranges, f.delayMs, now);
        break;
      case 'stream':
        this.onStream(f.offset, f.data, f.fin, now);
        break;
    }
  }

  private onStream(offset: number, data: Uint8Array, fin: boolean, now: number): void {
    const end = offset + data.length;
    if (end > this.advertisedMax) {
      const reason = `peer sent up to ${end} past its window ${this.advertisedMax}`;
      this.sendClose('VMESH_ERR_FLOW_CONTROL', reason);
      this.fail('VMESH_ERR_FLOW_CONTROL', reason, false, now);
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
    this.deliver();
    if (
      !this.endReported &&
      this.peerFinOffset !== undefined &&
      this.readOffset >= this.peerFinOffset
    ) {
      this.endReported = true;
      this.queue.push({ type: 'end' });
    }
  }

  /** Reports whatever is now contiguous from `readOffset`. */
  private deliver(): void {
    for (;;) {
      let progressed = false;
      const exact = this.reassembly.get(this.readOffset);
      if (exact !== undefined) {
        this.reassembly.delete(this.readOffset);
        this.take(exact, this.readOffset);
        continue;
      }
      for (const [off, bytes] of this.reassembly) {
        if (off > this.readOffset) continue;
        this.reassembly.delete(off);
        this.take(bytes, off);
        progressed = true;
      }
      if (!progressed) break;
    }
  }

  private take(bytes: Uint8Array, off: number): void {
    const tail = bytes.subarray(this.readOffset - off);
    if (tail.length === 0) return;
    this.readOffset += tail.length;
    this.statsData.bytesReceived += tail.length;
    this.queue.push({ type: 'data', data: tail });
  }

  private onAck(ranges: [number, number][], delayMs: number, now: number): void {
    const r = this.detector.onAck(ranges, delayMs, now);
    // RFC 9002 A.7: losses (and the congestion event) before the acknowledged packets' growth.
    this.onLost(r.lost, r.persistentCongestion, now);
    for (const p of r.acked) {
      this.cc.onAck(p.bytes, now, p);
      this.markAcked(p);
    }
    for (const p of r.lateAcked) {
      if (p.abandoned !== true) this.statsData.spuriousLosses++;
      this.markAcked(p);
    }
    if (r.acked.length > 0 || r.lateAcked.length > 0) {
      if (r.acked.length > 0) this.lastProgress = now;
      this.freeAcked();
    }
  }

  private markAcked(p: SentPacket): void {
    for (const [s, e] of p.streamRanges) {
      this.acked.add(s, e);
      this.retransmit.remove(s, e);
    }
    if (p.fin) this.finAcked = true;
    if (p.open) this.pendingOpen = false;
    if (p.accept) this.pendingAccept = false;
  }

  private onLost(lost: SentPacket[], persistentCongestion: boolean, now: number): void {
    for (const p of lost) {
      this.statsData.lostPackets++;
      this.cc.onLoss(p.bytes, now, p);
      this.requeue(p);
    }
    if (persistentCongestion) {
      this.statsData.persistentCongestions++;
      this.cc.onPersistentCongestion?.(now);
    }
  }

  /** Queues again what a packet carried (lost, abandoned or probed). */
  private requeue(p: SentPacket): void {
    for (const [s, e] of p.streamRanges) {
      this.retransmit.add(s, e);
      for (const [as, ae] of this.acked.list()) {
        if (ae <= s) continue;
        if (as >= e) break;
        this.retransmit.remove(as, ae);
      }
    }
    if (p.fin && !this.finAcked) this.finSent = false;
    if (p.open && this.state === 'opening') this.pendingOpen = true;
    if (p.accept && this.state === 'open' && this.o.role === 'server') this.pendingAccept = true;
    if (p.maxData) this.pendingMaxData = true;
    if (p.streamRanges.length > 0) this.statsData.retransmits++;
  }

  private freeAcked(): void {
    const done = this.acked.contiguousFrom(0);
    while (this.chunkHead < this.chunks.length) {
      const c = this.chunks[this.chunkHead] as { offset: number; data: Uint8Array };
      if (c.offset + c.data.length > done) break;
      this.chunkHead++;
    }
    if (this.chunkHead > 64 && this.chunkHead * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.chunkHead);
      this.chunkHead = 0;
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
      );
      return;
    }
    const deadline = this.detector.deadline();
    if (deadline !== undefined && now >= deadline) {
      const t = this.detector.onTimeout(now);
      if (t?.kind === 'loss') this.onLost(t.lost, t.persistentCongestion, now);
      else if (t?.kind === 'pto') {
        // RFC 9002 §6.2.4: probes, which may exceed the window; the oldest
        // outstanding packet's content goes again in the first one.
        this.statsData.ptoExpirations++;
        this.probes = PROBES_PER_PTO;
        const oldest = this.detector.oldest();
        if (oldest !== undefined) this.requeue(oldest);
      }
    }
    const keepalive = this.keepaliveAt();
    if (keepalive !== undefined && now >= keepalive) this.pendingPing = true;
  }

  private scheduleAck(now: number, immediately: boolean): void {
    this.ackPending = true;
    const at = immediately ? now : now + this.o.maxAckDelayMs;
    this.ackDeadline = this.ackDeadline === undefined ? at : Math.min(this.ackDeadline, at);
  }

  /** Index of the chunk holding stream offset `at` (chunks are sorted and contiguous). */
  private chunkAt(at: number): number {
    let lo = this.chunkHead;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.chunks[mid] as { offset: number }).offset <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Bytes of the stream range [start, end) from the queued chunks. */
  private slice(start: number, end: number): Uint8Array {
    const out = new Uint8Array(end - start);
    for (let i = this.chunkAt(start); i < this.chunks.length; i++) {
      const c = this.chunks[i] as { offset: number; data: Uint8Array };
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

  private ackFrame(now: number): TransportFrame | undefined {
    if (this.received.size === 0) return undefined;
    const ranges = [...this.received.list()]
      .reverse()
      .slice(0, MAX_ACK_RANGES)
      .map(([s, e]): [number, number] => [s, e - 1]);
    return { kind: 'ack', delayMs: Math.max(0, now - this.largestReceivedAt), ranges };
  }

  private buildPacket(now: number): OutgoingPacket | undefined {
    if (this.pendingClose !== undefined) {
      const frame: TransportFrame = {
        kind: 'close',
        code: this.pendingClose.code,
        reason: this.pendingClose.reason,
      };
      this.pendingClose = undefined;
      this.lastCloseAt = now;
      return this.emit([frame], this.newSent(now), now, false);
    }
    if (this.state === 'failed') return undefined;
    const ackDue = this.ackPending && this.ackDeadline !== undefined && now >= this.ackDeadline;
    const ack = this.ackPending ? this.ackFrame(now) : undefined;
    if (this.finished) {
      // Closed: only acknowledgements (the peer may resend its FIN until ours reaches it).
      if (!ackDue) return undefined;
      this.clearAck();
      return ack === undefined ? undefined : this.emit([ack], this.newSent(now), now, false);
    }
    const frames: TransportFrame[] = [];
    let room = this.o.maxPayloadBytes - (ack === undefined ? 0 : frameSize(ack));
    const sp = this.newSent(now);
    const add = (f: TransportFrame): void => {
      frames.push(f);
      room -= frameSize(f);
    };
    const probe = this.probes > 0;
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
    if (this.state === 'open') {
      const cwnd = this.cc.window();
      const windowOpen = probe || this.detector.bytesInFlight < cwnd;
      let paced = false;
      if (windowOpen && !probe && this.pacer !== undefined && this.hasStreamToSend()) {
        paced = !this.pacer.canSend(now, cwnd, this.rtt.srtt);
        if (paced) this.pacingBlocked = true;
      }
      if (windowOpen && !paced) this.addStream(sp, room, add);
      sp.cwndLimited = this.detector.bytesInFlight + sp.bytes >= cwnd / 2;
      if (sp.bytes > 0 && !probe) this.pacer?.onSent(sp.bytes);
    }
    if ((this.pendingPing || probe) && frames.length === 0) {
      add({ kind: 'ping' });
      if (!probe) this.statsData.keepalivesSent++;
    }
    const eliciting = frames.length > 0;
    if (ack !== undefined && (ackDue || eliciting)) {
      frames.push(ack);
      this.clearAck();
    }
    if (frames.length === 0) return undefined;
    if (eliciting) {
      this.pendingPing = false;
      if (probe) this.probes--;
    }
    return this.emit(frames, sp, now, eliciting);
  }

  private clearAck(): void {
    this.ackPending = false;
    this.ackDeadline = undefined;
    this.elicitingSinceAck = 0;
  }

  private hasStreamToSend(): boolean {
    if (this.retransmit.size > 0) return true;
    if (this.sendOffset < Math.min(this.writeOffset, this.peerMaxData)) return true;
    return this.finOffset !== undefined && this.sendOffset === this.finOffset && !this.finSent;
  }

  private newSent(now: number): SentPacket {
    return {
      packetNumber: -1,
      sentAt: now,
      bytes: 0,
      cwndLimited: false,
      ackEliciting: false,
      streamRanges: [],
      fin: false,
      open: false,
      accept: false,
      maxData: false,
    };
  }

  /** Retransmissions first, then new data within the peer's limit, then a bare FIN, in `room` bytes. */
  private addStream(sp: SentPacket, room: number, add: (f: TransportFrame) => void): void {
    for (const [s, e] of [...this.retransmit.list()]) {
      const n = Math.min(e - s, room - STREAM_OVERHEAD);
      if (n <= 0) return;
      add({ kind: 'stream', offset: s, fin: false, data: this.slice(s, s + n) });
      room -= STREAM_OVERHEAD + n;
      this.retransmit.remove(s, s + n);
      sp.streamRanges.push([s, s + n]);
      sp.bytes += n;
    }
    const limit = Math.min(this.writeOffset, this.peerMaxData);
    if (this.sendOffset < limit) {
      const n = Math.min(limit - this.sendOffset, room - STREAM_OVERHEAD);
      if (n <= 0) return;
      const s = this.sendOffset;
      this.sendOffset += n;
      const fin =
        this.finOffset !== undefined && this.sendOffset === this.finOffset && !this.finSent;
      add({ kind: 'stream', offset: s, fin, data: this.slice(s, s + n) });
      room -= STREAM_OVERHEAD + n;
      sp.streamRanges.push([s, s + n]);
      sp.bytes += n;
      if (fin) {
        this.finSent = true;
        sp.fin = true;
      }
    }
    if (
      this.finOffset !== undefined &&
      this.sendOffset === this.finOffset &&
      !this.finSent &&
      room >= STREAM_OVERHEAD
    ) {
      add({ kind: 'stream', offset: this.finOffset, fin: true, data: new Uint8Array(0) });
      this.finSent = true;
      sp.fin = true;
    }
  }

  private emit(
    frames: TransportFrame[],
    sp: SentPacket,
    now: number,
    eliciting: boolean,
  ): OutgoingPacket {
    const packetNumber = this.nextPacketNumber++;
    sp.packetNumber = packetNumber;
    sp.ackEliciting = eliciting;
    if (eliciting) {
      // The idle clock runs from the first packet the peer has yet to acknowledge.
      if (!this.detector.ackElicitingInFlight && this.state === 'open') this.lastProgress = now;
      this.lastElicitingSentAt = now;
      this.statsData.bytesSent += sp.bytes;
      this.cc.onSent?.(sp, now);
    }
    this.detector.onSent(sp);
    this.statsData.packetsSent++;
    return { packetNumber, payload: encodeFrames(frames) };
  }

  private checkClosed(): void {
    if (this.state !== 'open') return;
    const allSent =
      this.finOffset !== undefined &&
      this.finAcked &&
      this.acked.contiguousFrom(0) >= this.finOffset;
    if (allSent && this.endReported) {
      this.state = 'closed';
      this.pendingPing = false;
      this.probes = 0;
      this.queue.push({ type: 'closed' });
    }
  }

  private sendClose(code: string, reason: string): void {
    this.pendingClose = { code, reason };
    this.sentClose = this.pendingClose;
  }

  /**
   * After we closed with an error: a peer that keeps sending did not get our
   * CLOSE (it was lost), so it goes again, at most once per round trip.
   */
  private answerAfterClose(frames: TransportFrame[], now: number): void {
    if (this.sentClose === undefined || this.pendingClose !== undefined) return;
    if (this.closeResends >= MAX_CLOSE_RESENDS) return;
    if (frames.some((f) => f.kind === 'close')) return;
    if (now - this.lastCloseAt < (this.rtt.srtt ?? 0)) return;
    this.closeResends++;
    this.pendingClose = this.sentClose;
  }

  private fail(code: string, message: string, remote: boolean, _now: number): void {
    if (this.finished) return;
    this.state = 'failed';
    this.ackPending = false;
    this.probes = 0;
    this.pendingPing = false;
    this.queue.push({ type: 'error', code, message, remote });
  }
}

export function createTransport(
  options: TransportOptions,
  cc?: CongestionController,
): StreamTransport {
  return new Stream(options, cc);
}
