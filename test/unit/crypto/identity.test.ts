import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  deriveDeviceId,
  generateIdentity,
  loadOrCreateIdentity,
  readIdentityFile,
  writeIdentityFile,
} from '../../../src/crypto/index.ts';

test('device ids: 32 hex characters, stable for the same keys, different for different keys', () => {
  const a = generateIdentity();
  const b = generateIdentity();
  assert.match(a.deviceId, /^[0-9a-f]{32}$/);
  assert.equal(deriveDeviceId(a.signingPublic, a.agreementPublic), a.deviceId);
  assert.notEqual(a.deviceId, b.deviceId);
  assert.notEqual(deriveDeviceId(a.signingPublic, b.agreementPublic), a.deviceId);
  assert.equal(a.signingPublic.length, 32);
  assert.equal(a.agreementPublic.length, 32);
});

test('identity files: mode 0600, round trip, no overwrite without asking, loose modes and garbage refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-id-'));
  try {
    const path = join(dir, 'sub', 'id.json');
    const id = generateIdentity();
    writeIdentityFile(path, id);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readIdentityFile(path).deviceId, id.deviceId);
    assert.throws(() => writeIdentityFile(path, generateIdentity()), {
      code: 'VMESH_ERR_KEY_FILE',
    });
    writeIdentityFile(path, generateIdentity(), { overwrite: true });
    assert.notEqual(readIdentityFile(path).deviceId, id.deviceId);
    chmodSync(path, 0o644);
    assert.throws(() => readIdentityFile(path), {
      code: 'VMESH_ERR_KEY_FILE',
      message: /chmod 600/,
    });
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"type":"vmesh-identity","version":1,"signingPrivateKey":"nope"}', {
      mode: 0o600,
    });
    assert.throws(() => readIdentityFile(bad), { code: 'VMESH_ERR_KEY_FILE' });
    assert.throws(() => readIdentityFile(join(dir, 'missing.json')), {
      code: 'VMESH_ERR_KEY_FILE',
    });
    const created = join(dir, 'new.json');
    const fresh = loadOrCreateIdentity(created);
    assert.equal(loadOrCreateIdentity(created).deviceId, fresh.deviceId);
    assert.equal(statSync(created).mode & 0o777, 0o600);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
