/**
 * The vconn transport contract: a reliable, ordered byte stream between the
 * source VM and the destination VM of one virtual connection, as a sans-I/O
 * state machine (no sockets, no timers, no clock: `now` is passed in).
 *
 * The transport produces payloads; the VM puts each in a data packet whose
 * header carries the packet number, and hands received packets' numbers and
 * payloads back. Packet numbers are per direction, strictly increasing and
 * never reused: a retransmission carries the same stream bytes in a packet
 * with a new number (QUIC style), which keeps replay windows and AEAD nonces
 * simple for later work and lets a resend take another route.
 */

export type TransportRole = 'client' | 'server';

export interface TransportOptions {
  role: TransportRole;
  /**
   * Largest payload this transport emits, in bytes (header space is the VM's).
   * @default 16384
   */
  maxPayloadBytes?: number;
  /**
   * Bytes the application may queue for sending before `write` reports backpressure.
   * @default 1048576
   */
  sendBufferBytes?: number;
  /**
   * Receive window: bytes the peer may send beyond what the application has read.
   * @default 1048576
   */
  receiveWindowBytes?: number;
  /**
   * Initial retransmission timeout in ms (RFC 6298 §2).
   * @default 1000
   */
  initialRtoMs?: number;
  /** @default 200 */
  minRtoMs?: number;
  /** @default 10000 */
  maxRtoMs?: number;
  /**
   * Give up (error VMESH_ERR_TIMEOUT) when nothing has been acknowledged for this long
   * while data is outstanding, or when the open is not answered in this time.
   * @default 15000
   */
  idleTimeoutMs?: number;
  /**
   * Largest delay before acknowledging received data, in ms.
   * @default 25
   */
  maxAckDelayMs?: number;
  /**
   * Cap on bytes in flight: the largest congestion window (a resource limit).
   * @default 4194304
   */
  maxInFlightBytes?: number;
  /**
   * Initial congestion window in bytes (RFC 9002 §7.2).
   * @default min(10 · maxPayloadBytes, max(14720, 2 · maxPayloadBytes))
   */
  initialWindowBytes?: number;
  /**
   * An open connection with nothing awaiting acknowledgement sends a PING
   * (ack-eliciting) when nothing was sent or received for this long, so an idle
   * path stays warm and a vanished peer is noticed by `idleTimeoutMs`. 0 disables.
   * @default 5000
   */
  keepaliveMs?: number;
  /**
   * Pace stream data at 1.25 · cwnd / smoothed RTT (RFC 9002 §7.7) instead of
   * sending a window at once. Needs the caller to poll at `nextDeadline()`.
   * @default false
   */
  pacing?: boolean;
}

/** Events the transport reports; drained with `events()`. */
export type TransportEvent =
  /** Client: the server accepted the open. Server: never. */
  | { type: 'open' }
  /** Server: the client's open request (opaque bytes); answer with accept() or reject(). */
  | { type: 'openRequest'; request: Uint8Array }
  /** In-order stream bytes for the application. */
  | { type: 'data'; data: Uint8Array }
  /** The peer finished sending (half-close); no more 'data' follows. */
  | { type: 'end' }
  /** Send buffer has room again after `write` returned false. */
  | { type: 'drain' }
  /** Both directions finished and everything sent was acknowledged. */
  | { type: 'closed' }
  /** The connection failed or was aborted; terminal. `code` is an ErrorCode. */
  | { type: 'error'; code: string; message: string; remote: boolean };

/** One payload to send in a packet with this number. */
export interface OutgoingPacket {
  packetNumber: number;
  payload: Uint8Array;
}

/** Plain-data counters and state for snapshots. */
export interface TransportStats {
  state: string;
  bytesSent: number;
  bytesReceived: number;
  packetsSent: number;
  packetsReceived: number;
  retransmits: number;
  duplicatesDropped: number;
  malformedDropped: number;
  smoothedRttMs: number | undefined;
  minRttMs: number | undefined;
  /** The current probe timeout (RFC 9002 §6.2.1), backoff included. */
  rtoMs: number;
  bytesInFlight: number;
  congestionWindowBytes: number;
  /** Slow-start threshold; undefined while infinite (or unknown to a custom controller). */
  ssthreshBytes: number | undefined;
  /** Window reductions for loss. */
  congestionEvents: number;
  /** Written and not yet acknowledged. */
  sendBufferedBytes: number;
  /** Packets declared lost (packet or time threshold). */
  lostPackets: number;
  /** Packets declared lost and acknowledged afterwards. */
  spuriousLosses: number;
  ptoExpirations: number;
  persistentCongestions: number;
  keepalivesSent: number;
  pathChanges: number;
}

export interface StreamTransport {
  /** Client only: start the connection with an opaque open request (e.g. service name). */
  open(request: Uint8Array, now: number): void;
  /** Server only: accept the pending open request. */
  accept(now: number): void;
  /** Server only: refuse the open request with an error code and reason. */
  reject(code: string, message: string, now: number): void;
  /** Queue bytes for sending. Returns false when the send buffer is over its limit (backpressure). */
  write(data: Uint8Array, now: number): boolean;
  /** Finish sending (half-close) after queued bytes. */
  end(now: number): void;
  /**
   * The owner moved the connection to another path (route or protocol): the
   * congestion controller and RTT estimate go back to their initial values and
   * everything unacknowledged is queued again at once (RFC 9000 §9.4), within the
   * reset window; the next `poll` sends it.
   */
  pathChanged(now: number): void;
  /** Abort: send a close with this code; terminal. */
  abort(code: string, message: string, now: number): void;
  /** The application consumed `bytes` of delivered data (opens the receive window). */
  consumed(bytes: number, now: number): void;
  /** Feed a received packet's number and payload. Malformed payloads are dropped and counted. */
  receive(packetNumber: number, payload: Uint8Array, now: number): void;
  /** Payloads to send now (data, acks, retransmissions, window updates, close). */
  poll(now: number): OutgoingPacket[];
  /** Events since the last call. */
  events(): TransportEvent[];
  /** Absolute time of the next needed poll for timers (loss, PTO, delayed ack, idle, keepalive, pacing), or undefined. */
  nextDeadline(): number | undefined;
  /** True once 'closed' or 'error' was reported. */
  readonly finished: boolean;
  stats(): TransportStats;
}
