/**
 * The Noise CipherState (rev. 34 §5.1) over ChaChaPoly (§12.3), on
 * node:crypto chacha20-poly1305.
 *
 * State: the cipher key k (32 bytes, or empty) and the 64-bit nonce n, here a
 * JS number (a counter cannot reach 2^53 in practice; it is refused there,
 * well below the reserved 2^64-1). The 12-byte AEAD nonce is 4 zero bytes
 * followed by n as 8 bytes little-endian (§12.3); it lives in one buffer per
 * CipherState and is rewritten for each call. REKEY is the default of §4.2:
 * the first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, 32 zero bytes).
 *
 * Left as in the spec: with an empty key, encrypt and decrypt return (a copy
 * of) their input unchanged, and a failed decrypt does not advance n. Added
 * for vmesh: encryptWithNonce/decryptWithNonce for callers that carry their
 * own counter (explicit nonces, §11.4), and destroy(), which wipes the key.
 * The key never appears in toJSON, inspect or error messages.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { inspect } from 'node:util';
import { VmeshError } from '../../errors/index.ts';

/** Largest Noise message, handshake or transport, in bytes (§3). */
export const NOISE_MAX_MESSAGE = 65535;
/** Length of the ChaChaPoly authentication tag. */
export const NOISE_TAG_LENGTH = 16;
/** Largest plaintext that still fits in a Noise message once encrypted. */
export const NOISE_MAX_PLAINTEXT = NOISE_MAX_MESSAGE - NOISE_TAG_LENGTH;

const KEY_LENGTH = 32;
const ALGORITHM = 'chacha20-poly1305';
const AEAD_OPTIONS = { authTagLength: NOISE_TAG_LENGTH } as const;
const EMPTY = Buffer.alloc(0);
const ZEROS32 = Buffer.alloc(32);
/** 4 zero bytes || little-endian 2^64-1: the nonce REKEY uses. */
const REKEY_IV = Buffer.from('00000000ffffffffffffffff', 'hex');
const TWO_POW_32 = 2 ** 32;

function authFailed(): VmeshError {
  return new VmeshError('VMESH_ERR_AUTH_FAILED', 'Noise message failed authentication');
}

function checkNonce(nonce: number): void {
  if (!Number.isSafeInteger(nonce) || nonce < 0) {
    throw new VmeshError('VMESH_ERR_MALFORMED', 'nonce must be an integer in 0..2^53-1');
  }
}

/** A Noise CipherState: a ChaChaPoly key and a message counter. */
export class CipherState {
  #key: Buffer | undefined;
  #n = 0;
  #destroyed = false;
  /** The 12-byte AEAD nonce, rewritten in place for every call. */
  readonly #iv = Buffer.alloc(12);

