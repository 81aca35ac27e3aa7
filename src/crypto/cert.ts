/**
 * The network CA, its trust file, and device certificates (docs/certificates.md).
 *
 * Data structures: `Ca` (the CA's Ed25519 private key and network name; lives
 * only in a mode-0600 key file), `Trust` (the CA's public key: what every
 * device is given), `Certificate` (a decoded device certificate v1: network
 * id, serial, validity period, roles, the device's two public keys, its name
 * and the CA's signature over every preceding byte).
 *
 * The decoder is strict (exact length, known version and role bits, name
 * charset, notBefore < notAfter) and throws VMESH_ERR_MALFORMED or
 * VMESH_ERR_UNSUPPORTED_VERSION; `verifyCertificate` turns every failure into
 * a certificate error: VMESH_ERR_CERT_INVALID (details.reason: malformed,
 * network, signature, keys), VMESH_ERR_CERT_REVOKED or VMESH_ERR_CERT_EXPIRED.
 * Revocation lists are in revocation.ts. The CA private key never leaves this
 * module except into its key file.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import {
  chmodSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { VmeshError } from '../errors/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import type { DeviceId } from '../wire/index.ts';
import { deriveDeviceId } from './identity.ts';
import type { RevocationList } from './revocation.ts';
import { ed25519PublicKey } from './signer.ts';

/** Network and device names: 1..64 ASCII letters, digits, '.', '_', '-', starting with a letter or digit. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The network CA. `signingPrivate` is never serialised outside the CA key file. */
export interface Ca {
  /** Human name of the network (informational; not in certificates). */
  readonly network: string;
  /** First 16 bytes of BLAKE2s-256(CA public key), 32 hex characters. */
  readonly networkId: string;
  /** Raw Ed25519 public key of the CA, 32 bytes. */
  readonly publicKey: Uint8Array;
  /** Ed25519 private key of the CA. */
  readonly signingPrivate: KeyObject;
}

/** What every device of the network is given: the CA's public key. */
export interface Trust {
  readonly network: string;
  /** First 16 bytes of BLAKE2s-256(caPublicKey), 32 hex characters. */
  readonly networkId: string;
  /** Raw Ed25519 public key of the CA, 32 bytes. */
  readonly caPublicKey: Uint8Array;
}

/** What a certificate allows beyond connecting: relaying others' traffic, exposing services. */
export type Role = 'relay' | 'serve';

/** Bit of each role in the certificate's u16 roles field; other bits are rejected. */
export const ROLE_BITS: Readonly<Record<Role, number>> = { relay: 0x0001, serve: 0x0002 };
const KNOWN_ROLE_BITS = 0x0003;
const ROLE_ORDER: readonly Role[] = ['relay', 'serve'];

/** A decoded device certificate (version 1). Not verified unless it came from a verify function. */
export interface Certificate {
  readonly version: 1;
  /** Network id of the CA that signed it, 32 hex characters. */
  readonly networkId: string;
  /** u32 chosen by the CA; what revocation lists name. */
  readonly serial: number;
  /** Valid from this instant (unix ms, inclusive). */
  readonly notBefore: number;
  /** Valid until this instant (unix ms, inclusive). */
  readonly notAfter: number;
  /** Roles in bit order (relay, serve). */
  readonly roles: readonly Role[];
  /** Raw Ed25519 public key of the device, 32 bytes. */
  readonly signingPublic: Uint8Array;
  /** Raw X25519 public key of the device, 32 bytes. */
  readonly agreementPublic: Uint8Array;
  /** Device name. */
  readonly name: string;
  /** Derived from the two keys (deriveDeviceId). */
  readonly deviceId: DeviceId;
  /** The CA's Ed25519 signature, 64 bytes. */
  readonly signature: Uint8Array;
  /** The whole certificate (a private copy of the decoded bytes). */
  readonly raw: Uint8Array;
  /** Every byte the signature covers (raw without its last 64 bytes). */
  readonly signed: Uint8Array;
}

/** What the CA certifies. */
export interface CertificateRequest {
  name: string;
  signingPublic: Uint8Array;
  agreementPublic: Uint8Array;
  /** Unix ms. @default now minus CLOCK_SKEW_MS */
  notBefore?: number;
  /** Unix ms; must be after notBefore. */
  notAfter: number;
  /** @default [] */
  roles?: readonly Role[];
  /** u32. @default a random u32 */
  serial?: number;
}

