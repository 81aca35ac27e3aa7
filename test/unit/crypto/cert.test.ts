import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { sign } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { generateIdentity, writeIdentityFile } from '../../../src/crypto/index.ts';
import type { Identity } from '../../../src/crypto/index.ts';
import {
  NAME_PATTERN,
  certificateFromPem,
  certificateToPem,
  createCa,
  decodeCertificate,
  deriveNetworkId,
  issueCertificate,
  readCaFile,
  readCertificateFile,
  readTrustFile,
  trustOf,
  verifyCertificate,
  writeCaFile,
  writeCertificateFile,
  writeTrustFile,
} from '../../../src/crypto/index.ts';
import type { Ca, Role } from '../../../src/crypto/index.ts';
import {
  createRevocationList,
  decodeRevocationList,
  newerRevocationList,
  readRevocationListFile,
  verifyRevocationList,
} from '../../../src/crypto/index.ts';
import { VmeshError } from '../../../src/errors/index.ts';

const T0 = Date.UTC(2030, 0, 1);
const DAY = 86_400_000;
const FC = { seed: 20240611, numRuns: 200 };

const caA = createCa('home');
const caB = createCa('other');
const trustA = trustOf(caA);
const trustB = trustOf(caB);
const dev = generateIdentity();

function certFor(
  ca: Ca,
  id: Identity,
  extra: { roles?: Role[]; serial?: number; name?: string } = {},
): Uint8Array {
  return issueCertificate(ca, {
    name: extra.name ?? 'alice',
    signingPublic: id.signingPublic,
    agreementPublic: id.agreementPublic,
    notBefore: T0,
    notAfter: T0 + 30 * DAY,
    roles: extra.roles ?? ['relay'],
    ...(extra.serial === undefined ? {} : { serial: extra.serial }),
  });
}

/** Re-signs `signed` bytes (everything but the signature) with a CA key, to build odd but signed inputs. */
function resign(ca: Ca, signed: Uint8Array): Uint8Array {
  return Buffer.concat([signed, sign(null, signed, ca.signingPrivate)]);
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof VmeshError, `not a VmeshError: ${String(err)}`);
    return err.code;
  }
  return 'no error';
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-cert-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('issue and verify: fields round-trip, device id derived from the keys, keys checked', () => {
  const bytes = certFor(caA, dev, { roles: ['serve', 'relay'], serial: 0xdeadbeef });
  assert.equal(bytes.length, 171 + 5);
  const c = verifyCertificate(bytes, trustA, {
    now: T0 + DAY,
    keys: { signingPublic: dev.signingPublic, agreementPublic: dev.agreementPublic },
  });
  assert.equal(c.name, 'alice');
  assert.equal(c.deviceId, dev.deviceId);
  assert.equal(c.serial, 0xdeadbeef);
  assert.equal(c.networkId, caA.networkId);
  assert.equal(c.networkId, deriveNetworkId(caA.publicKey));
  assert.deepEqual(c.roles, ['relay', 'serve']);
  assert.equal(c.notBefore, T0);
  assert.equal(c.notAfter, T0 + 30 * DAY);
  assert.deepEqual(Buffer.from(c.raw), Buffer.from(bytes));
  assert.deepEqual(Buffer.from(c.signed), Buffer.from(bytes.subarray(0, bytes.length - 64)));
  // A decoded certificate verifies too, and the decoder keeps its own copy of the bytes.
  const copy = Buffer.from(bytes);
  const decoded = decodeCertificate(copy);
  copy.fill(0);
  assert.equal(verifyCertificate(decoded, trustA, { now: T0 }).deviceId, dev.deviceId);
  // Fields of a Certificate object count only as its signed bytes say.
  const edited = { ...decoded, name: 'mallory', roles: ['relay', 'serve'] as Role[] };
  assert.equal(verifyCertificate(edited, trustA, { now: T0 }).name, 'alice');
  // Random serials, default roles and notBefore.
  const d = decodeCertificate(
    issueCertificate(caA, {
      name: 'b',
      signingPublic: dev.signingPublic,
      agreementPublic: dev.agreementPublic,
      notAfter: Date.now() + DAY,
    }),
  );
  assert.deepEqual(d.roles, []);
  assert.ok(d.notBefore <= Date.now() && d.notBefore >= Date.now() - DAY);
  assert.ok(d.serial >= 0 && d.serial <= 0xffffffff);
});

