/**
 * Certificate revocation lists (docs/certificates.md, "Revocation list v1").
 *
 * A list names revoked certificate serials of one network, sorted ascending
 * and unique, with the time the CA issued it and the CA's Ed25519 signature
 * over every preceding byte. A device keeps the newest list it has verified
 * (`newerRevocationList`): a later issuedAt replaces an earlier one, so a
 * list only ever grows by being re-issued whole.
 *
 * `decodeRevocationList` is strict (VMESH_ERR_MALFORMED,
 * VMESH_ERR_UNSUPPORTED_VERSION); `verifyRevocationList` reports every failure
 * as VMESH_ERR_CERT_INVALID (details.reason: malformed, network, signature).
 */
import { sign } from 'node:crypto';
import { VmeshError } from '../errors/index.ts';
import { readPublicFile, readTime, verifyCaSignature, writeFileAtomic } from './cert.ts';
import type { Ca, Trust } from './cert.ts';

/** A decoded, not yet verified, revocation list. */
export interface RevocationListData {
  readonly version: 1;
  /** Network id of the CA that signed it, 32 hex characters. */
  readonly networkId: string;
  /** When the CA issued it (unix ms); a larger value replaces a smaller one. */
  readonly issuedAt: number;
  /** Revoked serials, ascending, unique. */
  readonly serials: readonly number[];
  /** The CA's Ed25519 signature, 64 bytes. */
  readonly signature: Uint8Array;
  /** The whole list (a private copy of the decoded bytes). */
  readonly raw: Uint8Array;
  /** Every byte the signature covers. */
  readonly signed: Uint8Array;
}

/** A revocation list verified against a network's trust. */
export interface RevocationList extends RevocationListData {
  /** True if the certificate with this serial is revoked. */
  has(serial: number): boolean;
}

const CRL_MAGIC = Buffer.from('VMR', 'latin1');
const CRL_VERSION = 1;
const HEADER_BYTES = 32;
const SIGNATURE_BYTES = 64;

function malformed(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_MALFORMED', message);
}

function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** True if the bytes start with a revocation list's magic, "VMR". */
export function hasRevocationListMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && view(bytes).subarray(0, 3).equals(CRL_MAGIC);
}

/** Signs a list of revoked serials (any order; duplicates are merged). */
export function createRevocationList(
  ca: Ca,
  serials: Iterable<number>,
  issuedAt: number,
): Uint8Array {
  if (!Number.isSafeInteger(issuedAt) || issuedAt < 0)
    throw new VmeshError('VMESH_ERR_CONFIG', 'issuedAt must be a whole number of unix ms from 0');
  const sorted = [...new Set(serials)].sort((a, b) => a - b);
  for (const s of sorted) {
    if (!Number.isInteger(s) || s < 0 || s > 0xffffffff)
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `serial ${String(s)} is not a whole number from 0 to 4294967295`,
      );
  }
  const out = Buffer.alloc(HEADER_BYTES + 4 * sorted.length + SIGNATURE_BYTES);
  CRL_MAGIC.copy(out, 0);
  out[3] = CRL_VERSION;
  Buffer.from(ca.networkId, 'hex').copy(out, 4);
  out.writeBigUInt64BE(BigInt(issuedAt), 20);
  out.writeUInt32BE(sorted.length, 28);
  sorted.forEach((s, i) => out.writeUInt32BE(s, HEADER_BYTES + 4 * i));
  const signedEnd = out.length - SIGNATURE_BYTES;
  sign(null, out.subarray(0, signedEnd), ca.signingPrivate).copy(out, signedEnd);
  return out;
}

