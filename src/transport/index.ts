/** The reliable ordered stream inside a vconn. The only door of src/transport/. */
export { createTransport, fixedWindow, Stream } from './stream.ts';
export type { CongestionController } from './stream.ts';
export { decodeFrames, encodeFrames, FrameKind, MAX_ACK_RANGES } from './frames.ts';
export type { TransportFrame } from './frames.ts';
export { RangeSet } from './ranges.ts';
export { RttEstimator } from './rtt.ts';
export type {
  OutgoingPacket,
  StreamTransport,
  TransportEvent,
  TransportOptions,
  TransportRole,
  TransportStats,
} from './types.ts';