test('issue: bad requests are VMESH_ERR_CONFIG', () => {
  const base = {
    name: 'alice',
    signingPublic: dev.signingPublic,
    agreementPublic: dev.agreementPublic,
    notBefore: T0,
    notAfter: T0 + DAY,
  };
  for (const bad of [
    { name: '' },
    { name: 'a b' },
    { name: '-lead' },
    { name: 'x'.repeat(65) },
    { name: 'é' },
    { notAfter: T0 },
    { notAfter: T0 - 1 },
    { notBefore: -1 },
    { notAfter: 2 ** 53 },
    { serial: 2 ** 32 },
    { serial: 1.5 },
    { roles: ['admin' as Role] },
    { signingPublic: new Uint8Array(31) },
  ]) {
    assert.equal(
      code(() => issueCertificate(caA, { ...base, ...bad })),
      'VMESH_ERR_CONFIG',
      JSON.stringify(bad),
    );
  }
  assert.equal(
    code(() => createCa('no spaces')),
    'VMESH_ERR_CONFIG',
  );
});

test("another network's certificate, or a forged signature, is VMESH_ERR_CERT_INVALID", () => {
  const other = certFor(caB, dev);
  assert.throws(
    () => verifyCertificate(other, trustA, { now: T0 }),
    (err: VmeshError) => {
      assert.equal(err.code, 'VMESH_ERR_CERT_INVALID');
      assert.equal(err.details?.reason, 'network');
      assert.match(err.message, /not [0-9a-f]{32} \(home\)/);
      return true;
    },
  );
  // B signs a certificate that claims A's network id.
  const claimed = Buffer.from(other);
  Buffer.from(caA.networkId, 'hex').copy(claimed, 4);
  const forged = resign(caB, claimed.subarray(0, claimed.length - 64));
  assert.throws(() => verifyCertificate(forged, trustA, { now: T0 }), {
    code: 'VMESH_ERR_CERT_INVALID',
    details: { reason: 'signature' },
    message: /does not carry a valid signature of the home CA/,
  });
});

test('keys that are not the certificate’s are VMESH_ERR_CERT_INVALID', () => {
  const bytes = certFor(caA, dev);
  const mallory = generateIdentity();
  for (const keys of [
    { signingPublic: mallory.signingPublic, agreementPublic: mallory.agreementPublic },
    { signingPublic: dev.signingPublic, agreementPublic: mallory.agreementPublic },
    { signingPublic: mallory.signingPublic, agreementPublic: dev.agreementPublic },
    { signingPublic: dev.signingPublic, agreementPublic: new Uint8Array(0) },
  ]) {
    assert.throws(() => verifyCertificate(bytes, trustA, { now: T0, keys }), {
      code: 'VMESH_ERR_CERT_INVALID',
      details: { reason: 'keys' },
    });
  }
});

test('validity period: inclusive bounds; before and after are VMESH_ERR_CERT_EXPIRED saying which', () => {
  const bytes = certFor(caA, dev);
  verifyCertificate(bytes, trustA, { now: T0 });
  verifyCertificate(bytes, trustA, { now: T0 + 30 * DAY });
  assert.throws(() => verifyCertificate(bytes, trustA, { now: T0 - 1 }), {
    code: 'VMESH_ERR_CERT_EXPIRED',
    message: /not valid yet: valid from 2030-01-01T00:00:00.000Z/,
    details: { which: 'not-yet-valid', notBefore: T0, notAfter: T0 + 30 * DAY, now: T0 - 1 },
  });
  assert.throws(() => verifyCertificate(bytes, trustA, { now: T0 + 30 * DAY + 1 }), {
    code: 'VMESH_ERR_CERT_EXPIRED',
    message: /expired at 2030-01-31T00:00:00.000Z/,
    details: { which: 'expired', notBefore: T0, notAfter: T0 + 30 * DAY, now: T0 + 30 * DAY + 1 },
  });
  assert.equal(
    code(() => verifyCertificate(bytes, trustA, { now: Number.NaN })),
    'VMESH_ERR_CERT_EXPIRED',
  );
});

