/**
 * SecureChannel: frames on an established link, sealed with the two cipher
 * states of the link's Noise handshake (ChaCha20-Poly1305, counter nonces;
 * TCP keeps both ends' counters in step, so any failure to open is an attack
 * or corruption and closes the link).
 *
 * - Control, keepalive and every other frame: one SEALED frame,
 *   AEAD(u8 inner type | body).
 * - Data packets: one SEALED_PACKET frame, `u16 n | AEAD(header) (n bytes) |
 *   payload`, with AD = u32 payload length: the header (addresses, packet
 *   number, hop limit, trace) is hidden and authenticated; the payload is
 *   already end-to-end ciphertext and is not sealed again (one AEAD pass per
 *   16 KiB payload per hop would cost about as much as the relay itself;
 *   docs/security.md gives the measurement and the reasoning).
 *
 * Rekey (Noise §11.3): each direction's key is replaced after `rekeyAfter`
 * frames, at the same frame on both ends, with no message.
 */
import { VmeshError } from '../errors/index.ts';
import type { CipherState } from '../crypto/index.ts';
import { FRAME_PREFIX_BYTES, FrameType, packetHeaderLength } from '../wire/index.ts';

/** A packet's header length, or undefined if it is not a well-formed packet (then it is sealed whole). */
function headerLength(body: Uint8Array): number | undefined {
  try {
    return packetHeaderLength(body);
  } catch {
    return undefined;
  }
}

/** Default frames per key per direction before a rekey. */
export const DEFAULT_REKEY_AFTER_FRAMES = 1 << 20;

export class SecureChannel {
  private sent = 0;
  private received = 0;

  constructor(
    private readonly sendCipher: CipherState,
    private readonly receiveCipher: CipherState,
    private readonly rekeyAfter: number = DEFAULT_REKEY_AFTER_FRAMES,
  ) {}

  /** Frames sealed and opened so far (rekeys happen every `rekeyAfter` of each). */
  get counts(): { sent: number; received: number } {
    return { sent: this.sent, received: this.received };
  }

  /** A complete wire frame (length prefix included) carrying `type`/`body` sealed. */
  seal(type: number, body: Uint8Array): Buffer {
    let out: Buffer;
    const n = type === FrameType.PACKET ? headerLength(body) : undefined;
    if (n !== undefined) {
      const payload = body.subarray(n);
      const ad = Buffer.allocUnsafe(4);
      ad.writeUInt32BE(payload.length, 0);
      const header = this.sendCipher.encrypt(body.subarray(0, n), ad);
      out = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + 1 + 2 + header.length + payload.length);
      out.writeUInt32BE(1 + 2 + header.length + payload.length, 0);
      out[FRAME_PREFIX_BYTES] = FrameType.SEALED_PACKET;
      out.writeUInt16BE(header.length, FRAME_PREFIX_BYTES + 1);
      out.set(header, FRAME_PREFIX_BYTES + 3);
      out.set(payload, FRAME_PREFIX_BYTES + 3 + header.length);
    } else {
      const inner = Buffer.allocUnsafe(1 + body.length);
      inner[0] = type;
      inner.set(body, 1);
      const sealed = this.sendCipher.encrypt(inner);
      out = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + 1 + sealed.length);
      out.writeUInt32BE(1 + sealed.length, 0);
      out[FRAME_PREFIX_BYTES] = FrameType.SEALED;
      out.set(sealed, FRAME_PREFIX_BYTES + 1);
    }
    if (++this.sent % this.rekeyAfter === 0) this.sendCipher.rekey();
    return out;
  }

  /**
   * Opens a received SEALED or SEALED_PACKET frame into its inner frame.
   * Throws VMESH_ERR_AUTH_FAILED (tampered, reordered, injected) or
   * VMESH_ERR_MALFORMED; either is fatal for the link.
   */
  open(type: number, body: Uint8Array): { type: number; body: Uint8Array } {
    let result: { type: number; body: Uint8Array };
    if (type === FrameType.SEALED_PACKET) {
      if (body.length < 2) throw new VmeshError('VMESH_ERR_MALFORMED', 'sealed packet too short');
      const n = (body[0] as number) * 256 + (body[1] as number);
      if (2 + n > body.length)
        throw new VmeshError('VMESH_ERR_MALFORMED', 'sealed header overruns the frame');
      const payload = body.subarray(2 + n);
      const ad = Buffer.allocUnsafe(4);
      ad.writeUInt32BE(payload.length, 0);
      const header = this.receiveCipher.decrypt(body.subarray(2, 2 + n), ad);
      const packet = Buffer.allocUnsafe(header.length + payload.length);
      packet.set(header, 0);
      packet.set(payload, header.length);
      result = { type: FrameType.PACKET, body: packet };
    } else if (type === FrameType.SEALED) {
      const inner = this.receiveCipher.decrypt(body);
      if (inner.length < 1) throw new VmeshError('VMESH_ERR_MALFORMED', 'empty sealed frame');
      result = { type: inner[0] as number, body: inner.subarray(1) };
    } else {
      throw new VmeshError('VMESH_ERR_MALFORMED', `frame type ${type} is not sealed`);
    }
    if (++this.received % this.rekeyAfter === 0) this.receiveCipher.rekey();
    return result;
  }
}
