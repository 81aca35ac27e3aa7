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
export {
  CipherState,
  Handshake,
  NOISE_MAX_MESSAGE,
  NOISE_MAX_PLAINTEXT,
  NOISE_TAG_LENGTH,
  generateNoiseKeyPair,
} from './noise/index.ts';
export type {
  HandshakeOptions,
  NoiseHash,
  NoiseKeyPair,
  NoisePattern,
  NoiseSplit,
} from './noise/index.ts';
export {
  CLOCK_SKEW_MS,
  NAME_PATTERN,
  ROLE_BITS,
  certificateFromPem,
  certificateToPem,
  createCa,
  decodeCertificate,
  deriveNetworkId,
  hasCertificateMagic,
  issueCertificate,
  looksLikeCertificatePem,
  parseTrust,
  readCaFile,
  readCertificateFile,
  readTrustFile,
  trustFromPublicKey,
  trustOf,
  trustToJson,
  verifyCertificate,
  verifyCertificateSignature,
  writeCaFile,
  writeCertificateFile,
  writeTrustFile,
} from './cert.ts';
export type {
  Ca,
  Certificate,
  CertificateRequest,
  Role,
  Trust,
  VerifyCertificateOptions,
} from './cert.ts';
export {
  createRevocationList,
  decodeRevocationList,
  hasRevocationListMagic,
  newerRevocationList,
  readRevocationListFile,
  verifyRevocationList,
  writeRevocationListFile,
} from './revocation.ts';
export type { RevocationList, RevocationListData } from './revocation.ts';