test('revocation: a listed serial is VMESH_ERR_CERT_REVOKED; lists are signed, sorted, and the newest wins', () => {
  const bytes = certFor(caA, dev, { serial: 77 });
  const list = verifyRevocationList(createRevocationList(caA, [900, 77, 5, 77], T0), trustA);
  assert.deepEqual(list.serials, [5, 77, 900]);
  assert.ok(list.has(5) && list.has(77) && list.has(900));
  assert.ok(!list.has(6) && !list.has(0) && !list.has(901));
  assert.throws(() => verifyCertificate(bytes, trustA, { now: T0, revocations: list }), {
    code: 'VMESH_ERR_CERT_REVOKED',
    message: /serial 77/,
  });
  const clean = verifyRevocationList(createRevocationList(caA, [], T0), trustA);
  assert.equal(clean.serials.length, 0);
  verifyCertificate(bytes, trustA, { now: T0, revocations: clean });
  // Revoked wins over expired: the operator learns the real state.
  assert.equal(
    code(() => verifyCertificate(bytes, trustA, { now: T0 + 99 * DAY, revocations: list })),
    'VMESH_ERR_CERT_REVOKED',
  );
  // Another network's list.
  const listB = verifyRevocationList(createRevocationList(caB, [77], T0), trustB);
  assert.equal(
    code(() => verifyRevocationList(listB.raw, trustA)),
    'VMESH_ERR_CERT_INVALID',
  );
  assert.equal(
    code(() => verifyCertificate(bytes, trustA, { now: T0, revocations: listB })),
    'VMESH_ERR_CERT_INVALID',
  );
  // Newest.
  const later = verifyRevocationList(createRevocationList(caA, [1], T0 + 1), trustA);
  assert.equal(newerRevocationList(undefined, list), list);
  assert.equal(newerRevocationList(list, later), later);
  assert.equal(newerRevocationList(later, list), later);
  assert.equal(newerRevocationList(list, clean), list); // same time: more serials
  assert.equal(newerRevocationList(clean, list), list);
  assert.equal(
    code(() => newerRevocationList(list, listB)),
    'VMESH_ERR_CERT_INVALID',
  );
  // Bad input to the issuer.
  assert.equal(
    code(() => createRevocationList(caA, [2 ** 32], T0)),
    'VMESH_ERR_CONFIG',
  );
  assert.equal(
    code(() => createRevocationList(caA, [1], -1)),
    'VMESH_ERR_CONFIG',
  );
});

test('decoders are strict: magic, version, length, name, roles, period, serial order', () => {
  const bytes = Buffer.from(certFor(caA, dev));
  const signedPart = (b: Buffer): Buffer => b.subarray(0, b.length - 64);
  const edit = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(signedPart(bytes));
    f(b);
    return Buffer.from(resign(caA, b));
  };
  assert.equal(
    code(() => decodeCertificate(new Uint8Array(0))),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeCertificate(Buffer.concat([bytes, Buffer.of(0)]))),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeCertificate(bytes.subarray(0, bytes.length - 1))),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeCertificate(edit((b) => (b[3] = 2)))),
    'VMESH_ERR_UNSUPPORTED_VERSION',
  );
  assert.equal(
    code(() => decodeCertificate(edit((b) => b.writeUInt16BE(4, 40)))),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeCertificate(edit((b) => (b[107] = 0x20)))),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeCertificate(edit((b) => b.writeBigUInt64BE(BigInt(T0), 32)))),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeCertificate(edit((b) => b.writeBigUInt64BE(2n ** 53n, 32)))),
    'VMESH_ERR_MALFORMED',
  );
  // Names of 64 bytes are fine, 0 is not.
  assert.equal(decodeCertificate(certFor(caA, dev, { name: 'n'.repeat(64) })).name.length, 64);
  assert.equal(
    code(() => decodeCertificate(edit((b) => (b[106] = 0)))),
    'VMESH_ERR_MALFORMED',
  );
  // Revocation lists.
  const list = Buffer.from(createRevocationList(caA, [1, 2], T0));
  const unsorted = Buffer.from(list.subarray(0, list.length - 64));
  unsorted.writeUInt32BE(3, 32);
  assert.equal(
    code(() => decodeRevocationList(resign(caA, unsorted))),
    'VMESH_ERR_MALFORMED',
  );
  const dup = Buffer.from(unsorted);
  dup.writeUInt32BE(2, 32);
  assert.equal(
    code(() => decodeRevocationList(resign(caA, dup))),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeRevocationList(list.subarray(0, 50))),
    'VMESH_ERR_MALFORMED',
  );
  const v2 = Buffer.from(list);
  v2[3] = 2;
  assert.equal(
    code(() => decodeRevocationList(v2)),
    'VMESH_ERR_UNSUPPORTED_VERSION',
  );
  assert.equal(
    code(() => decodeRevocationList(bytes)),
    'VMESH_ERR_MALFORMED',
  );
  assert.equal(
    code(() => decodeCertificate(list)),
    'VMESH_ERR_MALFORMED',
  );
});

