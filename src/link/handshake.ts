/**
 * The link handshake step.
 *
 * Placeholder: no authentication yet. Issue 'Only admitted devices link'
 * replaces this step with Noise XX + certificates; nothing else in the link
 * layer needs to change. Today each side sends a HELLO frame (device id,
 * public keys, name) and checks the peer's: the version, that the claimed id
 * is the one derived from the claimed keys, and that it is not our own id.
 * Anyone can claim any keys — that is exactly what the next issue fixes.
 */
import { deriveDeviceId } from '../crypto/index.ts';
import type { Identity } from '../crypto/index.ts';
import { VmeshError } from '../errors/index.ts';
import { decodeHello, encodeHello } from '../wire/index.ts';
import type { Hello } from '../wire/index.ts';

/** Our first handshake message. */
export function helloFor(identity: Identity, name: string): Buffer {
  return encodeHello({
    device: identity.deviceId,
    signingKey: identity.signingPublic,
    agreementKey: identity.agreementPublic,
    name,
  });
}

/** Checks the peer's handshake message; throws VMESH_ERR_HANDSHAKE (or the decoder's code). */
export function verifyHello(body: Uint8Array, self: Identity): Hello {
  let hello: Hello;
  try {
    hello = decodeHello(body);
  } catch (err) {
    const e = err as VmeshError;
    throw new VmeshError(
      e.code === 'VMESH_ERR_UNSUPPORTED_VERSION'
        ? 'VMESH_ERR_UNSUPPORTED_VERSION'
        : 'VMESH_ERR_HANDSHAKE',
      `bad hello: ${e.message}`,
    );
  }
  if (deriveDeviceId(hello.signingKey, hello.agreementKey) !== hello.device) {
    throw new VmeshError(
      'VMESH_ERR_HANDSHAKE',
      'peer claims a device id that does not match its keys',
    );
  }
  if (hello.device === self.deviceId) {
    throw new VmeshError(
      'VMESH_ERR_HANDSHAKE',
      'peer claims to be this device (a link to itself?)',
    );
  }
  return hello;
}