/** Decodes a revocation list without verifying it. Strict; never reads out of bounds. */
export function decodeRevocationList(bytes: Uint8Array): RevocationListData {
  const b = view(bytes);
  if (b.length < 4 || !b.subarray(0, 3).equals(CRL_MAGIC))
    throw malformed('not a vmesh revocation list (magic "VMR" missing)');
  if (b[3] !== CRL_VERSION)
    throw new VmeshError(
      'VMESH_ERR_UNSUPPORTED_VERSION',
      `revocation list version ${b[3]} is not supported (this device knows version ${CRL_VERSION})`,
    );
  if (b.length < HEADER_BYTES + SIGNATURE_BYTES)
    throw malformed(`revocation list too short (${b.length} bytes)`);
  const count = b.readUInt32BE(28);
  const expected = HEADER_BYTES + 4 * count + SIGNATURE_BYTES;
  if (b.length !== expected)
    throw malformed(`revocation list is ${b.length} bytes; ${count} serials make it ${expected}`);
  const raw = Buffer.from(b);
  const issuedAt = readTime(raw, 20, 'issuedAt');
  const serials: number[] = new Array<number>(count);
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const s = raw.readUInt32BE(HEADER_BYTES + 4 * i);
    if (s <= previous) throw malformed('revocation list serials are not ascending and unique');
    serials[i] = s;
    previous = s;
  }
  const signedEnd = raw.length - SIGNATURE_BYTES;
  return {
    version: 1,
    networkId: raw.toString('hex', 4, 20),
    issuedAt,
    serials,
    signature: raw.subarray(signedEnd),
    raw,
    signed: raw.subarray(0, signedEnd),
  };
}

function invalid(reason: string, message: string): VmeshError {
  return new VmeshError('VMESH_ERR_CERT_INVALID', message, { reason });
}

/** Checks network and CA signature; returns the list with a `has(serial)` lookup. */
export function verifyRevocationList(
  list: Uint8Array | RevocationListData,
  trust: Trust,
): RevocationList {
  // A decoded list is decoded again from its raw bytes, so its fields are always the signed ones.
  let data: RevocationListData;
  try {
    data = decodeRevocationList(list instanceof Uint8Array ? list : list.raw);
  } catch (err) {
    throw invalid('malformed', `revocation list is malformed: ${(err as Error).message}`);
  }
  if (data.networkId !== trust.networkId)
    throw invalid(
      'network',
      `revocation list is for network ${data.networkId}, not ${trust.networkId} (${trust.network})`,
    );
  if (!verifyCaSignature(trust, data.signed, data.signature))
    throw invalid(
      'signature',
      `revocation list does not carry a valid signature of the ${trust.network} CA`,
    );
  const serials = data.serials;
  return {
    ...data,
    has(serial: number): boolean {
      let lo = 0;
      let hi = serials.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        const s = serials[mid] as number;
        if (s === serial) return true;
        if (s < serial) lo = mid + 1;
        else hi = mid - 1;
      }
      return false;
    },
  };
}

/**
 * The list to keep: the later issuedAt; on a tie the one with more serials,
 * then the larger bytes, so every device settles on the same list.
 * Lists of different networks are VMESH_ERR_CERT_INVALID.
 */
export function newerRevocationList(
  current: RevocationList | undefined,
  candidate: RevocationList,
): RevocationList {
  if (current === undefined) return candidate;
  if (current.networkId !== candidate.networkId)
    throw invalid(
      'network',
      `revocation lists of different networks (${current.networkId}, ${candidate.networkId})`,
    );
  if (candidate.issuedAt !== current.issuedAt)
    return candidate.issuedAt > current.issuedAt ? candidate : current;
  if (candidate.serials.length !== current.serials.length)
    return candidate.serials.length > current.serials.length ? candidate : current;
  return Buffer.compare(view(candidate.raw), view(current.raw)) > 0 ? candidate : current;
}

/**
 * Reads and verifies a revocation list file: VMESH_ERR_CONFIG if it cannot be
 * read, VMESH_ERR_CERT_INVALID if it is not a valid list of this network.
 */
export function readRevocationListFile(path: string, trust: Trust): RevocationList {
  const bytes = readPublicFile(path, 'revocation list');
  try {
    return verifyRevocationList(bytes, trust);
  } catch (err) {
    const e = err as VmeshError;
    throw new VmeshError(e.code, `revocation list ${path}: ${e.message}`, { ...e.details });
  }
}

/** Writes (replaces, atomically) a revocation list file, mode 0644. */
export function writeRevocationListFile(path: string, bytes: Uint8Array): void {
  writeFileAtomic(path, bytes, {
    mode: 0o644,
    overwrite: true,
    what: 'revocation list',
    code: 'VMESH_ERR_CONFIG',
  });
}