function flipped(bytes: Buffer, bit: number): Buffer {
  const b = Buffer.from(bytes);
  b.writeUInt8(b.readUInt8(bit >> 3) ^ (0x80 >> (bit & 7)), bit >> 3);
  return b;
}

test('a flipped bit anywhere in a certificate or revocation list is rejected', () => {
  const cert = Buffer.from(certFor(caA, dev, { roles: ['relay', 'serve'], name: 'a-1.b_c' }));
  for (let bit = 0; bit < cert.length * 8; bit++) {
    const b = flipped(cert, bit);
    assert.equal(
      code(() => verifyCertificate(b, trustA, { now: T0 })),
      'VMESH_ERR_CERT_INVALID',
      `bit ${bit}`,
    );
  }
  const list = Buffer.from(createRevocationList(caA, [3, 0xffffffff], T0));
  for (let bit = 0; bit < list.length * 8; bit++) {
    const b = flipped(list, bit);
    assert.equal(
      code(() => verifyRevocationList(b, trustA)),
      'VMESH_ERR_CERT_INVALID',
      `bit ${bit}`,
    );
  }
});

const name = fc.stringMatching(NAME_PATTERN);
const roles = fc.subarray<Role>(['relay', 'serve']);

test('property: issue then decode gives back every field', () => {
  fc.assert(
    fc.property(
      name,
      roles,
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }),
      fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      (n, r, serial, notBefore, span) => {
        const notAfter = Math.min(Number.MAX_SAFE_INTEGER, notBefore + span);
        const bytes = issueCertificate(caA, {
          name: n,
          signingPublic: dev.signingPublic,
          agreementPublic: dev.agreementPublic,
          notBefore,
          notAfter,
          roles: r,
          serial,
        });
        const c = verifyCertificate(bytes, trustA, { now: notBefore });
        assert.deepEqual(
          [c.name, c.roles, c.serial, c.notBefore, c.notAfter, c.deviceId],
          [n, r, serial, notBefore, notAfter, dev.deviceId],
        );
      },
    ),
    FC,
  );
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 50 }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      (serials, issuedAt) => {
        const list = verifyRevocationList(createRevocationList(caA, serials, issuedAt), trustA);
        assert.deepEqual(
          list.serials,
          [...new Set(serials)].sort((a, b) => a - b),
        );
        assert.equal(list.issuedAt, issuedAt);
        for (const s of serials) assert.ok(list.has(s));
      },
    ),
    FC,
  );
});

test('property: decoders and verifiers throw only their typed VmeshErrors on arbitrary bytes', () => {
  const cert = Buffer.from(certFor(caA, dev));
  const list = Buffer.from(createRevocationList(caA, [1, 2, 3], T0));
  // Arbitrary bytes, bytes behind a valid header, and valid objects with random edits.
  const inputs = (valid: Buffer): fc.Arbitrary<Uint8Array> =>
    fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((rest) => Buffer.concat([valid.subarray(0, 4), rest])),
      fc
        .tuple(
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
          fc.integer({ min: -8, max: 8 }),
        )
        .map(([edits, resize]) => {
          const b = Buffer.concat([valid, Buffer.alloc(Math.max(0, resize))]).subarray(
            0,
            valid.length + Math.min(0, resize),
          );
          for (const [at, v] of edits) b[at % b.length] = v;
          return b;
        }),
    );
  const decodeCodes = new Set(['VMESH_ERR_MALFORMED', 'VMESH_ERR_UNSUPPORTED_VERSION']);
  fc.assert(
    fc.property(inputs(cert), (bytes) => {
      const c = code(() => decodeCertificate(bytes));
      assert.ok(c === 'no error' || decodeCodes.has(c), c);
      const v = code(() => verifyCertificate(bytes, trustA, { now: T0 }));
      assert.ok(v === 'no error' || v === 'VMESH_ERR_CERT_INVALID', v);
      if (v === 'no error') assert.deepEqual(Buffer.from(bytes), cert);
      const p = code(() => certificateFromPem(Buffer.from(bytes).toString('latin1')));
      assert.ok(p === 'no error' || p === 'VMESH_ERR_MALFORMED', p);
    }),
    FC,
  );
  fc.assert(
    fc.property(inputs(list), (bytes) => {
      const c = code(() => decodeRevocationList(bytes));
      assert.ok(c === 'no error' || decodeCodes.has(c), c);
      const v = code(() => verifyRevocationList(bytes, trustA));
      assert.ok(v === 'no error' || v === 'VMESH_ERR_CERT_INVALID', v);
      if (v === 'no error') assert.deepEqual(Buffer.from(bytes), list);
    }),
    FC,
  );
});

