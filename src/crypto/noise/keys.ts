/**
 * Noise DH functions for Curve25519 (Noise rev. 34 §4.1 and §12.1) on
 * node:crypto X25519.
 *
 * Public keys travel as 32 raw bytes (DHLEN = 32). Private keys are accepted
 * as an X25519 `KeyObject` or as 32 raw bytes, which are wrapped into a
 * KeyObject through a fixed PKCS#8 DER prefix (raw public keys likewise
 * through a fixed SPKI prefix). DH outputs that OpenSSL refuses (the all-zero
 * result of a low-order public key, which §12.1 allows an implementation to
 * reject) raise VMESH_ERR_HANDSHAKE. Private key bytes never appear in error
 * messages.
 */
import {
  KeyObject,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
} from 'node:crypto';
import { VmeshError } from '../../errors/index.ts';

/** DHLEN for 25519: public keys and DH outputs are 32 bytes. */
export const DHLEN = 32;

/** An X25519 key pair as the Noise API takes it. */
export interface NoiseKeyPair {
  /** Raw X25519 public key, 32 bytes. */
  publicKey: Uint8Array;
  /** X25519 private key: a node:crypto `KeyObject`, or the raw 32-byte scalar. */
  privateKey: Uint8Array | KeyObject;
}

/** A validated key pair: a private KeyObject and its raw public key. */
export interface LocalKeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: Buffer;
}

const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

function fail(message: string): never {
  throw new VmeshError('VMESH_ERR_HANDSHAKE', message);
}

/** Wraps a private key given as raw bytes or KeyObject into an X25519 private KeyObject. */
export function privateKeyObject(key: Uint8Array | KeyObject, what: string): KeyObject {
  if (key instanceof KeyObject) {
    if (key.type !== 'private' || key.asymmetricKeyType !== 'x25519') {
      fail(`${what}: private key must be an X25519 private KeyObject`);
    }
    return key;
  }
  if (!(key instanceof Uint8Array) || key.length !== DHLEN) {
    fail(`${what}: private key must be ${DHLEN} raw bytes or a KeyObject`);
  }
  const der = Buffer.alloc(PKCS8_X25519_PREFIX.length + DHLEN);
  PKCS8_X25519_PREFIX.copy(der, 0);
  der.set(key, PKCS8_X25519_PREFIX.length);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** Wraps a raw 32-byte X25519 public key into a KeyObject. */
export function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== DHLEN) fail(`public key must be ${DHLEN} bytes`);
  const der = Buffer.alloc(SPKI_X25519_PREFIX.length + DHLEN);
  SPKI_X25519_PREFIX.copy(der, 0);
  der.set(raw, SPKI_X25519_PREFIX.length);
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

/** The raw 32-byte public key of an X25519 private (or public) KeyObject. */
export function rawPublicKey(key: KeyObject): Buffer {
  const publicKey = key.type === 'public' ? key : createPublicKey(key);
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return Buffer.from(spki.subarray(SPKI_X25519_PREFIX.length));
}

/**
 * Checks a caller's key pair: the private key is X25519 and the public key is
 * the one that belongs to it (a mismatch would only show up as a failed
 * handshake at the peer, so it is refused here).
 */
export function localKeyPair(pair: NoiseKeyPair, what: string): LocalKeyPair {
  if (typeof pair !== 'object' || pair === null) fail(`${what}: key pair missing`);
  const privateKey = privateKeyObject(pair.privateKey, what);
  const publicKey = rawPublicKey(privateKey);
  if (!(pair.publicKey instanceof Uint8Array) || !publicKey.equals(pair.publicKey)) {
    fail(`${what}: public key does not belong to the private key`);
  }
  return { privateKey, publicKey };
}

/** GENERATE_KEYPAIR() of §4.1: a fresh X25519 key pair (private key as a KeyObject). */
export function generateNoiseKeyPair(): NoiseKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, publicKey: rawPublicKey(publicKey) };
}

/** A fresh key pair in the validated internal form. */
export function generateLocalKeyPair(): LocalKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, publicKey: rawPublicKey(publicKey) };
}

/** DH(key_pair, public_key) of §4.1 for 25519: 32 bytes, or VMESH_ERR_HANDSHAKE. */
export function dh(local: LocalKeyPair, remotePublic: Uint8Array): Buffer {
  try {
    return diffieHellman({
      privateKey: local.privateKey,
      publicKey: publicKeyObject(remotePublic),
    });
  } catch (err) {
    if (err instanceof VmeshError) throw err;
    return fail('X25519 rejected the remote public key');
  }
}
