/** Keepalive PING/PONG bodies: exactly 8 bytes, a float64 (the sender's clock) echoed back. */
import { VmeshError } from '../errors/index.ts';
import { PING_BODY_BYTES } from './types.ts';

export function encodePing(value: number): Buffer {
  const out = Buffer.allocUnsafe(PING_BODY_BYTES);
  out.writeDoubleBE(value, 0);
  return out;
}

export function decodePing(buf: Uint8Array): number {
  if (buf.length !== PING_BODY_BYTES)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'ping body must be 8 bytes');
  return Buffer.from(buf.buffer, buf.byteOffset, buf.length).readDoubleBE(0);
}
