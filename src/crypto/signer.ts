/**
 * The device's signer for routing claims (src/routing/signing.ts): claims
 * carry the device's two raw public keys (Ed25519 ‖ X25519, 64 bytes) and an
 * Ed25519 signature; a claim verifies only if the keys derive the claimed
 * device id and the signature checks. Public keys are cached as KeyObjects
 * (bounded) because importing costs more than verifying.
 */
import { createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { DeviceId } from '../wire/index.ts';
import { deriveDeviceId } from './identity.ts';
import type { Identity } from './identity.ts';

/** Structurally a RoutingSigner (src/routing/signing.ts). */
export interface ClaimSigner {
  readonly keys: Uint8Array;
  sign(data: Uint8Array): Uint8Array;
  verify(origin: DeviceId, keys: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean;
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const MAX_CACHED_KEYS = 4096;

/** An Ed25519 public KeyObject from 32 raw bytes. */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, raw]),
    format: 'der',
    type: 'spki',
  });
}

export function identitySigner(identity: Identity): ClaimSigner {
  const keys = Buffer.concat([identity.signingPublic, identity.agreementPublic]);
  const cache = new Map<string, { id: DeviceId; key: KeyObject }>();
  return {
    keys,
    sign: (data) => sign(null, data, identity.signingPrivate),
    verify(origin, claimKeys, data, signature) {
      if (claimKeys.length !== 64 || signature.length !== 64) return false;
      const hex = Buffer.from(claimKeys).toString('hex');
      let entry = cache.get(hex);
      if (entry === undefined) {
        const signing = claimKeys.subarray(0, 32);
        entry = {
          id: deriveDeviceId(signing, claimKeys.subarray(32)),
          key: ed25519PublicKey(signing),
        };
        if (cache.size >= MAX_CACHED_KEYS) cache.delete(cache.keys().next().value as string);
        cache.set(hex, entry);
      }
      if (entry.id !== origin) return false;
      try {
        return verify(null, data, entry.key, signature);
      } catch {
        return false;
      }
    },
  };
}
