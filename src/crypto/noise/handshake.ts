/**
 * The Noise HandshakeState (rev. 34 §5.3) for the patterns XX and IK
 * (§7.5), with 25519, ChaChaPoly and BLAKE2s / BLAKE2b / SHA256.
 *
 * A pure message-in/message-out object: `writeMessage` and `readMessage`
 * alternate as the pattern says (§7.1: the initiator sends first), and once
 * the last message is processed `split()` hands out the two transport
 * CipherStates. Any failure throws VmeshError VMESH_ERR_HANDSHAKE and
 * leaves the handshake dead (§5.3: an error aborts the handshake); every
 * later call throws again. Messages are limited to 65535 bytes (§3).
 *
 * Left out: PSK modes, fallback, one-way and other patterns, and
 * MixKeyAndHash; see README.md.
 */
import { inspect } from 'node:util';
import { VmeshError } from '../../errors/index.ts';
import { CipherState, NOISE_MAX_MESSAGE, NOISE_TAG_LENGTH } from './cipher.ts';
import { HASHES, isNoiseHash } from './hash.ts';
import type { NoiseHash } from './hash.ts';
import { DHLEN, dh, generateLocalKeyPair, localKeyPair } from './keys.ts';
import type { LocalKeyPair, NoiseKeyPair } from './keys.ts';
import { SymmetricState } from './symmetric.ts';

/** The handshake patterns offered. */
export type NoisePattern = 'XX' | 'IK';

type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss';

interface PatternSpec {
  /** Pre-message: the responder's static key is known to the initiator (`<- s`). */
  readonly responderStaticKnown: boolean;
  /** The message patterns; message i is sent by the initiator when i is even. */
  readonly messages: readonly (readonly Token[])[];
}

/** §7.5: XX and IK. */
const PATTERNS: Readonly<Record<NoisePattern, PatternSpec>> = {
  XX: {
    responderStaticKnown: false,
    messages: [['e'], ['e', 'ee', 's', 'es'], ['s', 'se']],
  },
  IK: {
    responderStaticKnown: true,
    messages: [
      ['e', 'es', 's', 'ss'],
      ['e', 'ee', 'se'],
    ],
  },
};

/** Options of a Handshake. */
export interface HandshakeOptions {
  /** Handshake pattern. */
  pattern: NoisePattern;
  /** True for the side that sends the first message. */
  initiator: boolean;
  /**
   * Hash function.
   * @default 'BLAKE2s'
   */
  hash?: NoiseHash;
  /**
   * Prologue both sides must agree on (§6); it is not sent.
   * @default empty
   */
  prologue?: Uint8Array;
  /** This side's static X25519 key pair. */
  staticKeyPair: NoiseKeyPair;
  /** The responder's static public key: required for the IK initiator, refused otherwise. */
  remoteStaticKey?: Uint8Array;
  /** A fixed ephemeral key pair. For test vectors only: never reuse an ephemeral key. */
  ephemeralKeyPair?: NoiseKeyPair;
}

/** The transport CipherStates after a handshake. */
export interface NoiseSplit {
  /** Encrypts what this side sends. */
  send: CipherState;
  /** Decrypts what this side receives. */
  receive: CipherState;
}

const EMPTY = new Uint8Array(0);

function handshakeError(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_HANDSHAKE', message);
}

/** A Noise handshake (one side of it). */
export class Handshake {
  readonly #pattern: PatternSpec;
  readonly #initiator: boolean;
  readonly #protocolName: string;
  readonly #s: LocalKeyPair;
  #e: LocalKeyPair | undefined;
  #rs: Buffer | undefined;
  #re: Buffer | undefined;
  readonly #symmetric: SymmetricState;
  /** Index of the next message pattern to process. */
  #next = 0;
  #failed = false;
  #transportKeys: [Buffer, Buffer] | undefined;
  #handshakeHash: Buffer | undefined;

