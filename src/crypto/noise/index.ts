/**
 * Noise Protocol Framework (revision 34) for vmesh: XX and IK over 25519,
 * ChaChaPoly and BLAKE2s / BLAKE2b / SHA256, on node:crypto only. The only
 * door of src/crypto/noise/; see README.md for the API and spec coverage.
 */
export { CipherState, NOISE_MAX_MESSAGE, NOISE_MAX_PLAINTEXT, NOISE_TAG_LENGTH } from './cipher.ts';
export { Handshake } from './handshake.ts';
export type { HandshakeOptions, NoisePattern, NoiseSplit } from './handshake.ts';
export type { NoiseHash } from './hash.ts';
export { generateNoiseKeyPair } from './keys.ts';
export type { NoiseKeyPair } from './keys.ts';