export interface VerifyCertificateOptions {
  /** Current time, unix ms. */
  now: number;
  /** A verified revocation list of the same network. */
  revocations?: RevocationList;
  /** Keys the peer proved it holds (handshake); the certificate must carry exactly these. */
  keys?: { signingPublic: Uint8Array; agreementPublic: Uint8Array };
}

/** How far before the issuing time a certificate's default notBefore lies (CA and device clocks differ). */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

const CERT_MAGIC = Buffer.from('VMC', 'latin1');
const CERT_VERSION = 1;
const SIGNATURE_BYTES = 64;
/** Offset of the name length byte; the name follows it. */
const NAME_LENGTH_OFFSET = 106;
/** Header + keys + name length + signature, without the name: 171 bytes. */
const CERT_FIXED_BYTES = NAME_LENGTH_OFFSET + 1 + SIGNATURE_BYTES;
const MAX_NAME_BYTES = 64;

export const CERT_PEM_BEGIN = '-----BEGIN VMESH CERTIFICATE-----';
export const CERT_PEM_END = '-----END VMESH CERTIFICATE-----';

// ---------------------------------------------------------------------------
// CA and trust

/** First 16 bytes of BLAKE2s-256(CA public key), as 32 hex characters. */
export function deriveNetworkId(caPublicKey: Uint8Array): string {
  return createHash('blake2s256').update(caPublicKey).digest().subarray(0, 16).toString('hex');
}

function checkName(name: unknown, what: string, code: ErrorCode): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new VmeshError(
      code,
      `${what} ${JSON.stringify(name)} is not valid: expected 1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit`,
    );
  }
  return name;
}

function rawPublic(key: KeyObject): Uint8Array {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (typeof jwk.x !== 'string')
    throw new VmeshError('VMESH_ERR_KEY_FILE', 'key has no public part');
  return new Uint8Array(Buffer.from(jwk.x, 'base64url'));
}

function caFromPrivate(network: string, signingPrivate: KeyObject): Ca {
  if (signingPrivate.asymmetricKeyType !== 'ed25519')
    throw new VmeshError('VMESH_ERR_KEY_FILE', 'the CA key must be an Ed25519 private key');
  const publicKey = rawPublic(signingPrivate);
  return { network, networkId: deriveNetworkId(publicKey), publicKey, signingPrivate };
}

/** Makes a new network CA (a fresh Ed25519 key pair). */
export function createCa(network: string): Ca {
  checkName(network, 'network name', 'VMESH_ERR_CONFIG');
  return caFromPrivate(network, generateKeyPairSync('ed25519').privateKey);
}

/** The public half of a CA: what devices are given. */
export function trustOf(ca: Ca): Trust {
  return trustFromPublicKey(ca.network, ca.publicKey);
}

/** A Trust from a network name and the CA's raw 32-byte Ed25519 public key. */
export function trustFromPublicKey(network: string, caPublicKey: Uint8Array): Trust {
  checkName(network, 'network name', 'VMESH_ERR_CONFIG');
  if (caPublicKey.length !== 32)
    throw new VmeshError('VMESH_ERR_CONFIG', 'a CA public key is 32 bytes');
  const key = new Uint8Array(caPublicKey);
  return { network, networkId: deriveNetworkId(key), caPublicKey: key };
}

/**
 * Writes `data` to `path` through a temporary file in the same folder, so a
 * reader never sees a half-written file and a key file never exists with a
 * looser mode. Without `overwrite` an existing file is never replaced
 * (link(2) fails atomically instead).
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode: number; overwrite: boolean; what: string; code: ErrorCode },
): void {
  const dirMode = (options.mode & 0o077) === 0 ? 0o700 : 0o755;
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: dirMode });
    writeFileSync(tmp, data, { mode: options.mode, flag: 'wx' });
    chmodSync(tmp, options.mode);
    if (options.overwrite) renameSync(tmp, path);
    else linkSync(tmp, path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EEXIST' ? 'it already exists (use --force to replace it)' : e.message;
    throw new VmeshError(options.code, `cannot write ${options.what} ${path}: ${why}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Reads a private key file's text; refuses files that other users may read or write. */