  /** InitializeKey(key) of §5.1: a 32-byte key, or none (then encrypt/decrypt pass data through). */
  constructor(key?: Uint8Array) {
    if (key !== undefined) {
      if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH) {
        throw new VmeshError('VMESH_ERR_MALFORMED', `cipher key must be ${KEY_LENGTH} bytes`);
      }
      // Its own ArrayBuffer (not the shared pool), so wiping it wipes every copy we made.
      this.#key = Buffer.allocUnsafeSlow(KEY_LENGTH);
      this.#key.set(key);
    }
  }

  /** HasKey() of §5.1. */
  get hasKey(): boolean {
    return this.#key !== undefined;
  }

  /** The counter the next encrypt/decrypt uses (the `*WithNonce` methods leave it alone). */
  get nonce(): number {
    return this.#n;
  }

  /**
   * EncryptWithAd(ad, plaintext) of §5.1 with the internal counter: returns
   * ciphertext || 16-byte tag (a new Buffer) and advances the counter.
   * Throws VMESH_ERR_FRAME_TOO_LARGE over 65519 bytes of plaintext.
   */
  encrypt(plaintext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
    const n = this.#n;
    if (n > Number.MAX_SAFE_INTEGER) {
      throw new VmeshError('VMESH_ERR_INTERNAL', 'Noise nonce exhausted; start a new session');
    }
    const out = this.#seal(n, plaintext, ad);
    this.#n = n + 1;
    return out;
  }

  /**
   * DecryptWithAd(ad, ciphertext) of §5.1 with the internal counter. On any
   * failure throws VMESH_ERR_AUTH_FAILED and leaves the counter where it was.
   */
  decrypt(ciphertext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
    const n = this.#n;
    if (n > Number.MAX_SAFE_INTEGER) throw authFailed();
    const out = this.#open(n, ciphertext, ad);
    this.#n = n + 1;
    return out;
  }

  /**
   * ENCRYPT(k, nonce, ad, plaintext) with a caller-held counter (0..2^53-1).
   * The caller must never use a nonce twice with one key, and must not mix
   * this with `encrypt` on the same CipherState.
   */
  encryptWithNonce(nonce: number, plaintext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
    checkNonce(nonce);
    return this.#seal(nonce, plaintext, ad);
  }

  /** DECRYPT(k, nonce, ad, ciphertext) with a caller-held counter; failures throw VMESH_ERR_AUTH_FAILED. */
  decryptWithNonce(nonce: number, ciphertext: Uint8Array, ad: Uint8Array = EMPTY): Buffer {
    checkNonce(nonce);
    return this.#open(nonce, ciphertext, ad);
  }

  /** Rekey() of §5.1 with the default REKEY of §4.2; the counter is not reset. */
  rekey(): void {
    const key = this.#usableKey();
    if (key === undefined) {
      throw new VmeshError('VMESH_ERR_INTERNAL', 'cannot rekey a CipherState without a key');
    }
    const cipher = createCipheriv(ALGORITHM, key, REKEY_IV, AEAD_OPTIONS);
    const next = Buffer.concat([cipher.update(ZEROS32), cipher.final()]);
    key.set(next.subarray(0, KEY_LENGTH));
    next.fill(0);
  }

  /** Wipes the key; every later call throws VMESH_ERR_INTERNAL. */
  destroy(): void {
    this.#key?.fill(0);
    this.#key = undefined;
    this.#destroyed = true;
  }

  toJSON(): { hasKey: boolean; nonce: number } {
    return { hasKey: this.hasKey, nonce: this.#n };
  }

  [inspect.custom](): string {
    return `CipherState { hasKey: ${this.hasKey}, nonce: ${this.#n} }`;
  }

  #usableKey(): Buffer | undefined {
    if (this.#destroyed) throw new VmeshError('VMESH_ERR_INTERNAL', 'CipherState was destroyed');
    return this.#key;
  }

  #setIv(n: number): Buffer {
    const iv = this.#iv;
    iv.writeUInt32LE(n >>> 0, 4);
    iv.writeUInt32LE(Math.floor(n / TWO_POW_32), 8);
    return iv;
  }

  #seal(n: number, plaintext: Uint8Array, ad: Uint8Array): Buffer {
    const key = this.#usableKey();
    if (key === undefined) {
      if (plaintext.length > NOISE_MAX_MESSAGE) throw tooLarge();
      return Buffer.from(plaintext);
    }
    if (plaintext.length > NOISE_MAX_PLAINTEXT) throw tooLarge();
    const cipher = createCipheriv(ALGORITHM, key, this.#setIv(n), AEAD_OPTIONS);
    if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    const out = Buffer.allocUnsafe(plaintext.length + NOISE_TAG_LENGTH);
    body.copy(out, 0);
    cipher.getAuthTag().copy(out, plaintext.length);
    return out;
  }

  #open(n: number, ciphertext: Uint8Array, ad: Uint8Array): Buffer {
    const key = this.#usableKey();
    if (ciphertext.length > NOISE_MAX_MESSAGE) throw authFailed();
    if (key === undefined) return Buffer.from(ciphertext);
    const length = ciphertext.length - NOISE_TAG_LENGTH;
    if (length < 0) throw authFailed();
    const decipher = createDecipheriv(ALGORITHM, key, this.#setIv(n), AEAD_OPTIONS);
    decipher.setAuthTag(ciphertext.subarray(length));
    if (ad.length > 0) decipher.setAAD(ad, { plaintextLength: length });
    const plaintext = decipher.update(ciphertext.subarray(0, length));
    try {
      decipher.final();
    } catch {
      plaintext.fill(0);
      throw authFailed();
    }
    return plaintext;
  }
}

function tooLarge(): VmeshError {
  return new VmeshError(
    'VMESH_ERR_FRAME_TOO_LARGE',
    `Noise messages are limited to ${NOISE_MAX_MESSAGE} bytes`,
  );
}