  /** Initialize() of §5.3. Bad options throw VMESH_ERR_HANDSHAKE. */
  constructor(opts: HandshakeOptions) {
    if (typeof opts !== 'object' || opts === null) throw handshakeError('options missing');
    const { pattern, initiator, prologue = EMPTY, remoteStaticKey } = opts;
    const hashName = opts.hash ?? 'BLAKE2s';
    if (!Object.hasOwn(PATTERNS, pattern)) throw handshakeError('unknown Noise pattern');
    if (!isNoiseHash(hashName)) throw handshakeError('unknown Noise hash');
    if (typeof initiator !== 'boolean') throw handshakeError('initiator must be a boolean');
    if (!(prologue instanceof Uint8Array)) throw handshakeError('prologue must be bytes');
    this.#pattern = PATTERNS[pattern];
    this.#initiator = initiator;
    this.#protocolName = `Noise_${pattern}_25519_ChaChaPoly_${hashName}`;
    this.#s = localKeyPair(opts.staticKeyPair, 'static key pair');
    if (opts.ephemeralKeyPair !== undefined) {
      this.#e = localKeyPair(opts.ephemeralKeyPair, 'ephemeral key pair');
    }
    const takesRemoteStatic = this.#pattern.responderStaticKnown && initiator;
    if (takesRemoteStatic) {
      if (!(remoteStaticKey instanceof Uint8Array) || remoteStaticKey.length !== DHLEN) {
        throw handshakeError(`${pattern} initiator needs the responder's ${DHLEN}-byte static key`);
      }
      this.#rs = Buffer.from(remoteStaticKey);
    } else if (remoteStaticKey !== undefined) {
      throw handshakeError(`remoteStaticKey is not an input of a ${pattern} ${this.#role()}`);
    }

    this.#symmetric = new SymmetricState(this.#protocolName, HASHES[hashName]);
    this.#symmetric.mixHash(prologue);
    // Pre-messages (§7.1): initiator's keys first, then the responder's; here only `<- s`.
    if (this.#pattern.responderStaticKnown) {
      this.#symmetric.mixHash(initiator ? (this.#rs as Buffer) : this.#s.publicKey);
    }
  }

  /** The full protocol name, e.g. 'Noise_XX_25519_ChaChaPoly_BLAKE2s'. */
  get protocolName(): string {
    return this.#protocolName;
  }

  /** True once every handshake message has been written or read. */
  get complete(): boolean {
    return this.#next >= this.#pattern.messages.length && !this.#failed;
  }

  /**
   * The peer's static public key (32 bytes), once known; undefined after a
   * failure (a key read from a message that then failed is not authenticated).
   */
  get remoteStaticKey(): Uint8Array | undefined {
    return this.#rs === undefined || this.#failed ? undefined : new Uint8Array(this.#rs);
  }

