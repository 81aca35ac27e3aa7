/** The reliable ordered stream inside a vconn. The only door of src/transport/. */
export { createTransport, Stream } from './stream.ts';
export { fixedWindow, initialWindowFor, NewReno, newReno } from './congestion.ts';
export type {
  CongestionController,
  CongestionSnapshot,
  NewRenoInit,
  SentPacketInfo,
} from './congestion.ts';
export { LossDetector, PACKET_THRESHOLD, TIME_THRESHOLD } from './loss-detector.ts';
export type { AckOutcome, SentPacket, TimeoutOutcome } from './loss-detector.ts';
export { Pacer } from './pacer.ts';
export { decodeFrames, encodeFrames, FrameKind, MAX_ACK_RANGES } from './frames.ts';
export type { TransportFrame } from './frames.ts';
export { RangeSet } from './ranges.ts';
export { GRANULARITY_MS, RttEstimator } from './rtt.ts';
export type {
  OutgoingPacket,
  StreamTransport,
  TransportEvent,
  TransportOptions,
  TransportRole,
  TransportStats,
} from './types.ts';