test('PEM armour: round trip, lines of 64, CRLF and whitespace accepted, junk refused', () => {
  const bytes = certFor(caA, dev, { name: 'pem-device' });
  const pem = certificateToPem(bytes);
  assert.match(pem, /^-----BEGIN VMESH CERTIFICATE-----\n/);
  assert.match(pem, /\n-----END VMESH CERTIFICATE-----\n$/);
  for (const line of pem.split('\n')) assert.ok(line.length <= 64 || line.startsWith('-----'));
  assert.deepEqual(Buffer.from(certificateFromPem(pem)), Buffer.from(bytes));
  assert.deepEqual(
    Buffer.from(certificateFromPem(`\r\n  ${pem.replaceAll('\n', '\r\n')}  \n`)),
    Buffer.from(bytes),
  );
  const body = pem.split('\n')[1] as string;
  for (const bad of [
    pem.replace(body, `${body.slice(0, 10)}*${body.slice(11)}`),
    pem.replace('BEGIN VMESH', 'BEGIN X'),
    pem.replace('-----END VMESH CERTIFICATE-----', ''),
    `junk\n${pem}`,
    '-----BEGIN VMESH CERTIFICATE-----\nQR==\n-----END VMESH CERTIFICATE-----', // non-canonical
    '-----BEGIN VMESH CERTIFICATE-----\nQQ=\n-----END VMESH CERTIFICATE-----',
  ]) {
    assert.equal(
      code(() => certificateFromPem(bad)),
      'VMESH_ERR_MALFORMED',
      bad,
    );
  }
  withDir((dir) => {
    writeCertificateFile(join(dir, 'a.cert'), bytes);
    writeCertificateFile(join(dir, 'a.pem'), bytes, { pem: true });
    assert.equal(readFileSync(join(dir, 'a.pem'), 'utf8'), pem);
    assert.equal(statSync(join(dir, 'a.cert')).mode & 0o777, 0o644);
    assert.equal(readCertificateFile(join(dir, 'a.cert')).name, 'pem-device');
    assert.equal(readCertificateFile(join(dir, 'a.pem')).name, 'pem-device');
    assert.equal(
      code(() => writeCertificateFile(join(dir, 'a.cert'), bytes)),
      'VMESH_ERR_CONFIG',
    );
    writeCertificateFile(join(dir, 'a.cert'), bytes, { overwrite: true });
    writeFileSync(join(dir, 'junk.cert'), 'hello');
    assert.equal(
      code(() => readCertificateFile(join(dir, 'junk.cert'))),
      'VMESH_ERR_CERT_INVALID',
    );
    assert.equal(
      code(() => readCertificateFile(join(dir, 'missing.cert'))),
      'VMESH_ERR_CONFIG',
    );
  });
});