function readPrivateFile(path: string, what: string): string {
  try {
    const mode = statSync(path).mode;
    if ((mode & 0o077) !== 0) {
      throw new VmeshError(
        'VMESH_ERR_KEY_FILE',
        `${what} ${path} is accessible by other users (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
      );
    }
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof VmeshError) throw err;
    throw new VmeshError(
      'VMESH_ERR_KEY_FILE',
      `cannot read ${what} ${path}: ${(err as Error).message}`,
    );
  }
}

/** Reads a public file (trust, certificate, revocation list); VMESH_ERR_CONFIG if it cannot be read. */
export function readPublicFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `cannot read ${what} ${path}: ${(err as Error).message}`,
    );
  }
}

function parseJsonObject(text: string): Record<string, unknown> {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error('not a JSON object');
  return parsed as Record<string, unknown>;
}

/** Writes the CA key file (JSON, PKCS#8 PEM) with mode 0600; refuses to overwrite unless asked. */
export function writeCaFile(path: string, ca: Ca, options: { overwrite?: boolean } = {}): void {
  const body = JSON.stringify(
    {
      version: 1,
      type: 'vmesh-ca',
      network: ca.network,
      networkId: ca.networkId,
      signingPrivateKey: ca.signingPrivate.export({ format: 'pem', type: 'pkcs8' }),
    },
    null,
    2,
  );
  writeFileAtomic(path, `${body}\n`, {
    mode: 0o600,
    overwrite: options.overwrite === true,
    what: 'CA key file',
    code: 'VMESH_ERR_KEY_FILE',
  });
}

/** Reads a CA key file; refuses missing, malformed or group/world-accessible files (VMESH_ERR_KEY_FILE). */
export function readCaFile(path: string): Ca {
  const text = readPrivateFile(path, 'CA key file');
  try {
    const parsed = parseJsonObject(text);
    if (parsed.type !== 'vmesh-ca' || parsed.version !== 1)
      throw new Error('not a vmesh CA key file (version 1)');
    const network = checkName(parsed.network, 'network name', 'VMESH_ERR_KEY_FILE');
    if (typeof parsed.signingPrivateKey !== 'string') throw new Error('signingPrivateKey missing');
    const ca = caFromPrivate(network, createPrivateKey(parsed.signingPrivateKey));
    if (parsed.networkId !== undefined && parsed.networkId !== ca.networkId)
      throw new Error('networkId does not match the key');
    return ca;
  } catch (err) {
    if (err instanceof VmeshError)
      throw new VmeshError(err.code, `CA key file ${path} is malformed: ${err.message}`);
    throw new VmeshError(
      'VMESH_ERR_KEY_FILE',
      `CA key file ${path} is malformed: ${(err as Error).message}`,
    );
  }
}

/** The JSON form of a trust file. */
export function trustToJson(trust: Trust): {
  version: 1;
  type: 'vmesh-trust';
  network: string;
  caPublicKey: string;
  networkId: string;
} {
  return {
    version: 1,
    type: 'vmesh-trust',
    network: trust.network,
    caPublicKey: Buffer.from(trust.caPublicKey).toString('hex'),
    networkId: trust.networkId,
  };
}

/** Writes the (public) trust file, mode 0644; refuses to overwrite unless asked. */
export function writeTrustFile(
  path: string,
  trust: Trust,
  options: { overwrite?: boolean } = {},
): void {
  writeFileAtomic(path, `${JSON.stringify(trustToJson(trust), null, 2)}\n`, {
    mode: 0o644,
    overwrite: options.overwrite === true,
    what: 'trust file',
    code: 'VMESH_ERR_CONFIG',
  });
}

/** Parses a trust file's text (`where` names it in messages); VMESH_ERR_CONFIG naming the bad field. */
export function parseTrust(text: string, where = 'trust file'): Trust {
  try {
    const parsed = parseJsonObject(text);
    if (parsed.type !== 'vmesh-trust' || parsed.version !== 1)
      throw new Error('not a vmesh trust file (version 1)');
    const network = checkName(parsed.network, 'network name', 'VMESH_ERR_CONFIG');
    if (typeof parsed.caPublicKey !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.caPublicKey))
      throw new Error('caPublicKey: expected 64 lowercase hex characters');
    const trust = trustFromPublicKey(network, Buffer.from(parsed.caPublicKey, 'hex'));
    if (parsed.networkId !== trust.networkId)
      throw new Error('networkId does not match caPublicKey (first 16 bytes of its BLAKE2s-256)');
    return trust;
  } catch (err) {
    throw new VmeshError('VMESH_ERR_CONFIG', `${where} is malformed: ${(err as Error).message}`);
  }
}

/** Reads a trust file (VMESH_ERR_CONFIG if missing or malformed). */
export function readTrustFile(path: string): Trust {
  return parseTrust(readPublicFile(path, 'trust file').toString('utf8'), `trust file ${path}`);
}

// ---------------------------------------------------------------------------
// Certificates

function malformed(message: string): VmeshError {
  return new VmeshError('VMESH_ERR_MALFORMED', message);
}

function isU32(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function isTime(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** Reads a u64 that must fit a JS safe integer (unix ms until the year 287396). */
export function readTime(buf: Buffer, offset: number, what: string): number {
  const v = buf.readBigUInt64BE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${what} is beyond 2^53 - 1`);
  return Number(v);
}

/** Roles from the u16 bitmask; unknown bits are MALFORMED. */
export function rolesFromBits(bits: number): Role[] {
  if ((bits & ~KNOWN_ROLE_BITS) !== 0)
    throw malformed(`unknown role bits 0x${(bits & ~KNOWN_ROLE_BITS).toString(16)}`);
  return ROLE_ORDER.filter((r) => (bits & ROLE_BITS[r]) !== 0);
}

function rolesToBits(roles: readonly Role[]): number {
  let bits = 0;
  for (const r of roles) {
    if (!Object.hasOwn(ROLE_BITS, r))
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `unknown role ${JSON.stringify(r)} (known: ${ROLE_ORDER.join(', ')})`,
      );
    bits |= ROLE_BITS[r];
  }
  return bits;
}

/** A random u32 serial. */
export function randomSerial(): number {
  return randomBytes(4).readUInt32BE(0);
}

function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Signs a certificate request with the CA's key; returns the certificate's bytes. */
export function issueCertificate(ca: Ca, request: CertificateRequest): Uint8Array {
  const bad = (m: string): VmeshError => new VmeshError('VMESH_ERR_CONFIG', m);
  const name = checkName(request.name, 'device name', 'VMESH_ERR_CONFIG');
  if (request.signingPublic.length !== 32 || request.agreementPublic.length !== 32)
    throw bad('device public keys are 32 bytes each (Ed25519, X25519)');
  const notBefore = request.notBefore ?? Math.max(0, Date.now() - CLOCK_SKEW_MS);
  if (!isTime(notBefore)) throw bad('notBefore must be a whole number of unix ms from 0 to 2^53-1');
  if (!isTime(request.notAfter))
    throw bad('notAfter must be a whole number of unix ms from 0 to 2^53-1');
  if (request.notAfter <= notBefore) throw bad('notAfter must be later than notBefore');
  const serial = request.serial ?? randomSerial();
  if (!isU32(serial)) throw bad('serial must be a whole number from 0 to 4294967295');
  const roles = rolesToBits(request.roles ?? []);

  const nameBytes = Buffer.from(name, 'latin1'); // ASCII by NAME_PATTERN
  const out = Buffer.alloc(CERT_FIXED_BYTES + nameBytes.length);
  CERT_MAGIC.copy(out, 0);
  out[3] = CERT_VERSION;
  Buffer.from(ca.networkId, 'hex').copy(out, 4);
  out.writeUInt32BE(serial, 20);
  out.writeBigUInt64BE(BigInt(notBefore), 24);
  out.writeBigUInt64BE(BigInt(request.notAfter), 32);
  out.writeUInt16BE(roles, 40);
  out.set(request.signingPublic, 42);
  out.set(request.agreementPublic, 74);
  out[NAME_LENGTH_OFFSET] = nameBytes.length;
  nameBytes.copy(out, NAME_LENGTH_OFFSET + 1);
  const signedEnd = out.length - SIGNATURE_BYTES;
  sign(null, out.subarray(0, signedEnd), ca.signingPrivate).copy(out, signedEnd);
  return out;
}

/**
 * Decodes a certificate without verifying it. Strict: VMESH_ERR_MALFORMED for
 * a wrong magic, length, name, role bit or period; VMESH_ERR_UNSUPPORTED_VERSION
 * for a version other than 1. Never reads out of bounds.
 */
export function decodeCertificate(bytes: Uint8Array): Certificate {
  const b = view(bytes);
  if (b.length < 4 || !b.subarray(0, 3).equals(CERT_MAGIC))
    throw malformed('not a vmesh certificate (magic "VMC" missing)');
  if (b[3] !== CERT_VERSION)
    throw new VmeshError(
      'VMESH_ERR_UNSUPPORTED_VERSION',
      `certificate version ${b[3]} is not supported (this device knows version ${CERT_VERSION})`,
    );
  if (b.length < CERT_FIXED_BYTES + 1) throw malformed(`certificate too short (${b.length} bytes)`);
  const nameLength = b[NAME_LENGTH_OFFSET] as number;
  if (nameLength < 1 || nameLength > MAX_NAME_BYTES)
    throw malformed(`certificate name length ${nameLength} is outside 1..${MAX_NAME_BYTES}`);
  if (b.length !== CERT_FIXED_BYTES + nameLength)
    throw malformed(
      `certificate is ${b.length} bytes; a name of ${nameLength} bytes makes it ${CERT_FIXED_BYTES + nameLength}`,
    );
  const raw = Buffer.from(b); // private copy
  const serial = raw.readUInt32BE(20);
  const notBefore = readTime(raw, 24, 'notBefore');
  const notAfter = readTime(raw, 32, 'notAfter');
  if (notAfter <= notBefore) throw malformed('certificate notAfter is not later than notBefore');
  const roles = rolesFromBits(raw.readUInt16BE(40));
  const signingPublic = raw.subarray(42, 74);
  const agreementPublic = raw.subarray(74, 106);
  const name = raw.toString('latin1', NAME_LENGTH_OFFSET + 1, NAME_LENGTH_OFFSET + 1 + nameLength);
  if (!NAME_PATTERN.test(name))
    throw malformed('certificate name has characters outside the name charset');
  const signedEnd = raw.length - SIGNATURE_BYTES;
  return {
    version: 1,
    networkId: raw.toString('hex', 4, 20),
    serial,
    notBefore,
    notAfter,
    roles,
    signingPublic,
    agreementPublic,
    name,
    deviceId: deriveDeviceId(signingPublic, agreementPublic),
    signature: raw.subarray(signedEnd),
    raw,
    signed: raw.subarray(0, signedEnd),
  };
}

const caKeys = new Map<string, KeyObject>();
const MAX_CACHED_CA_KEYS = 16;

/** True if `signature` is the CA's Ed25519 signature of `data` (CA public keys are cached as KeyObjects). */
export function verifyCaSignature(trust: Trust, data: Uint8Array, signature: Uint8Array): boolean {
  const hex = Buffer.from(trust.caPublicKey).toString('hex');
  let key = caKeys.get(hex);
  try {
    if (key === undefined) {
      key = ed25519PublicKey(trust.caPublicKey);
      if (caKeys.size >= MAX_CACHED_CA_KEYS) caKeys.delete(caKeys.keys().next().value as string);
      caKeys.set(hex, key);
    }
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}

function invalid(
  reason: string,
  message: string,
  details: Record<string, unknown> = {},
): VmeshError {
  return new VmeshError('VMESH_ERR_CERT_INVALID', message, { reason, ...details });
}

/**
 * Decodes the certificate's bytes (a Certificate object is decoded again from
 * its `raw`, so its fields are always the signed ones); decoding failures
 * become VMESH_ERR_CERT_INVALID (reason "malformed").
 */
function asCertificate(cert: Uint8Array | Certificate): Certificate {
  try {
    return decodeCertificate(cert instanceof Uint8Array ? cert : cert.raw);
  } catch (err) {
    throw invalid('malformed', `certificate is malformed: ${(err as Error).message}`);
  }
}

/**
 * Checks that the certificate belongs to the trusted network and carries the
 * CA's signature; nothing about time or revocation (for `vmesh ca revoke`).
 */
export function verifyCertificateSignature(
  cert: Uint8Array | Certificate,
  trust: Trust,
): Certificate {
  const c = asCertificate(cert);
  if (c.networkId !== trust.networkId)
    throw invalid(
      'network',
      `certificate of "${c.name}" is for network ${c.networkId}, not ${trust.networkId} (${trust.network})`,
      { networkId: c.networkId },
    );
  if (!verifyCaSignature(trust, c.signed, c.signature))
    throw invalid(
      'signature',
      `certificate of "${c.name}" (serial ${c.serial}) does not carry a valid signature of the ${trust.network} CA`,
    );
  return c;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && view(a).equals(view(b));
}

/**
 * Verifies a device certificate against the network's trust: network id and
 * CA signature, then (if given) the keys the peer proved it holds, then the
 * revocation list, then the validity period (notBefore <= now <= notAfter).
 * Returns the decoded certificate.
 */
export function verifyCertificate(
  cert: Uint8Array | Certificate,
  trust: Trust,
  options: VerifyCertificateOptions,
): Certificate {
  const c = verifyCertificateSignature(cert, trust);
  if (
    options.keys !== undefined &&
    (!sameBytes(options.keys.signingPublic, c.signingPublic) ||
      !sameBytes(options.keys.agreementPublic, c.agreementPublic))
  ) {
    throw invalid(
      'keys',
      `certificate of "${c.name}" (device ${c.deviceId}) does not carry the keys presented with it`,
    );
  }
  const list = options.revocations;
  if (list !== undefined) {
    if (list.networkId !== trust.networkId)
      throw invalid(
        'network',
        `revocation list is for network ${list.networkId}, not ${trust.networkId} (${trust.network})`,
      );
    if (list.has(c.serial))
      throw new VmeshError(
        'VMESH_ERR_CERT_REVOKED',
        `certificate of "${c.name}" (serial ${c.serial}) was revoked (list issued ${new Date(list.issuedAt).toISOString()})`,
        { serial: c.serial },
      );
  }
  if (options.now < c.notBefore)
    throw new VmeshError(
      'VMESH_ERR_CERT_EXPIRED',
      `certificate of "${c.name}" is not valid yet: valid from ${new Date(c.notBefore).toISOString()} (now ${isoOrNumber(options.now)})`,
      { which: 'not-yet-valid', notBefore: c.notBefore, notAfter: c.notAfter, now: options.now },
    );
  if (!(options.now <= c.notAfter))
    throw new VmeshError(
      'VMESH_ERR_CERT_EXPIRED',
      `certificate of "${c.name}" expired at ${new Date(c.notAfter).toISOString()} (now ${isoOrNumber(options.now)})`,
      { which: 'expired', notBefore: c.notBefore, notAfter: c.notAfter, now: options.now },
    );
  return c;
}

function isoOrNumber(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

// ---------------------------------------------------------------------------
// PEM-like armour and files

/** `-----BEGIN VMESH CERTIFICATE-----`, base64 in lines of 64, `-----END VMESH CERTIFICATE-----`. */
export function certificateToPem(bytes: Uint8Array): string {
  const b64 = view(bytes).toString('base64');
  const lines = [CERT_PEM_BEGIN];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(CERT_PEM_END);
  return `${lines.join('\n')}\n`;
}

/**
 * The bytes inside the armour. Strict: only whitespace around the armour and
 * at line ends, canonical base64 (VMESH_ERR_MALFORMED otherwise).
 */
export function certificateFromPem(text: string): Uint8Array {
  const t = text.trim();
  if (!t.startsWith(CERT_PEM_BEGIN) || !t.endsWith(CERT_PEM_END))
    throw malformed(
      `not a PEM-armoured vmesh certificate (expected ${CERT_PEM_BEGIN} ... ${CERT_PEM_END})`,
    );
  if (t.length < CERT_PEM_BEGIN.length + CERT_PEM_END.length)
    throw malformed('PEM armour is truncated');
  const body = t.slice(CERT_PEM_BEGIN.length, t.length - CERT_PEM_END.length).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0)
    throw malformed('PEM armour body is not base64');
  const bytes = Buffer.from(body, 'base64');
  if (bytes.toString('base64') !== body) throw malformed('PEM armour body is not canonical base64');
  return bytes;
}

/** True if the bytes start with a certificate's magic, "VMC". */
export function hasCertificateMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && view(bytes).subarray(0, 3).equals(CERT_MAGIC);
}

/** True if the bytes look like PEM armour (after leading whitespace). */
export function looksLikeCertificatePem(bytes: Uint8Array): boolean {
  return view(bytes).toString('latin1', 0, 200).trimStart().startsWith(CERT_PEM_BEGIN);
}

/**
 * Reads a certificate file, raw bytes or PEM armour, and decodes it (not
 * verified). VMESH_ERR_CONFIG if unreadable, VMESH_ERR_CERT_INVALID if not a
 * well-formed certificate.
 */
export function readCertificateFile(path: string): Certificate {
  const bytes = readPublicFile(path, 'certificate file');
  try {
    return decodeCertificate(
      looksLikeCertificatePem(bytes) ? certificateFromPem(bytes.toString('utf8')) : bytes,
    );
  } catch (err) {
    throw invalid('malformed', `certificate file ${path}: ${(err as Error).message}`);
  }
}

/** Writes a certificate (mode 0644), raw or PEM-armoured; refuses to overwrite unless asked. */
export function writeCertificateFile(
  path: string,
  bytes: Uint8Array,
  options: { pem?: boolean; overwrite?: boolean } = {},
): void {
  writeFileAtomic(path, options.pem === true ? certificateToPem(bytes) : bytes, {
    mode: 0o644,
    overwrite: options.overwrite === true,
    what: 'certificate file',
    code: 'VMESH_ERR_CONFIG',
  });
}
