/**
 * The Noise SymmetricState (rev. 34 §5.2): the chaining key ck, the
 * handshake hash h and a CipherState. Only what XX and IK need: no
 * MixKeyAndHash (that is for PSK modes, left out). Internal to
 * src/crypto/noise/; the Handshake drives it.
 */
import { inspect } from 'node:util';
import { CipherState } from './cipher.ts';
import { hash, hkdf2 } from './hash.ts';
import type { HashSpec } from './hash.ts';

const CIPHER_KEY_LENGTH = 32;

export class SymmetricState {
  readonly #spec: HashSpec;
  #ck: Buffer;
  #h: Buffer;
  #cipher = new CipherState();

  /** InitializeSymmetric(protocol_name) of §5.2. */
  constructor(protocolName: string, spec: HashSpec) {
    this.#spec = spec;
    const name = Buffer.from(protocolName, 'ascii');
    if (name.length <= spec.hashLen) {
      this.#h = Buffer.alloc(spec.hashLen);
      name.copy(this.#h);
    } else {
      this.#h = hash(spec, name);
    }
    this.#ck = Buffer.from(this.#h);
  }

  get hasKey(): boolean {
    return this.#cipher.hasKey;
  }

  /** MixKey(input_key_material) of §5.2; temp_k is truncated to 32 bytes for 64-byte hashes. */
  mixKey(ikm: Uint8Array): void {
    const [ck, tempK] = hkdf2(this.#spec, this.#ck, ikm);
    this.#ck.fill(0);
    this.#ck = ck;
    this.#cipher.destroy();
    this.#cipher = new CipherState(tempK.subarray(0, CIPHER_KEY_LENGTH));
    tempK.fill(0);
  }

  /** MixHash(data) of §5.2: h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    this.#h = hash(this.#spec, this.#h, data);
  }

  /** EncryptAndHash(plaintext) of §5.2. */
  encryptAndHash(plaintext: Uint8Array): Buffer {
    const ciphertext = this.#cipher.encrypt(plaintext, this.#h);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  /** DecryptAndHash(ciphertext) of §5.2; throws VMESH_ERR_AUTH_FAILED on a bad tag. */
  decryptAndHash(ciphertext: Uint8Array): Buffer {
    const plaintext = this.#cipher.decrypt(ciphertext, this.#h);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** GetHandshakeHash() of §5.2 (a copy). */
  handshakeHash(): Buffer {
    return Buffer.from(this.#h);
  }

  /**
   * Split() of §5.2: the two transport keys (initiator-to-responder first),
   * each 32 bytes. Wipes ck and the handshake cipher: the state is done.
   */
  split(): [Buffer, Buffer] {
    const [k1, k2] = hkdf2(this.#spec, this.#ck, Buffer.alloc(0));
    const keys: [Buffer, Buffer] = [
      Buffer.from(k1.subarray(0, CIPHER_KEY_LENGTH)),
      Buffer.from(k2.subarray(0, CIPHER_KEY_LENGTH)),
    ];
    k1.fill(0);
    k2.fill(0);
    this.destroy();
    return keys;
  }

  /** Wipes the chaining key and the handshake cipher key (h is kept: it is not secret). */
  destroy(): void {
    this.#ck.fill(0);
    this.#cipher.destroy();
  }

  toJSON(): { hasKey: boolean } {
    return { hasKey: this.hasKey };
  }

  [inspect.custom](): string {
    return `SymmetricState { hasKey: ${this.hasKey} }`;
  }
}