  /** h (§5.2): the final handshake hash once complete (for channel binding), else the running one. */
  get handshakeHash(): Buffer {
    return Buffer.from(this.#handshakeHash ?? this.#symmetric.handshakeHash());
  }

  /** WriteMessage(payload, message_buffer) of §5.3: returns the message to send. */
  writeMessage(payload: Uint8Array = EMPTY): Buffer {
    const tokens = this.#expect(true);
    return this.#guard(() => {
      if (!(payload instanceof Uint8Array)) throw handshakeError('payload must be bytes');
      if (payload.length > NOISE_MAX_MESSAGE) throw handshakeError('handshake message too large');
      const parts: Buffer[] = [];
      const ss = this.#symmetric;
      for (const token of tokens) {
        if (token === 'e') {
          this.#e ??= generateLocalKeyPair();
          parts.push(this.#e.publicKey);
          ss.mixHash(this.#e.publicKey);
        } else if (token === 's') {
          parts.push(ss.encryptAndHash(this.#s.publicKey));
        } else {
          this.#mixDh(token);
        }
      }
      const length = parts.reduce((n, p) => n + p.length, 0) + payload.length;
      if (length + (ss.hasKey ? NOISE_TAG_LENGTH : 0) > NOISE_MAX_MESSAGE) {
        throw handshakeError('handshake message too large');
      }
      parts.push(ss.encryptAndHash(payload));
      this.#advance();
      return Buffer.concat(parts);
    });
  }

  /** ReadMessage(message, payload_buffer) of §5.3: returns the payload. */
  readMessage(message: Uint8Array): Buffer {
    const tokens = this.#expect(false);
    return this.#guard(() => {
      if (!(message instanceof Uint8Array)) throw handshakeError('message must be bytes');
      if (message.length > NOISE_MAX_MESSAGE) throw handshakeError('handshake message too large');
      const ss = this.#symmetric;
      let offset = 0;
      const take = (n: number): Uint8Array => {
        if (message.length - offset < n) throw handshakeError('handshake message too short');
        const part = message.subarray(offset, offset + n);
        offset += n;
        return part;
      };
      for (const token of tokens) {
        if (token === 'e') {
          this.#re = Buffer.from(take(DHLEN));
          ss.mixHash(this.#re);
        } else if (token === 's') {
          const sealed = take(ss.hasKey ? DHLEN + NOISE_TAG_LENGTH : DHLEN);
          this.#rs = ss.decryptAndHash(sealed);
        } else {
          this.#mixDh(token);
        }
      }
      const payload = ss.decryptAndHash(message.subarray(offset));
      this.#advance();
      return payload;
    });
  }

  /**
   * Split() of §5.3: the transport CipherStates (the initiator sends with the
   * first of Split's pair). Only once, and only after the handshake completed.
   */
  split(): NoiseSplit {
    if (this.#failed) throw handshakeError('handshake failed');
    if (this.#transportKeys === undefined) {
      throw handshakeError(
        this.complete
          ? 'transport keys were already split off or destroyed'
          : 'handshake is not complete',
      );
    }
    const [k1, k2] = this.#transportKeys;
    const c1 = new CipherState(k1);
    const c2 = new CipherState(k2);
    k1.fill(0);
    k2.fill(0);
    this.#transportKeys = undefined;
    return this.#initiator ? { send: c1, receive: c2 } : { send: c2, receive: c1 };
  }

  /** Wipes every secret this handshake still holds; later calls throw VMESH_ERR_HANDSHAKE. */
  destroy(): void {
    if (!this.complete) this.#failed = true;
    this.#symmetric.destroy();
    this.#e = undefined;
    this.#transportKeys?.forEach((k) => k.fill(0));
    this.#transportKeys = undefined;
  }

  toJSON(): { protocolName: string; initiator: boolean; complete: boolean; failed: boolean } {
    return {
      protocolName: this.#protocolName,
      initiator: this.#initiator,
      complete: this.complete,
      failed: this.#failed,
    };
  }

  [inspect.custom](): string {
    const state = this.#failed ? 'failed' : this.complete ? 'complete' : `message ${this.#next}`;
    return `Handshake { ${this.#protocolName}, ${this.#role()}, ${state} }`;
  }

  #role(): string {
    return this.#initiator ? 'initiator' : 'responder';
  }

  /** The tokens of the next message if it is this side's turn to write (or read); else throws. */
  #expect(writing: boolean): readonly Token[] {
    if (this.#failed) throw handshakeError('handshake failed');
    const tokens = this.#pattern.messages[this.#next];
    if (tokens === undefined) throw handshakeError('handshake is already complete');
    const initiatorSends = this.#next % 2 === 0;
    if ((initiatorSends === this.#initiator) !== writing) {
      this.#fail();
      throw handshakeError(
        `${this.#role()} must ${writing ? 'read' : 'write'} handshake message ${this.#next + 1} first`,
      );
    }
    return tokens;
  }

  /** Runs a message step; anything thrown kills the handshake and surfaces as VMESH_ERR_HANDSHAKE. */
  #guard<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      this.#fail();
      if (err instanceof VmeshError && err.code === 'VMESH_ERR_HANDSHAKE') throw err;
      if (err instanceof VmeshError && err.code === 'VMESH_ERR_AUTH_FAILED') {
        throw handshakeError('handshake message failed authentication');
      }
      throw handshakeError('handshake message could not be processed');
    }
  }

  /** The DH tokens of §5.3, from this side's point of view. */
  #mixDh(token: Exclude<Token, 'e' | 's'>): void {
    const initiator = this.#initiator;
    let local: LocalKeyPair | undefined;
    let remote: Buffer | undefined;
    if (token === 'ee') {
      local = this.#e;
      remote = this.#re;
    } else if (token === 'es') {
      local = initiator ? this.#e : this.#s;
      remote = initiator ? this.#rs : this.#re;
    } else if (token === 'se') {
      local = initiator ? this.#s : this.#e;
      remote = initiator ? this.#re : this.#rs;
    } else {
      local = this.#s;
      remote = this.#rs;
    }
    if (local === undefined || remote === undefined) {
      throw handshakeError(`key for ${token} missing`);
    }
    const shared = dh(local, remote);
    this.#symmetric.mixKey(shared);
    shared.fill(0);
  }

  #advance(): void {
    this.#next += 1;
    if (this.#next < this.#pattern.messages.length) return;
    this.#handshakeHash = this.#symmetric.handshakeHash();
    this.#transportKeys = this.#symmetric.split();
    this.#e = undefined;
    this.#re = undefined;
  }

  #fail(): void {
    this.#failed = true;
    this.#symmetric.destroy();
    this.#e = undefined;
  }
}