test('CA and trust files: CA mode 0600 and refused when 0644, trust checked, no private key leaks', () => {
  withDir((dir) => {
    const caPath = join(dir, 'sub', 'ca.json');
    writeCaFile(caPath, caA);
    assert.equal(statSync(caPath).mode & 0o777, 0o600);
    const back = readCaFile(caPath);
    assert.equal(back.networkId, caA.networkId);
    assert.equal(back.network, 'home');
    assert.equal(
      code(() => writeCaFile(caPath, caB)),
      'VMESH_ERR_KEY_FILE',
    );
    assert.equal(readCaFile(caPath).networkId, caA.networkId);
    writeCaFile(caPath, caB, { overwrite: true });
    assert.equal(statSync(caPath).mode & 0o777, 0o600);
    assert.equal(readCaFile(caPath).networkId, caB.networkId);
    chmodSync(caPath, 0o644);
    assert.throws(() => readCaFile(caPath), { code: 'VMESH_ERR_KEY_FILE', message: /chmod 600/ });
    assert.equal(
      code(() => readCaFile(join(dir, 'missing.json'))),
      'VMESH_ERR_KEY_FILE',
    );
    const bad = join(dir, 'bad.json');
    for (const text of [
      'nope',
      '[]',
      '{"type":"vmesh-identity","version":1}',
      '{"type":"vmesh-ca","version":1,"network":"x","signingPrivateKey":"nope"}',
    ]) {
      writeFileSync(bad, text, { mode: 0o600 });
      assert.equal(
        code(() => readCaFile(bad)),
        'VMESH_ERR_KEY_FILE',
        text,
      );
    }
    // An X25519 key is not a CA key.
    const x = JSON.parse(readFileSync(caPath, 'utf8')) as Record<string, unknown>;
    const id = join(dir, 'id.json');
    writeIdentityFile(id, dev);
    x.signingPrivateKey = (
      JSON.parse(readFileSync(id, 'utf8')) as Record<string, string>
    ).agreementPrivateKey;
    delete x.networkId;
    writeFileSync(bad, JSON.stringify(x), { mode: 0o600 });
    assert.equal(
      code(() => readCaFile(bad)),
      'VMESH_ERR_KEY_FILE',
    );
    // Identity files follow the same rule.
    assert.equal(statSync(id).mode & 0o777, 0o600);

    const trustPath = join(dir, 'trust.json');
    writeTrustFile(trustPath, trustA);
    const t = readTrustFile(trustPath);
    assert.equal(t.networkId, trustA.networkId);
    assert.deepEqual(Buffer.from(t.caPublicKey), Buffer.from(caA.publicKey));
    verifyCertificate(certFor(caA, dev), t, { now: T0 });
    const json = JSON.parse(readFileSync(trustPath, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(json).sort(), [
      'caPublicKey',
      'network',
      'networkId',
      'type',
      'version',
    ]);
    writeFileSync(trustPath, JSON.stringify({ ...json, networkId: caB.networkId }));
    assert.throws(() => readTrustFile(trustPath), {
      code: 'VMESH_ERR_CONFIG',
      message: /networkId/,
    });
    assert.equal(
      code(() => readTrustFile(join(dir, 'missing.json'))),
      'VMESH_ERR_CONFIG',
    );

    assert.doesNotMatch(JSON.stringify(caA), /PRIVATE/);
    assert.doesNotMatch(JSON.stringify(trustA), /PRIVATE/);
    assert.doesNotMatch(readFileSync(join(dir, 'trust.json'), 'utf8'), /PRIVATE/);
  });
});

test('revocation list files: read and verified, refused for another network', () => {
  withDir((dir) => {
    const path = join(dir, 'crl.bin');
    writeFileSync(path, createRevocationList(caA, [9], T0));
    assert.ok(readRevocationListFile(path, trustA).has(9));
    assert.equal(
      code(() => readRevocationListFile(path, trustB)),
      'VMESH_ERR_CERT_INVALID',
    );
    assert.equal(
      code(() => readRevocationListFile(join(dir, 'none'), trustA)),
      'VMESH_ERR_CONFIG',
    );
  });
});

// --- the CLI, end to end ---------------------------------------------------------------

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// A tiny `vmesh` with only the ca commands, and main.ts's top-level catch.
const CLI = `
import { Command } from 'commander';
import { registerCaCommands } from './src/cli/ca.ts';
import { toVmeshError } from './src/errors/index.ts';
const program = new Command().name('vmesh').showHelpAfterError();
registerCaCommands(program);
program.parseAsync(JSON.parse(process.env.VMESH_TEST_ARGS), { from: 'user' }).catch((err) => {
  const e = toVmeshError(err);
  console.error('vmesh: ' + e.code + ': ' + e.message);
  process.exitCode = e.code === 'VMESH_ERR_CONFIG' ? 2 : 1;
});
`;

function vmesh(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CLI], {
    cwd: ROOT,
    env: { ...process.env, VMESH_TEST_ARGS: JSON.stringify(['ca', ...args]) },
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('CLI: init, sign, show, revoke, trust end to end with exit codes and messages', () => {
  withDir((dir) => {
    const p = (f: string): string => join(dir, f);
    let r = vmesh('init', '--network', 'lab', '--out', p('ca.json'), '--trust', p('trust.json'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /network lab, id [0-9a-f]{32}/);
    assert.equal(statSync(p('ca.json')).mode & 0o777, 0o600);
    const trust = readTrustFile(p('trust.json'));
    assert.equal(trust.network, 'lab');

    r = vmesh('init', '--network', 'lab', '--out', p('ca.json'), '--trust', p('t2.json'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /VMESH_ERR_CONFIG: .*ca\.json already exists \(use --force/);
    assert.ok(!existsSync(p('t2.json')));
    r = vmesh('init', '--network', 'bad name', '--out', p('x.json'), '--trust', p('y.json'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /network name "bad name" is not valid/);
    r = vmesh('init', '--out', p('x.json'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /required option/);

    // The CA file never shows its private key.
    r = vmesh('show', p('ca.json'), '--trust', p('trust.json'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /CA key file v1/);
    assert.match(r.stdout, /verifies +yes/);
    assert.doesNotMatch(r.stdout + r.stderr, /PRIVATE|BEGIN/);

    const a = generateIdentity();
    writeIdentityFile(p('a.json'), a);
    r = vmesh('show', p('a.json'), '--json');
    assert.equal(r.status, 0, r.stderr);
    const shownId = JSON.parse(r.stdout) as { device: string; public: string };
    assert.equal(shownId.device, a.deviceId);
    assert.doesNotMatch(r.stdout, /PRIVATE/);

    r = vmesh(
      'sign',
      '--ca',
      p('ca.json'),
      '--identity',
      p('a.json'),
      '--name',
      'a',
      '--roles',
      'relay,serve',
      '--out',
      p('a.cert'),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`device id ${a.deviceId}`));
    assert.match(r.stdout, /serial +\d+/);
    assert.match(r.stdout, /expires +\d{4}-/);
    const certA = verifyCertificate(readFileSync(p('a.cert')), trust, { now: Date.now() });
    assert.deepEqual(certA.roles, ['relay', 'serve']);
    assert.ok(Math.abs(certA.notAfter - Date.now() - 365 * DAY) < DAY);

    const b = generateIdentity();
    r = vmesh(
      'sign',
      '--ca',
      p('ca.json'),
      '--public',
      shownIdOf(b),
      '--name',
      'b',
      '--days',
      '7',
      '--serial',
      '42',
      '--out',
      p('b.pem'),
      '--pem',
      '--json',
    );
    assert.equal(r.status, 0, r.stderr);
    const signedB = JSON.parse(r.stdout) as { device: string; serial: number; roles: string[] };
    assert.deepEqual([signedB.device, signedB.serial, signedB.roles], [b.deviceId, 42, []]);
    assert.match(readFileSync(p('b.pem'), 'utf8'), /^-----BEGIN VMESH CERTIFICATE-----/);

    // Bad sign input: exit 2 with the reason.
    const signArgs = ['sign', '--ca', p('ca.json'), '--out', p('c.cert')];
    for (const [extra, message] of [
      [['--name', 'c'], /exactly one of --identity FILE or --public HEX/],
      [['--name', 'c', '--identity', p('a.json'), '--public', shownIdOf(b)], /exactly one of/],
      [['--name', 'c', '--public', 'abc'], /--public: expected 128 hex/],
      [['--name', 'c', '--public', shownIdOf(b), '--roles', 'relay,admin'], /unknown role "admin"/],
      [['--name', 'c', '--public', shownIdOf(b), '--days', '0'], /--days/],
      [['--name', 'c', '--public', shownIdOf(b), '--serial', '-1'], /--serial/],
      [['--name', 'c d', '--public', shownIdOf(b)], /device name "c d" is not valid/],
      [['--public', shownIdOf(b)], /required option '-n, --name/],
    ] as const) {
      r = vmesh(...signArgs, ...extra);
      assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.ok(!existsSync(p('c.cert')));
    r = vmesh(
      'sign',
      '--ca',
      p('a.cert'),
      '--public',
      shownIdOf(b),
      '--name',
      'c',
      '--out',
      p('c.cert'),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /VMESH_ERR_KEY_FILE/);

    r = vmesh('show', p('a.cert'), '--trust', p('trust.json'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /certificate v1 \(raw, \d+ bytes\)/);
    assert.match(r.stdout, /roles +relay, serve/);
    assert.match(r.stdout, /verifies +yes/);

    // Revoke by certificate, then by serial; the list grows and is re-signed later.
    r = vmesh('revoke', '--ca', p('ca.json'), '--crl', p('crl.bin'), '--cert', p('a.cert'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`serial ${certA.serial} \\("a"\\) revoked: .* 1 serial,`));
    const first = readRevocationListFile(p('crl.bin'), trust);
    assert.ok(first.has(certA.serial));
    r = vmesh('revoke', '--ca', p('ca.json'), '--crl', p('crl.bin'), '--serial', '42', '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { revoked: number }).revoked, 2);
    const second = readRevocationListFile(p('crl.bin'), trust);
    assert.ok(second.issuedAt > first.issuedAt);
    assert.equal(newerRevocationList(first, second), second);
    r = vmesh('revoke', '--ca', p('ca.json'), '--crl', p('crl.bin'), '--serial', '42');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /already on/);
    assert.equal(readRevocationListFile(p('crl.bin'), trust).issuedAt, second.issuedAt);
    r = vmesh('revoke', '--ca', p('ca.json'), '--crl', p('crl.bin'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /exactly one of --cert FILE or --serial N/);

    r = vmesh('show', p('b.pem'), '--trust', p('trust.json'), '--crl', p('crl.bin'));
    assert.equal(r.status, 1);
    assert.match(r.stdout, /certificate v1 \(PEM/);
    assert.match(r.stdout, /verifies +NO: VMESH_ERR_CERT_REVOKED/);
    r = vmesh('show', p('crl.bin'), '--trust', p('trust.json'), '--json');
    assert.equal(r.status, 0, r.stderr);
    const shownList = JSON.parse(r.stdout) as { serials: number[]; verified: { ok: boolean } };
    assert.deepEqual(
      shownList.serials,
      [42, certA.serial].sort((x, y) => x - y),
    );
    assert.equal(shownList.verified.ok, true);
    r = vmesh('show', p('crl.bin'), '--crl', p('crl.bin'));
    assert.equal(r.status, 2);

    // Another network: the certificate does not verify, nor can its serial be revoked here.
    r = vmesh('init', '--network', 'other', '--out', p('ca2.json'), '--trust', p('trust2.json'));
    assert.equal(r.status, 0, r.stderr);
    r = vmesh('show', p('a.cert'), '--trust', p('trust2.json'));
    assert.equal(r.status, 1);
    assert.match(r.stdout, /verifies +NO: VMESH_ERR_CERT_INVALID: .*not [0-9a-f]{32} \(other\)/);
    r = vmesh('revoke', '--ca', p('ca2.json'), '--crl', p('crl2.bin'), '--cert', p('a.cert'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /VMESH_ERR_CERT_INVALID/);
    assert.ok(!existsSync(p('crl2.bin')));
    r = vmesh('revoke', '--ca', p('ca2.json'), '--crl', p('crl.bin'), '--serial', '1');
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /VMESH_ERR_CERT_INVALID: revocation list .* not signed|VMESH_ERR_CERT_INVALID: revocation list/,
    );

    // The trust file again from the CA.
    r = vmesh('trust', '--ca', p('ca.json'), '--out', p('trust-again.json'));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readTrustFile(p('trust-again.json')).networkId, trust.networkId);

    // Loose CA key file, unknown files, unknown commands.
    chmodSync(p('ca.json'), 0o644);
    r = vmesh(
      'sign',
      '--ca',
      p('ca.json'),
      '--identity',
      p('a.json'),
      '--name',
      'a',
      '--out',
      p('a2.cert'),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /VMESH_ERR_KEY_FILE: .*chmod 600/);
    writeFileSync(p('junk'), 'hello');
    r = vmesh('show', p('junk'));
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /is not a vmesh certificate, revocation list, trust, CA or identity file/,
    );
    r = vmesh('show', p('nothing-here'));
    assert.equal(r.status, 2);
    r = vmesh('frobnicate');
    assert.equal(r.status, 2);
    r = vmesh('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Examples:/);
  });
});

function shownIdOf(id: Identity): string {
  return Buffer.concat([id.signingPublic, id.agreementPublic]).toString('hex');
}
