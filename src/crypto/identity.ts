/**
 * Device identity: an Ed25519 key pair (signing) and an X25519 key pair (key
 * agreement) from node:crypto. The device id is the first 16 bytes of
 * BLAKE2s-256(Ed25519 public key || X25519 public key), as 32 hex characters,
 * so an id cannot be claimed without the keys behind it (checked at the link
 * handshake). Key files are JSON with PKCS#8 PEM private keys, written with
 * mode 0600 and refused when group- or world-accessible. Private keys never
 * leave this module except into that file.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { VmeshError } from '../errors/index.ts';
import type { DeviceId } from '../wire/index.ts';

export interface Identity {
  deviceId: DeviceId;
  /** Ed25519 private key (never serialised outside the key file). */
  signingPrivate: KeyObject;
  /** X25519 private key. */
  agreementPrivate: KeyObject;
  /** Raw Ed25519 public key, 32 bytes. */
  signingPublic: Uint8Array;
  /** Raw X25519 public key, 32 bytes. */
  agreementPublic: Uint8Array;
}

/** Derives the device id from the two raw 32-byte public keys. */
export function deriveDeviceId(signingPublic: Uint8Array, agreementPublic: Uint8Array): DeviceId {
  return createHash('blake2s256')
    .update(signingPublic)
    .update(agreementPublic)
    .digest()
    .subarray(0, 16)
    .toString('hex');
}

function rawPublic(key: KeyObject): Uint8Array {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string')
    throw new VmeshError('VMESH_ERR_KEY_FILE', 'key has no public part');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

function fromPrivateKeys(signingPrivate: KeyObject, agreementPrivate: KeyObject): Identity {
  if (
    signingPrivate.asymmetricKeyType !== 'ed25519' ||
    agreementPrivate.asymmetricKeyType !== 'x25519'
  ) {
    throw new VmeshError(
      'VMESH_ERR_KEY_FILE',
      'identity needs an Ed25519 and an X25519 private key',
    );
  }
  const signingPublic = rawPublic(signingPrivate);
  const agreementPublic = rawPublic(agreementPrivate);
  return {
    deviceId: deriveDeviceId(signingPublic, agreementPublic),
    signingPrivate,
    agreementPrivate,
    signingPublic,
    agreementPublic,
  };
}

export function generateIdentity(): Identity {
  return fromPrivateKeys(
    generateKeyPairSync('ed25519').privateKey,
    generateKeyPairSync('x25519').privateKey,
  );
}

/** Writes the identity file with mode 0600 (refuses to overwrite unless asked). */
export function writeIdentityFile(
  path: string,
  identity: Identity,
  options: { overwrite?: boolean } = {},
): void {
  const body = JSON.stringify(
    {
      version: 1,
      type: 'vmesh-identity',
      deviceId: identity.deviceId,
      signingPrivateKey: identity.signingPrivate.export({ format: 'pem', type: 'pkcs8' }),
      agreementPrivateKey: identity.agreementPrivate.export({ format: 'pem', type: 'pkcs8' }),
    },
    null,
    2,
  );
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, `${body}\n`, {
      mode: 0o600,
      flag: options.overwrite === true ? 'w' : 'wx',
    });
    chmodSync(path, 0o600);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EEXIST' ? 'it already exists (use --force to replace it)' : e.message;
    throw new VmeshError('VMESH_ERR_KEY_FILE', `cannot write identity file ${path}: ${why}`);
  }
}

/** Reads an identity file; refuses missing, malformed or group/world-accessible files. */
export function readIdentityFile(path: string): Identity {
  let text: string;
  try {
    const mode = statSync(path).mode;
    if ((mode & 0o077) !== 0) {
      throw new VmeshError(
        'VMESH_ERR_KEY_FILE',
        `identity file ${path} is accessible by other users (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
      );
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof VmeshError) throw err;
    throw new VmeshError(
      'VMESH_ERR_KEY_FILE',
      `cannot read identity file ${path}: ${(err as Error).message}`,
    );
  }
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    if (parsed.type !== 'vmesh-identity' || parsed.version !== 1)
      throw new Error('not a vmesh identity (version 1)');
    if (
      typeof parsed.signingPrivateKey !== 'string' ||
      typeof parsed.agreementPrivateKey !== 'string'
    ) {
      throw new Error('private keys missing');
    }
    return fromPrivateKeys(
      createPrivateKey(parsed.signingPrivateKey),
      createPrivateKey(parsed.agreementPrivateKey),
    );
  } catch (err) {
    if (err instanceof VmeshError) throw err;
    throw new VmeshError(
      'VMESH_ERR_KEY_FILE',
      `identity file ${path} is malformed: ${(err as Error).message}`,
    );
  }
}

/** Reads the identity at `path`, creating it (mode 0600) if the file does not exist. */
export function loadOrCreateIdentity(path: string): Identity {
  if (!existsSync(path)) {
    const identity = generateIdentity();
    writeIdentityFile(path, identity);
    return identity;
  }
  return readIdentityFile(path);
}
