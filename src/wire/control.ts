/**
 * Control envelope inside a CONTROL frame: `u8 version | u8 protocol | u8 type | u8 reserved (0) | body`.
 * Protocol 0 is the device's own channel (directory); 1..255 are routing protocols.
 */
import { VmeshError } from '../errors/index.ts';
import { WIRE_VERSION } from './types.ts';
import type { ControlEnvelope } from './types.ts';

export const CONTROL_HEADER_BYTES = 4;

export function encodeControl(e: ControlEnvelope): Buffer {
  if (!Number.isInteger(e.protocol) || e.protocol < 0 || e.protocol > 255) {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'control protocol must be 0..255');
  }
  if (!Number.isInteger(e.type) || e.type < 0 || e.type > 255) {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'control message type must be 0..255');
  }
  const out = Buffer.allocUnsafe(CONTROL_HEADER_BYTES + e.body.length);
  out[0] = WIRE_VERSION;
  out[1] = e.protocol;
  out[2] = e.type;
  out[3] = 0;
  out.set(e.body, CONTROL_HEADER_BYTES);
  return out;
}

export function decodeControl(buf: Uint8Array): ControlEnvelope {
  if (buf.length < CONTROL_HEADER_BYTES)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'control envelope too short');
  if (buf[0] !== WIRE_VERSION) {
    throw new VmeshError(
      'VMESH_ERR_UNSUPPORTED_VERSION',
      `control version ${buf[0]} (this device speaks ${WIRE_VERSION})`,
    );
  }
  if (buf[3] !== 0)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'control reserved byte must be zero');
  return {
    protocol: buf[1] as number,
    type: buf[2] as number,
    body: buf.subarray(CONTROL_HEADER_BYTES),
  };
}
