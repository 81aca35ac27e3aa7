/** Identity keys, device ids, claim signatures, certificates and Noise. The only door of src/crypto/. */
export {
  deriveDeviceId,
  generateIdentity,
  loadOrCreateIdentity,
  readIdentityFile,
  writeIdentityFile,
} from './identity.ts';
export type { Identity } from './identity.ts';
export { ed25519PublicKey, identitySigner } from './signer.ts';
export type { ClaimSigner } from './signer.ts';
