/**
 * Signed claims in routing messages. Where a message speaks for another
 * device (a link-state advertisement, a flooded announcement, a route reply,
 * a distance-vector update's (source, seqno)), the origin signs the part that
 * relays must not change, and every receiver checks it, so a relay cannot
 * forge routes for others. Claims are self-certifying: they carry the
 * origin's two public keys, and the device id is derived from them
 * (src/crypto/identity.ts), so no lookup is needed to check one.
 *
 * Block layout appended to a message: `u8 keysLen | keys | u8 sigLen | sig`.
 * The device signs with its Ed25519 key (keys = Ed25519 pub ‖ X25519 pub, 64
 * bytes; sig 64 bytes). The simulator and unit tests use `nullSigner`: empty
 * keys and signature, accepted only by another null signer.
 */
import { VmeshError } from '../errors/index.ts';
import type { DeviceId } from '../wire/index.ts';
import type { Reader } from './ids.ts';

export interface RoutingSigner {
  /** This device's public keys as carried in claims (empty for the null signer). */
  readonly keys: Uint8Array;
  /** Signature over `data` (empty for the null signer). */
  sign(data: Uint8Array): Uint8Array;
  /** Whether `signature` over `data` is by the device `origin` whose keys are `keys`. */
  verify(origin: DeviceId, keys: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean;
}

/** No signatures (simulator, unit tests): claims carry empty blocks and are accepted only empty. */
export const nullSigner: RoutingSigner = {
  keys: new Uint8Array(0),
  sign: () => new Uint8Array(0),
  verify: (_origin, keys, _data, signature) => keys.length === 0 && signature.length === 0,
};

/** A claim block as read from a message. */
export interface Claim {
  keys: Uint8Array;
  signature: Uint8Array;
}

/** The block to append for `data` signed by `signer`. */
export function encodeClaim(signer: RoutingSigner, data: Uint8Array): Buffer {
  return claimBlock({ keys: signer.keys, signature: signer.sign(data) });
}

/** Encodes a claim (one received and kept, to relay it unchanged): `u8 k | keys | u8 s | sig`. */
export function claimBlock(c: Claim): Buffer {
  if (c.keys.length > 255 || c.signature.length > 255)
    throw new VmeshError('VMESH_ERR_MALFORMED', 'claim too long');
  const out = Buffer.alloc(2 + c.keys.length + c.signature.length);
  out[0] = c.keys.length;
  out.set(c.keys, 1);
  out[1 + c.keys.length] = c.signature.length;
  out.set(c.signature, 2 + c.keys.length);
  return out;
}

/** Whether two claims are the same bytes (a claim already verified need not be checked again). */
export function sameClaim(a: Claim, b: Claim): boolean {
  return (
    Buffer.from(a.keys).equals(Buffer.from(b.keys)) &&
    Buffer.from(a.signature).equals(Buffer.from(b.signature))
  );
}

/** Whether `signer` signs nothing (the null signer of the simulator and unit tests). */
export function signsNothing(signer: RoutingSigner): boolean {
  return signer.keys.length === 0;
}

/** Reads a claim block (bounds-checked: overruns are VMESH_ERR_MALFORMED). */
export function readClaim(r: Reader): Claim {
  const keys = r.bytes(r.u8());
  const signature = r.bytes(r.u8());
  return { keys, signature };
}

/** Whether `claim` is `origin`'s signature over `data`. */
export function checkClaim(
  signer: RoutingSigner,
  origin: DeviceId,
  data: Uint8Array,
  claim: Claim,
): boolean {
  return signer.verify(origin, claim.keys, data, claim.signature);
}
