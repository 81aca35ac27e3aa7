/**
 * Noise hash functions (rev. 34 §4.3 and §12.5–§12.8): HASH, HMAC-HASH and
 * HKDF for BLAKE2s, BLAKE2b and SHA256, on node:crypto.
 *
 * HMAC is node's `createHmac`, which implements RFC 2104 with each hash's
 * own block length (BLAKE2s 64, BLAKE2b 128, SHA256 64 bytes); the unit tests
 * check it against a by-hand RFC 2104 HMAC built on `createHash`, and the
 * cacophony vectors check the whole chain.
 */
import { createHash, createHmac } from 'node:crypto';

/** The hash functions this implementation offers (names as in Noise protocol names). */
export type NoiseHash = 'BLAKE2s' | 'BLAKE2b' | 'SHA256';

/** A hash function's constants and node:crypto algorithm name. */
export interface HashSpec {
  readonly name: NoiseHash;
  /** Algorithm name for node:crypto createHash / createHmac. */
  readonly algorithm: string;
  /** HASHLEN: output length in bytes. */
  readonly hashLen: number;
  /** BLOCKLEN: internal block length in bytes (what HMAC pads the key to). */
  readonly blockLen: number;
}

export const HASHES: Readonly<Record<NoiseHash, HashSpec>> = {
  BLAKE2s: { name: 'BLAKE2s', algorithm: 'blake2s256', hashLen: 32, blockLen: 64 },
  BLAKE2b: { name: 'BLAKE2b', algorithm: 'blake2b512', hashLen: 64, blockLen: 128 },
  SHA256: { name: 'SHA256', algorithm: 'sha256', hashLen: 32, blockLen: 64 },
};

/** True if `name` is one of the supported hash names. */
export function isNoiseHash(name: unknown): name is NoiseHash {
  return typeof name === 'string' && Object.hasOwn(HASHES, name);
}

/** HASH(a || b): the concatenation is fed in parts, never copied. */
export function hash(spec: HashSpec, a: Uint8Array, b?: Uint8Array): Buffer {
  const h = createHash(spec.algorithm).update(a);
  if (b !== undefined) h.update(b);
  return h.digest();
}

const ONE = Buffer.from([1]);
const TWO = Buffer.from([2]);

/**
 * HKDF(chaining_key, input_key_material, 2) of §4.3: returns
 * [output1, output2], each HASHLEN bytes. The temporary key is wiped.
 */
export function hkdf2(spec: HashSpec, chainingKey: Uint8Array, ikm: Uint8Array): [Buffer, Buffer] {
  const tempKey = createHmac(spec.algorithm, chainingKey).update(ikm).digest();
  const output1 = createHmac(spec.algorithm, tempKey).update(ONE).digest();
  const output2 = createHmac(spec.algorithm, tempKey).update(output1).update(TWO).digest();
  tempKey.fill(0);
  return [output1, output2];
}
