/**
 * Link framing: every frame on a link is `u32 length (big-endian) | u8 type | body`,
 * where `length` counts the type byte and the body (so length >= 1).
 *
 * Owns: the frame type numbers, `encodeFrame`, and `FrameDecoder`, a
 * named-state parser (ws style) that accepts input split anywhere and yields
 * whole frames. A length over `maxFrameBytes` (or zero) is fatal for the
 * stream — framing cannot be recovered — and throws VMESH_ERR_FRAME_TOO_LARGE
 * or VMESH_ERR_MALFORMED; the link layer then closes the link. A frame of an
 * unknown type is not the decoder's business: it is yielded and the receiver
 * drops and counts it. Layout: docs/wire.md.
 */
import { VmeshError } from '../errors/index.ts';

/** Frame types carried on a link. */
export const FrameType = {
  /** Link handshake message (Noise XX; certificates in its payloads). */
  HELLO: 1,
  /** Keepalive probe; body is echoed back in PONG. */
  PING: 2,
  /** Keepalive answer. */
  PONG: 3,
  /** A control message envelope (routing protocols, directory). */
  CONTROL: 4,
  /** A data packet (header + end-to-end payload). */
  PACKET: 5,
  /**
   * After the handshake, every frame but these two is sealed into one of
   * them. SEALED: AEAD(u8 inner type | inner body) — control, keepalive.
   */
  SEALED: 6,
  /**
   * SEALED_PACKET: `u16 n | n bytes AEAD(packet header), AD = u32 payload
   * length | payload` — the header is sealed, the payload (already sealed end
   * to end) travels as it is (docs/security.md explains the choice).
   */
  SEALED_PACKET: 7,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** Bytes of the length prefix. */
export const FRAME_PREFIX_BYTES = 4;
/** Default largest frame (type + body) a decoder accepts: 256 KiB. */
export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024;

/** One decoded frame; `body` is a view into decoder-owned or input memory. */
export interface Frame {
  type: number;
  body: Uint8Array;
}

/** Encodes one frame into a new buffer. */
export function encodeFrame(type: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + 1 + body.length);
  out.writeUInt32BE(body.length + 1, 0);
  out[FRAME_PREFIX_BYTES] = type;
  out.set(body, FRAME_PREFIX_BYTES + 1);
  return out;
}

export interface FrameDecoderOptions {
  /**
   * Largest accepted frame length (type byte + body).
   * @default 262144
   */
  maxFrameBytes?: number;
}

const enum State {
  /** Collecting the 4-byte length prefix. */
  Length,
  /** Collecting `need` bytes of type + body. */
  Body,
  /** A fatal error happened; every further push throws it again. */
  Failed,
}

/**
 * Incremental frame parser. `push(chunk)` returns the frames completed by the
 * chunk. Bodies of frames that lie wholly inside one chunk are views into that
 * chunk (no copy); the caller must not reuse the chunk's memory afterwards.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  private state: State = State.Length;
  private readonly lengthBytes = Buffer.alloc(FRAME_PREFIX_BYTES);
  private lengthHave = 0;
  private need = 0;
  private partial: Buffer | undefined;
  private partialHave = 0;
  private failure: VmeshError | undefined;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** Bytes held for an unfinished frame (for tests and accounting). */
  get buffered(): number {
    return this.lengthHave + this.partialHave;
  }

  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.state) {
        case State.Failed:
          throw this.failure as VmeshError;
        case State.Length: {
          if (this.lengthHave === 0 && chunk.length - pos >= FRAME_PREFIX_BYTES) {
            this.need = readU32(chunk, pos);
            pos += FRAME_PREFIX_BYTES;
          } else {
            const take = Math.min(FRAME_PREFIX_BYTES - this.lengthHave, chunk.length - pos);
            this.lengthBytes.set(chunk.subarray(pos, pos + take), this.lengthHave);
            this.lengthHave += take;
            pos += take;
            if (this.lengthHave < FRAME_PREFIX_BYTES) break;
            this.need = this.lengthBytes.readUInt32BE(0);
            this.lengthHave = 0;
          }
          this.checkLength();
          this.state = State.Body;
          break;
        }
        case State.Body: {
          if (this.partial === undefined && chunk.length - pos >= this.need) {
            frames.push({
              type: chunk[pos] as number,
              body: chunk.subarray(pos + 1, pos + this.need),
            });
            pos += this.need;
            this.state = State.Length;
            break;
          }
          this.partial ??= Buffer.allocUnsafe(this.need);
          const take = Math.min(this.need - this.partialHave, chunk.length - pos);
          this.partial.set(chunk.subarray(pos, pos + take), this.partialHave);
          this.partialHave += take;
          pos += take;
          if (this.partialHave === this.need) {
            frames.push({ type: this.partial[0] as number, body: this.partial.subarray(1) });
            this.partial = undefined;
            this.partialHave = 0;
            this.state = State.Length;
          }
          break;
        }
      }
    }
    return frames;
  }

  private checkLength(): void {
    if (this.need === 0) {
      this.fail(
        new VmeshError('VMESH_ERR_MALFORMED', 'frame length 0 (a frame has at least a type byte)'),
      );
    }
    if (this.need > this.maxFrameBytes) {
      this.fail(
        new VmeshError(
          'VMESH_ERR_FRAME_TOO_LARGE',
          `frame length ${this.need} exceeds maxFrameBytes ${this.maxFrameBytes}`,
          { length: this.need, maxFrameBytes: this.maxFrameBytes },
        ),
      );
    }
  }

  private fail(err: VmeshError): never {
    this.state = State.Failed;
    this.failure = err;
    throw err;
  }
}

function readU32(buf: Uint8Array, pos: number): number {
  return (
    ((buf[pos] as number) * 0x1000000 +
      (((buf[pos + 1] as number) << 16) |
        ((buf[pos + 2] as number) << 8) |
        (buf[pos + 3] as number))) >>>
    0
  );
}
