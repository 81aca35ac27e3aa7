// Noise (rev. 34) for vmesh: cacophony vectors, interop with the independent
// noise-handshake package, tampering, rekey, limits and property tests.
import assert from 'node:assert/strict';
import {
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  randomBytes,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  CipherState,
  Handshake,
  NOISE_MAX_MESSAGE,
  NOISE_MAX_PLAINTEXT,
  generateNoiseKeyPair,
} from '../../../src/crypto/noise/index.ts';
import type {
  HandshakeOptions,
  NoiseHash,
  NoiseKeyPair,
  NoisePattern,
  NoiseSplit,
} from '../../../src/crypto/noise/index.ts';
import { VmeshError } from '../../../src/errors/index.ts';
import type { ErrorCode } from '../../../src/errors/index.ts';

const SEED = 0x4e01_5e;
const HASH_NAMES: NoiseHash[] = ['BLAKE2s', 'BLAKE2b', 'SHA256'];
const PATTERN_NAMES: NoisePattern[] = ['XX', 'IK'];
const MESSAGE_COUNT: Record<NoisePattern, number> = { XX: 3, IK: 2 };

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

function isVmeshError(code: ErrorCode): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof VmeshError, `expected a VmeshError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}
const handshakeFailure = isVmeshError('VMESH_ERR_HANDSHAKE');
const authFailure = isVmeshError('VMESH_ERR_AUTH_FAILED');

// ---- key helpers (independent of the implementation's own conversions) ----

const PKCS8_X25519 = hex('302e020100300506032b656e04220420');

function privateFromRaw(raw: Uint8Array): KeyObject {
  return createPrivateKey({
    key: Buffer.concat([PKCS8_X25519, raw]),
    format: 'der',
    type: 'pkcs8',
  });
}

function rawPrivate(key: KeyObject): Buffer {
  const d = key.export({ format: 'jwk' }).d;
  assert.equal(typeof d, 'string');
  return Buffer.from(d as string, 'base64url');
}

function rawPublicOf(key: KeyObject): Buffer {
  const x = createPublicKey(key).export({ format: 'jwk' }).x;
  assert.equal(typeof x, 'string');
  return Buffer.from(x as string, 'base64url');
}

/** A key pair from a raw private key, the private part as raw bytes or as a KeyObject. */
function keyPairFromRaw(raw: Uint8Array, asKeyObject: boolean): NoiseKeyPair {
  const key = privateFromRaw(raw);
  return { privateKey: asKeyObject ? key : new Uint8Array(raw), publicKey: rawPublicOf(key) };
}

// ---- running handshakes ----

function bothWays(pattern: NoisePattern, hash: NoiseHash = 'BLAKE2s', prologue?: Uint8Array) {
  const initiatorKeys = generateNoiseKeyPair();
  const responderKeys = generateNoiseKeyPair();
  const common = { pattern, hash, ...(prologue === undefined ? {} : { prologue }) };
  const init = new Handshake({
    ...common,
    initiator: true,
    staticKeyPair: initiatorKeys,
    ...(pattern === 'IK' ? { remoteStaticKey: responderKeys.publicKey } : {}),
  });
  const resp = new Handshake({ ...common, initiator: false, staticKeyPair: responderKeys });
  return { init, resp, initiatorKeys, responderKeys };
}

/** Runs every handshake message, initiator first; returns the messages sent. */
function complete(init: Handshake, resp: Handshake, payloads: Uint8Array[] = []): Buffer[] {
  const sent: Buffer[] = [];
  for (let i = 0; !(init.complete && resp.complete); i++) {
    const [writer, reader] = i % 2 === 0 ? [init, resp] : [resp, init];
    const payload = payloads[i] ?? new Uint8Array(0);
    const message = writer.writeMessage(payload);
    assert.deepEqual(new Uint8Array(reader.readMessage(message)), new Uint8Array(payload));
    sent.push(message);
  }
  return sent;
}

function exchange(a: NoiseSplit, b: NoiseSplit, payload: Uint8Array): void {
  const expected = new Uint8Array(payload);
  assert.deepEqual(new Uint8Array(b.receive.decrypt(a.send.encrypt(payload))), expected);
  assert.deepEqual(new Uint8Array(a.receive.decrypt(b.send.encrypt(payload))), expected);
}

// ---- 1. cacophony vectors ----

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_static: string;
  init_ephemeral: string;
  init_remote_static?: string;
  resp_prologue: string;
  resp_static: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const vectors = (
  JSON.parse(
    readFileSync(new URL('../../vectors/noise/cacophony-xx-ik.json', import.meta.url), 'utf8'),
  ) as { vectors: Vector[] }
).vectors;

const VECTOR_NAME = /^Noise_(XX|IK)_25519_ChaChaPoly_(BLAKE2s|BLAKE2b|SHA256)$/;

test('cacophony vectors: every non-PSK XX and IK protocol is present', () => {
  const covered = vectors.map((v) => v.protocol_name).filter((n) => VECTOR_NAME.test(n));
  assert.deepEqual(
    covered.sort(),
    PATTERN_NAMES.flatMap((p) => HASH_NAMES.map((h) => `Noise_${p}_25519_ChaChaPoly_${h}`)).sort(),
  );
});

for (const vector of vectors) {
  const match = VECTOR_NAME.exec(vector.protocol_name);
  if (match === null) {
    // Only PSK vectors (XXpsk3, IKpsk2) fall here: PSK modes are not implemented.
    assert.match(vector.protocol_name, /psk/);
    test(
      `cacophony vector ${vector.protocol_name}`,
      {
        skip: 'PSK modes are out of scope for this implementation',
      },
      () => {},
    );
    continue;
  }
  test(`cacophony vector ${vector.protocol_name}`, () => {
    const pattern = match[1] as NoisePattern;
    const hash = match[2] as NoiseHash;
    // The initiator's keys go in as raw bytes, the responder's as KeyObjects: both forms tested.
    const init = new Handshake({
      pattern,
      hash,
      initiator: true,
      prologue: hex(vector.init_prologue),
      staticKeyPair: keyPairFromRaw(hex(vector.init_static), false),
      ephemeralKeyPair: keyPairFromRaw(hex(vector.init_ephemeral), false),
      ...(vector.init_remote_static === undefined
        ? {}
        : { remoteStaticKey: hex(vector.init_remote_static) }),
    });
    const resp = new Handshake({
      pattern,
      hash,
      initiator: false,
      prologue: hex(vector.resp_prologue),
      staticKeyPair: keyPairFromRaw(hex(vector.resp_static), true),
      ephemeralKeyPair: keyPairFromRaw(hex(vector.resp_ephemeral), true),
    });
    assert.equal(init.protocolName, vector.protocol_name);
    assert.equal(resp.protocolName, vector.protocol_name);

    // Message i is sent by the initiator when i is even, handshake and transport alike.
    let i = 0;
    for (; !(init.complete && resp.complete); i++) {
      const m = vector.messages[i];
      assert.ok(m !== undefined, 'vector ran out of messages during the handshake');
      const [writer, reader] = i % 2 === 0 ? [init, resp] : [resp, init];
      const message = writer.writeMessage(hex(m.payload));
      assert.equal(message.toString('hex'), m.ciphertext, `handshake message ${i}`);
      assert.equal(reader.readMessage(message).toString('hex'), m.payload);
    }
    assert.equal(i, MESSAGE_COUNT[pattern]);
    assert.equal(init.handshakeHash.toString('hex'), vector.handshake_hash);
    assert.equal(resp.handshakeHash.toString('hex'), vector.handshake_hash);
    assert.equal(
      Buffer.from(init.remoteStaticKey ?? []).toString('hex'),
      rawPublicHex(vector.resp_static),
    );
    assert.equal(
      Buffer.from(resp.remoteStaticKey ?? []).toString('hex'),
      rawPublicHex(vector.init_static),
    );

    const a = init.split();
    const b = resp.split();
    for (; i < vector.messages.length; i++) {
      const m = vector.messages[i] as { payload: string; ciphertext: string };
      const [send, receive] = i % 2 === 0 ? [a.send, b.receive] : [b.send, a.receive];
      const ciphertext = send.encrypt(hex(m.payload));
      assert.equal(ciphertext.toString('hex'), m.ciphertext, `transport message ${i}`);
      assert.equal(receive.decrypt(ciphertext).toString('hex'), m.payload);
    }
    assert.ok(i > MESSAGE_COUNT[pattern], 'vector has transport messages');
  });
}

function rawPublicHex(rawPrivateHex: string): string {
  return rawPublicOf(privateFromRaw(hex(rawPrivateHex))).toString('hex');
}

test("HMAC: node's createHmac for blake2s256, blake2b512 and sha256 is RFC 2104 with the right block length", () => {
  const blockLengths = { blake2s256: 64, blake2b512: 128, sha256: 64 } as const;
  for (const [algorithm, blockLen] of Object.entries(blockLengths)) {
    for (const keyLength of [0, 1, 32, 63, 64, 65, 127, 128, 129, 200]) {
      const key = randomBytes(keyLength);
      const data = randomBytes(77);
      const k0 = Buffer.alloc(blockLen);
      (key.length > blockLen ? createHash(algorithm).update(key).digest() : key).copy(k0);
      const ipad = Buffer.from(k0.map((b) => b ^ 0x36));
      const opad = Buffer.from(k0.map((b) => b ^ 0x5c));
      const inner = createHash(algorithm).update(ipad).update(data).digest();
      const byHand = createHash(algorithm).update(opad).update(inner).digest();
      assert.deepEqual(
        createHmac(algorithm, key).update(data).digest(),
        byHand,
        `${algorithm} ${keyLength}`,
      );
    }
  }
});

// ---- 2. interop with noise-handshake (25519 / ChaChaPoly / BLAKE2b) ----

interface TheirKeyPair {
  publicKey: Buffer;
  secretKey: Buffer;
}
interface TheirNoise {
  s: TheirKeyPair;
  complete: boolean;
  tx: Buffer | null;
  rx: Buffer | null;
  rs: Buffer | null;
  hash: Buffer | null;
  initialise(prologue: Uint8Array, remoteStatic?: Uint8Array): void;
  send(payload?: Uint8Array): Buffer;
  recv(message: Uint8Array): Buffer;
}
interface TheirCipher {
  encrypt(plaintext: Uint8Array): Buffer;
  decrypt(ciphertext: Uint8Array): Buffer;
}
const require = createRequire(import.meta.url);
const TheirNoise = require('noise-handshake') as new (
  pattern: string,
  initiator: boolean,
  staticKeyPair?: TheirKeyPair,
) => TheirNoise;
const TheirCipher = require('noise-handshake/cipher.js') as new (key: Uint8Array) => TheirCipher;
const theirDh = require('noise-handshake/dh.js') as { generateKeyPair(): TheirKeyPair };

type Side = { ours: true; hs: Handshake } | { ours: false; hs: TheirNoise };

function write(side: Side, payload: Uint8Array): Buffer {
  return side.ours ? side.hs.writeMessage(payload) : side.hs.send(Buffer.from(payload));
}
function read(side: Side, message: Buffer): Buffer {
  return side.ours ? side.hs.readMessage(message) : side.hs.recv(message);
}
function done(side: Side): boolean {
  return side.hs.complete;
}

for (const pattern of PATTERN_NAMES) {
  for (const oursInitiates of [true, false]) {
    test(`interop with noise-handshake: ${pattern}, ours as ${oursInitiates ? 'initiator' : 'responder'}`, () => {
      const prologue = Buffer.from('vmesh interop prologue');
      // Our keys as a KeyObject handed to them as raw bytes; their keys handed to us as raw bytes.
      const oursKeys = generateNoiseKeyPair();
      const oursAsTheirs: TheirKeyPair = {
        publicKey: Buffer.from(oursKeys.publicKey),
        secretKey: rawPrivate(oursKeys.privateKey as KeyObject),
      };
      const theirsKeys = theirDh.generateKeyPair();
      const theirsAsOurs: NoiseKeyPair = {
        publicKey: new Uint8Array(theirsKeys.publicKey),
        privateKey: new Uint8Array(theirsKeys.secretKey),
      };

      let initiator: Side;
      let responder: Side;
      if (oursInitiates) {
        const theirs = new TheirNoise(pattern, false, theirsKeys);
        theirs.initialise(prologue);
        responder = { ours: false, hs: theirs };
        initiator = {
          ours: true,
          hs: new Handshake({
            pattern,
            initiator: true,
            hash: 'BLAKE2b',
            prologue,
            staticKeyPair: oursKeys,
            ...(pattern === 'IK' ? { remoteStaticKey: theirsKeys.publicKey } : {}),
          }),
        };
      } else {
        const theirs = new TheirNoise(pattern, true, oursAsTheirs);
        theirs.initialise(
          prologue,
          pattern === 'IK' ? Buffer.from(theirsAsOurs.publicKey) : undefined,
        );
        initiator = { ours: false, hs: theirs };
        responder = {
          ours: true,
          hs: new Handshake({
            pattern,
            initiator: false,
            hash: 'BLAKE2b',
            prologue,
            staticKeyPair: theirsAsOurs,
          }),
        };
      }

      for (let i = 0; !(done(initiator) && done(responder)); i++) {
        assert.ok(i < MESSAGE_COUNT[pattern]);
        const [writer, reader] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
        const payload = Buffer.from(`handshake payload ${i}`);
        assert.deepEqual(read(reader, write(writer, payload)), payload);
      }

      const ours = (initiator.ours ? initiator.hs : responder.hs) as Handshake;
      const theirs = (initiator.ours ? responder.hs : initiator.hs) as TheirNoise;
      assert.deepEqual(ours.handshakeHash, theirs.hash);
      // Each side learnt the other's static key.
      const oursStatic = oursInitiates ? oursKeys.publicKey : theirsAsOurs.publicKey;
      const theirsStatic = oursInitiates ? theirsKeys.publicKey : oursAsTheirs.publicKey;
      assert.deepEqual(Buffer.from(ours.remoteStaticKey ?? []), Buffer.from(theirsStatic));
      assert.deepEqual(Buffer.from(theirs.rs ?? []), Buffer.from(oursStatic));

      // noise-handshake's tx is the key it sends with, rx the one it receives with.
      const { send, receive } = ours.split();
      const theirSend = new TheirCipher(theirs.tx as Buffer);
      const theirReceive = new TheirCipher(theirs.rx as Buffer);
      for (let n = 0; n < 5; n++) {
        const toThem = randomBytes(1 + n * 300);
        assert.deepEqual(theirReceive.decrypt(send.encrypt(toThem)), toThem);
        const toUs = randomBytes(1 + n * 200);
        assert.deepEqual(receive.decrypt(theirSend.encrypt(toUs)), toUs);
      }
    });
  }
}

// ---- 3. tampering, wrong keys, replays, wrong order ----

for (const pattern of PATTERN_NAMES) {
  test(`tampering: a flipped bit anywhere in a ${pattern} handshake message fails the handshake`, () => {
    const count = MESSAGE_COUNT[pattern];
    const payload = (i: number): Buffer => Buffer.from(`p${i}`);
    const sample = bothWays(pattern);
    const lengths = complete(sample.init, sample.resp, [0, 1, 2].map(payload)).map((m) => m.length);
    for (let m = 0; m < count; m++) {
      // XX message 1 carries no authentication: tampering shows at the next message.
      const detectedAt = pattern === 'XX' && m === 0 ? 1 : m;
      for (let pos = 0; pos < (lengths[m] as number); pos++) {
        const { init, resp } = bothWays(pattern);
        let failedAt = -1;
        for (let i = 0; i < count && failedAt < 0; i++) {
          const [writer, reader] = i % 2 === 0 ? [init, resp] : [resp, init];
          try {
            const message = writer.writeMessage(payload(i));
            if (i === m) message[pos] = (message[pos] as number) ^ (1 << (pos % 8));
            reader.readMessage(message);
          } catch (err) {
            handshakeFailure(err);
            failedAt = i;
          }
        }
        assert.equal(failedAt, detectedAt, `message ${m} byte ${pos}`);
        assert.ok(!(init.complete && resp.complete));
      }
    }
  });
}

test('tampering: a flipped bit in a transport message fails with AUTH_FAILED, and the next genuine one still decrypts', () => {
  for (const pattern of PATTERN_NAMES) {
    const { init, resp } = bothWays(pattern);
    complete(init, resp);
    const a = init.split();
    const b = resp.split();
    const genuine = a.send.encrypt(Buffer.from('twenty bytes payload'));
    for (let pos = 0; pos < genuine.length; pos++) {
      for (const bit of [0, 7]) {
        const forged = Buffer.from(genuine);
        forged[pos] = (forged[pos] as number) ^ (1 << bit);
        assert.throws(() => b.receive.decrypt(forged), authFailure);
        assert.equal(b.receive.nonce, 0, 'a failed decrypt does not advance the nonce');
      }
    }
    assert.throws(() => b.receive.decrypt(genuine.subarray(0, genuine.length - 1)), authFailure);
    assert.throws(() => b.receive.decrypt(Buffer.concat([genuine, Buffer.of(0)])), authFailure);
    assert.throws(() => b.receive.decrypt(genuine.subarray(0, 15)), authFailure);
    assert.throws(() => b.receive.decrypt(genuine, Buffer.from('other ad')), authFailure);
    assert.equal(b.receive.decrypt(genuine).toString(), 'twenty bytes payload');
    assert.equal(b.receive.nonce, 1);
    // The same ciphertext replayed no longer authenticates (the counter moved on).
    assert.throws(() => b.receive.decrypt(genuine), authFailure);
    exchange(a, b, Buffer.from('still flowing'));
  }
});

test('IK with the wrong remote static key fails at the responder', () => {
  const responderKeys = generateNoiseKeyPair();
  const init = new Handshake({
    pattern: 'IK',
    initiator: true,
    staticKeyPair: generateNoiseKeyPair(),
    remoteStaticKey: generateNoiseKeyPair().publicKey,
  });
  const resp = new Handshake({ pattern: 'IK', initiator: false, staticKeyPair: responderKeys });
  assert.throws(() => resp.readMessage(init.writeMessage()), handshakeFailure);
  assert.equal(resp.complete, false);
  assert.equal(resp.remoteStaticKey, undefined);
  assert.throws(() => resp.split(), handshakeFailure);
});

test('different prologues fail at the first authenticated message', () => {
  for (const pattern of PATTERN_NAMES) {
    const keys = generateNoiseKeyPair();
    const init = new Handshake({
      pattern,
      initiator: true,
      prologue: Buffer.from('one'),
      staticKeyPair: generateNoiseKeyPair(),
      ...(pattern === 'IK' ? { remoteStaticKey: keys.publicKey } : {}),
    });
    const resp = new Handshake({
      pattern,
      initiator: false,
      prologue: Buffer.from('two'),
      staticKeyPair: keys,
    });
    if (pattern === 'XX') {
      resp.readMessage(init.writeMessage());
      assert.throws(() => init.readMessage(resp.writeMessage()), handshakeFailure);
    } else {
      assert.throws(() => resp.readMessage(init.writeMessage()), handshakeFailure);
    }
  }
});

test('replayed handshake messages fail', () => {
  for (const pattern of PATTERN_NAMES) {
    // The same message twice to the same responder.
    const first = bothWays(pattern);
    const msg1 = first.init.writeMessage();
    first.resp.readMessage(msg1);
    assert.throws(() => first.resp.readMessage(msg1), handshakeFailure);

    // A completed session's messages replayed into a new session with the same keys.
    const { init, resp, initiatorKeys, responderKeys } = bothWays(pattern);
    const recorded = complete(init, resp);
    const freshResp = new Handshake({ pattern, initiator: false, staticKeyPair: responderKeys });
    const freshInit = new Handshake({
      pattern,
      initiator: true,
      staticKeyPair: initiatorKeys,
      ...(pattern === 'IK' ? { remoteStaticKey: responderKeys.publicKey } : {}),
    });
    if (pattern === 'XX') {
      // The responder answers with a fresh ephemeral, so the old third message is refused.
      freshResp.readMessage(recorded[0] as Buffer);
      freshResp.writeMessage();
      assert.throws(() => freshResp.readMessage(recorded[2] as Buffer), handshakeFailure);
    } else {
      // IK's first message can be replayed (§7.7: no KCI/replay protection for it); the old
      // reply cannot be replayed to an initiator with a fresh ephemeral.
      freshInit.writeMessage();
      assert.throws(() => freshInit.readMessage(recorded[1] as Buffer), handshakeFailure);
    }
    // A message after completion is refused.
    assert.throws(() => resp.readMessage(recorded[0] as Buffer), handshakeFailure);
    assert.equal(resp.complete, true);
  }
});

test('wrong-order calls throw VMESH_ERR_HANDSHAKE and kill the handshake', () => {
  for (const pattern of PATTERN_NAMES) {
    const a = bothWays(pattern);
    assert.throws(() => a.resp.writeMessage(), handshakeFailure);
    assert.throws(() => a.resp.readMessage(a.init.writeMessage()), handshakeFailure);

    const b = bothWays(pattern);
    assert.throws(() => b.init.readMessage(Buffer.alloc(100)), handshakeFailure);
    assert.throws(() => b.init.writeMessage(), handshakeFailure);

    const c = bothWays(pattern);
    assert.throws(() => c.init.split(), handshakeFailure);
    complete(c.init, c.resp);
    assert.throws(() => c.init.writeMessage(), handshakeFailure);
    assert.equal(c.init.complete, true);
    c.init.split();
    assert.throws(() => c.init.split(), handshakeFailure, 'split() only once');
  }
});

test('bad options throw VMESH_ERR_HANDSHAKE', () => {
  const keys = generateNoiseKeyPair();
  const other = generateNoiseKeyPair();
  const bad: HandshakeOptions[] = [
    { pattern: 'IK', initiator: true, staticKeyPair: keys },
    { pattern: 'IK', initiator: true, staticKeyPair: keys, remoteStaticKey: new Uint8Array(31) },
    { pattern: 'IK', initiator: false, staticKeyPair: keys, remoteStaticKey: other.publicKey },
    { pattern: 'XX', initiator: true, staticKeyPair: keys, remoteStaticKey: other.publicKey },
    { pattern: 'XX', initiator: true, staticKeyPair: { ...keys, publicKey: other.publicKey } },
    { pattern: 'XX', initiator: true, staticKeyPair: { ...keys, privateKey: new Uint8Array(31) } },
    {
      pattern: 'XX',
      initiator: true,
      staticKeyPair: { ...keys, privateKey: createPublicKey(keys.privateKey as KeyObject) },
    },
    { pattern: 'NN' as NoisePattern, initiator: true, staticKeyPair: keys },
    { pattern: 'XX', initiator: true, staticKeyPair: keys, hash: 'MD5' as NoiseHash },
  ];
  for (const opts of bad) assert.throws(() => new Handshake(opts), handshakeFailure);
});

test('message length: 65535 bytes at most, both ways', () => {
  const { init, resp } = bothWays('XX');
  // XX message 1 is e (32 bytes) plus a plaintext payload.
  assert.throws(() => init.writeMessage(new Uint8Array(NOISE_MAX_MESSAGE - 31)), handshakeFailure);
  const fresh = bothWays('XX');
  const biggest = fresh.init.writeMessage(new Uint8Array(NOISE_MAX_MESSAGE - 32));
  assert.equal(biggest.length, NOISE_MAX_MESSAGE);
  assert.equal(fresh.resp.readMessage(biggest).length, NOISE_MAX_MESSAGE - 32);
  assert.throws(() => resp.readMessage(new Uint8Array(NOISE_MAX_MESSAGE + 1)), handshakeFailure);

  const cipher = new CipherState(randomBytes(32));
  assert.equal(cipher.encrypt(new Uint8Array(NOISE_MAX_PLAINTEXT)).length, NOISE_MAX_MESSAGE);
  assert.throws(
    () => cipher.encrypt(new Uint8Array(NOISE_MAX_PLAINTEXT + 1)),
    isVmeshError('VMESH_ERR_FRAME_TOO_LARGE'),
  );
  assert.throws(() => cipher.decrypt(new Uint8Array(NOISE_MAX_MESSAGE + 1)), authFailure);
});

test('no key material in toJSON, inspect or String()', () => {
  const key = randomBytes(32);
  const cipher = new CipherState(key);
  const privateRaw = randomBytes(32);
  const hs = new Handshake({
    pattern: 'XX',
    initiator: true,
    staticKeyPair: keyPairFromRaw(privateRaw, false),
  });
  for (const text of [
    JSON.stringify(cipher),
    inspect(cipher, { showHidden: true, depth: 10 }),
    String(cipher),
    JSON.stringify(hs),
    inspect(hs, { showHidden: true, depth: 10 }),
    String(hs),
  ]) {
    for (const secret of [key, privateRaw]) {
      assert.ok(!text.includes(secret.toString('hex')));
      assert.ok(!text.includes(secret.toString('base64')));
    }
  }
  assert.deepEqual(JSON.parse(JSON.stringify(cipher)), { hasKey: true, nonce: 0 });
  assert.equal(Object.keys(cipher).length, 0);
});

// ---- CipherState: nonce encoding, explicit nonces, destroy ----

test('ChaChaPoly nonce is 4 zero bytes || 64-bit little-endian counter (§12.3)', () => {
  const key = randomBytes(32);
  const ad = randomBytes(20);
  const plaintext = randomBytes(100);
  const reference = (n: bigint): Buffer => {
    const iv = Buffer.alloc(12);
    iv.writeBigUInt64LE(n, 4);
    const c = createCipheriv('chacha20-poly1305', key, iv, { authTagLength: 16 });
    c.setAAD(ad, { plaintextLength: plaintext.length });
    return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  };
  const cipher = new CipherState(key);
  for (let n = 0; n < 3; n++) {
    assert.equal(cipher.nonce, n);
    assert.deepEqual(cipher.encrypt(plaintext, ad), reference(BigInt(n)));
  }
  for (const n of [
    2 ** 32 - 1,
    2 ** 32,
    2 ** 32 + 5,
    2 ** 40 + 2 ** 33 + 7,
    Number.MAX_SAFE_INTEGER,
  ]) {
    const sealed = cipher.encryptWithNonce(n, plaintext, ad);
    assert.deepEqual(sealed, reference(BigInt(n)), `nonce ${n}`);
    assert.deepEqual(cipher.decryptWithNonce(n, sealed, ad), plaintext);
    assert.throws(() => cipher.decryptWithNonce(n - 1, sealed, ad), authFailure);
  }
  assert.equal(cipher.nonce, 3, 'explicit nonces leave the counter alone');
  for (const n of [-1, 1.5, 2 ** 53, Number.NaN]) {
    assert.throws(() => cipher.encryptWithNonce(n, plaintext), isVmeshError('VMESH_ERR_MALFORMED'));
  }
});

test('CipherState without a key passes data through (§5.1); destroy() wipes and disables', () => {
  const empty = new CipherState();
  assert.equal(empty.hasKey, false);
  assert.deepEqual(empty.encrypt(Buffer.from('abc')), Buffer.from('abc'));
  assert.throws(() => new CipherState(new Uint8Array(16)), isVmeshError('VMESH_ERR_MALFORMED'));
  assert.throws(() => empty.rekey(), isVmeshError('VMESH_ERR_INTERNAL'));
  const keyed = new CipherState(randomBytes(32));
  keyed.destroy();
  assert.equal(keyed.hasKey, false);
  assert.throws(() => keyed.encrypt(Buffer.from('x')), isVmeshError('VMESH_ERR_INTERNAL'));
  assert.throws(() => keyed.decrypt(Buffer.alloc(20)), isVmeshError('VMESH_ERR_INTERNAL'));
});

// ---- 4. rekey ----

test('rekey follows §4.2: k = first 32 bytes of ENCRYPT(k, 2^64-1, zerolen, zeros); n is kept', () => {
  const key = randomBytes(32);
  const c = createCipheriv('chacha20-poly1305', key, hex('00000000ffffffffffffffff'), {
    authTagLength: 16,
  });
  const expected = c.update(Buffer.alloc(32));
  const cipher = new CipherState(key);
  cipher.encrypt(Buffer.from('one'));
  cipher.encrypt(Buffer.from('two'));
  cipher.rekey();
  assert.equal(cipher.nonce, 2);
  const plaintext = randomBytes(64);
  assert.deepEqual(
    cipher.encrypt(plaintext),
    new CipherState(expected).encryptWithNonce(2, plaintext),
  );
  // Rekeying twice applies the formula twice.
  const c2 = createCipheriv('chacha20-poly1305', expected, hex('00000000ffffffffffffffff'), {
    authTagLength: 16,
  });
  const expected2 = c2.update(Buffer.alloc(32));
  cipher.rekey();
  assert.deepEqual(
    cipher.encryptWithNonce(9, plaintext),
    new CipherState(expected2).encryptWithNonce(9, plaintext),
  );
});

test('rekey: both sides rekey and messages still flow; one-sided rekey fails authentication', () => {
  for (const pattern of PATTERN_NAMES) {
    const { init, resp } = bothWays(pattern, 'SHA256');
    complete(init, resp);
    const a = init.split();
    const b = resp.split();
    exchange(a, b, Buffer.from('before'));
    for (const cs of [a.send, a.receive, b.send, b.receive]) cs.rekey();
    exchange(a, b, Buffer.from('after one rekey'));
    a.send.rekey();
    const sealed = a.send.encrypt(Buffer.from('held back'));
    assert.throws(() => b.receive.decrypt(sealed), authFailure);
    b.receive.rekey();
    assert.equal(b.receive.decrypt(sealed).toString(), 'held back');
    assert.equal(b.receive.decrypt(a.send.encrypt(Buffer.from('again'))).toString(), 'again');
  }
});

// ---- 5. property tests ----

const staticKeys = Array.from({ length: 4 }, () => generateNoiseKeyPair());

test('property: random payloads and prologues round-trip through XX and IK', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...PATTERN_NAMES),
      fc.constantFrom(...HASH_NAMES),
      fc.uint8Array({ maxLength: 100 }),
      fc.array(fc.uint8Array({ maxLength: 1000 }), { minLength: 7, maxLength: 7 }),
      fc.nat(3),
      fc.nat(3),
      (pattern, hash, prologue, payloads, i, r) => {
        const initiatorKeys = staticKeys[i] as NoiseKeyPair;
        const responderKeys = staticKeys[r] as NoiseKeyPair;
        const init = new Handshake({
          pattern,
          hash,
          prologue,
          initiator: true,
          staticKeyPair: initiatorKeys,
          ...(pattern === 'IK' ? { remoteStaticKey: responderKeys.publicKey } : {}),
        });
        const resp = new Handshake({
          pattern,
          hash,
          prologue,
          initiator: false,
          staticKeyPair: responderKeys,
        });
        complete(init, resp, payloads);
        assert.deepEqual(init.handshakeHash, resp.handshakeHash);
        assert.equal(init.handshakeHash.length, hash === 'BLAKE2b' ? 64 : 32);
        assert.deepEqual(init.remoteStaticKey, new Uint8Array(responderKeys.publicKey));
        assert.deepEqual(resp.remoteStaticKey, new Uint8Array(initiatorKeys.publicKey));
        const a = init.split();
        const b = resp.split();
        for (const payload of payloads.slice(MESSAGE_COUNT[pattern])) exchange(a, b, payload);
      },
    ),
    { seed: SEED, numRuns: 60 },
  );
});

test('property: readMessage on arbitrary bytes throws only VMESH_ERR_HANDSHAKE', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...PATTERN_NAMES),
      fc.constantFrom(...HASH_NAMES),
      fc.nat(2),
      fc.uint8Array({ maxLength: 300 }),
      (pattern, hash, stage, bytes) => {
        const { init, resp } = bothWays(pattern, hash);
        const steps = Math.min(stage, MESSAGE_COUNT[pattern] - 1);
        for (let i = 0; i < steps; i++) {
          const [writer, reader] = i % 2 === 0 ? [init, resp] : [resp, init];
          reader.readMessage(writer.writeMessage());
        }
        const reader = steps % 2 === 0 ? resp : init;
        try {
          reader.readMessage(bytes);
          // Only XX's unauthenticated first message can be forged by arbitrary bytes.
          assert.ok(pattern === 'XX' && steps === 0 && bytes.length >= 32);
        } catch (err) {
          handshakeFailure(err);
        }
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('property: CipherState.decrypt on arbitrary bytes throws only AUTH_FAILED and keeps the nonce', () => {
  const cipher = new CipherState(randomBytes(32));
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 40 }),
      (bytes, ad) => {
        assert.throws(() => cipher.decrypt(bytes, ad), authFailure);
        assert.equal(cipher.nonce, 0);
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});
