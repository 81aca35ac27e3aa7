/**
 * Identifiers on the wire and in code.
 *
 * A device id is 16 bytes on the wire (the first 16 bytes of BLAKE2s-256 over
 * the device's public keys, see src/crypto) and a 32-character lowercase hex
 * string in code. A connection id is 8 random bytes on the wire and a
 * 16-character hex string in code. Hex strings keep ids usable as Map keys and
 * readable in logs, the CLI and JSON.
 */
import { VmeshError } from '../errors/index.ts';

/** 32 lowercase hex characters: 16 bytes. */
export type DeviceId = string;
/** 16 lowercase hex characters: 8 bytes. */
export type ConnectionId = string;

export const DEVICE_ID_BYTES = 16;
export const CONNECTION_ID_BYTES = 8;

const HEX_DEVICE = /^[0-9a-f]{32}$/;
const HEX_CONN = /^[0-9a-f]{16}$/;

export function isDeviceId(value: unknown): value is DeviceId {
  return typeof value === 'string' && HEX_DEVICE.test(value);
}

export function isConnectionId(value: unknown): value is ConnectionId {
  return typeof value === 'string' && HEX_CONN.test(value);
}

/** Writes a hex id of `bytes` bytes into `out` at `offset`. Throws on a bad id. */
export function writeHexId(out: Uint8Array, offset: number, id: string, bytes: number): void {
  if (id.length !== bytes * 2) {
    throw new VmeshError('VMESH_ERR_MALFORMED', `id must be ${bytes * 2} hex characters`);
  }
  const written = Buffer.from(out.buffer, out.byteOffset, out.byteLength).write(
    id,
    offset,
    bytes,
    'hex',
  );
  if (written !== bytes) {
    throw new VmeshError('VMESH_ERR_MALFORMED', `id is not hex: ${JSON.stringify(id)}`);
  }
}

/** Reads `bytes` bytes at `offset` as a lowercase hex id. */
export function readHexId(buf: Uint8Array, offset: number, bytes: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + offset, bytes).toString('hex');
}
