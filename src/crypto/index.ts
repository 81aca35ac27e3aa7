/** Identity keys and device ids (certificates and Noise come with the security issue). The only door of src/crypto/. */
export {
  deriveDeviceId,
  generateIdentity,
  loadOrCreateIdentity,
  readIdentityFile,
  writeIdentityFile,
} from './identity.ts';
export type { Identity } from './identity.ts';
