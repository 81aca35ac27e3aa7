/** Small helpers shared by protocol codecs: device id lists and a strict reader. */
import { VmeshError } from '../errors/index.ts';
import { DEVICE_ID_BYTES, readHexId } from '../wire/index.ts';
import type { DeviceId } from '../wire/index.ts';

/** Bounds-checked big-endian reader; every overrun is VMESH_ERR_MALFORMED. */
export class Reader {
  private readonly buf: Buffer;
  private pos = 0;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length)
      throw new VmeshError('VMESH_ERR_MALFORMED', 'message truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** `n` bytes (copied). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = Uint8Array.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return v;
  }

  id(): DeviceId {
    this.need(DEVICE_ID_BYTES);
    const v = readHexId(this.buf, this.pos, DEVICE_ID_BYTES);
    this.pos += DEVICE_ID_BYTES;
    return v;
  }

  /** Throws unless every byte was consumed. */
  end(): void {
    if (this.pos !== this.buf.length)
      throw new VmeshError('VMESH_ERR_MALFORMED', 'trailing bytes in message');
  }
}
