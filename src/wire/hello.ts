/**
 * Link hello (placeholder handshake message; Noise XX replaces it):
 * `u8 version | 16B device id | 32B Ed25519 key | 32B X25519 key | u8 name length | name UTF-8 (1..64)`.
 */
import { VmeshError } from '../errors/index.ts';
import { DEVICE_ID_BYTES, isDeviceId, readHexId, writeHexId } from './ids.ts';
import { WIRE_VERSION } from './types.ts';
import type { Hello } from './types.ts';

const KEY_BYTES = 32;
const FIXED = 1 + DEVICE_ID_BYTES + 2 * KEY_BYTES + 1;

export function encodeHello(h: Hello): Buffer {
  const name = Buffer.from(h.name, 'utf8');
  if (name.length < 1 || name.length > 64)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'hello name must be 1..64 bytes');
  if (h.signingKey.length !== KEY_BYTES || h.agreementKey.length !== KEY_BYTES) {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'hello keys must be 32 bytes');
  }
  if (!isDeviceId(h.device)) throw new VmeshError('VMESH_ERR_MALFORMED', 'bad device id');
  const out = Buffer.alloc(FIXED + name.length);
  out[0] = WIRE_VERSION;
  writeHexId(out, 1, h.device, DEVICE_ID_BYTES);
  out.set(h.signingKey, 1 + DEVICE_ID_BYTES);
  out.set(h.agreementKey, 1 + DEVICE_ID_BYTES + KEY_BYTES);
  out[FIXED - 1] = name.length;
  name.copy(out, FIXED);
  return out;
}

export function decodeHello(buf: Uint8Array): Hello {
  if (buf.length < 1) throw new VmeshError('VMESH_ERR_MALFORMED', 'empty hello');
  if (buf[0] !== WIRE_VERSION) {
    throw new VmeshError(
      'VMESH_ERR_UNSUPPORTED_VERSION',
      `hello version ${buf[0]} (this device speaks ${WIRE_VERSION})`,
    );
  }
  if (buf.length < FIXED + 1) throw new VmeshError('VMESH_ERR_MALFORMED', 'hello too short');
  const nameLength = buf[FIXED - 1] as number;
  if (nameLength < 1 || nameLength > 64 || buf.length !== FIXED + nameLength) {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'hello name length mismatch');
  }
  let name: string;
  try {
    name = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(FIXED));
  } catch {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'hello name is not UTF-8');
  }
  return {
    device: readHexId(buf, 1, DEVICE_ID_BYTES),
    signingKey: new Uint8Array(buf.subarray(1 + DEVICE_ID_BYTES, 1 + DEVICE_ID_BYTES + KEY_BYTES)),
    agreementKey: new Uint8Array(buf.subarray(1 + DEVICE_ID_BYTES + KEY_BYTES, FIXED - 1)),
    name,
  };
}
