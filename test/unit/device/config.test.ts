import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, validateConfig } from '../../../src/device/index.ts';
import { VmeshError } from '../../../src/errors/index.ts';

/** The security section every config needs (files need not exist to validate). */
const security = { trust: 'trust.json', certificate: 'a.cert' };

function configError(raw: unknown): VmeshError {
  try {
    validateConfig(raw, '/base');
  } catch (err) {
    assert.ok(err instanceof VmeshError);
    assert.equal(err.code, 'VMESH_ERR_CONFIG');
    return err;
  }
  assert.fail('expected a config error');
}

test('a minimal config gets defaults and resolved paths', () => {
  const c = validateConfig({ name: 'A', security }, '/base');
  assert.equal(c.stateDir, '/base/.vmesh/A');
  assert.equal(c.identity, '/base/.vmesh/A/identity.json');
  assert.equal(c.control, '/base/.vmesh/A/control.sock');
  assert.equal(c.policy, 'diverse');
  assert.deepEqual(c.neighbours, []);
  assert.equal(c.limits.maxVms, 256);
  assert.equal(c.link.deadAfterMs, 4000);
  assert.equal(c.security.trust, '/base/trust.json');
  assert.equal(c.security.certificate, '/base/a.cert');
  assert.equal(c.security.rekeyAfterFrames, 1 << 20);
  assert.deepEqual(c.acl, {});
});

test('a config without security, or with a bad acl, is refused naming the field', () => {
  assert.match(configError({ name: 'A' }).message, /security/);
  assert.match(
    configError({ name: 'A', security: { trust: 'x' } }).message,
    /security\.certificate/,
  );
  assert.match(configError({ name: 'A', security, acl: { echo: [] } }).message, /acl\.echo/);
});

test('neighbours accept "host:port" strings and objects', () => {
  const c = validateConfig(
    { name: 'A', security, neighbours: ['127.0.0.1:1', { address: '[::1]:2' }] },
    '/b',
  );
  assert.deepEqual(c.neighbours, [{ address: '127.0.0.1:1' }, { address: '[::1]:2' }]);
});

test('errors name the bad field by its path', () => {
  assert.match(
    configError({ name: 'A', neighbours: ['127.0.0.1:1', 'nope'] }).message,
    /neighbours\[1\]/,
  );
  assert.match(
    configError({ name: 'A', listen: '127.0.0.1:99999' }).message,
    /listen: port must be/,
  );
  assert.match(configError({ name: 'A', limits: { maxVms: 0 } }).message, /limits\.maxVms/);
  assert.match(configError({ name: 'A', expose: { echo: 'x' } }).message, /expose\.echo/);
  assert.match(configError({ name: 'A', bogus: 1 }).message, /bogus|unrecognized/i);
  assert.match(configError({}).message, /name/);
  assert.match(configError({ name: 'A', policy: 'random' }).message, /policy/);
});

test('loadConfig reports unreadable files and bad YAML with VMESH_ERR_CONFIG', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmesh-config-'));
  try {
    assert.throws(() => loadConfig(join(dir, 'missing.yaml')), { code: 'VMESH_ERR_CONFIG' });
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'name: [unclosed');
    assert.throws(() => loadConfig(bad), { code: 'VMESH_ERR_CONFIG' });
    const good = join(dir, 'good.yaml');
    writeFileSync(
      good,
      'name: B\nlisten: 127.0.0.1:7000\nexpose:\n  echo: 127.0.0.1:9000\nsecurity:\n  trust: t.json\n  certificate: b.cert\n',
    );
    const c = loadConfig(good);
    assert.equal(c.name, 'B');
    assert.equal(c.stateDir, join(dir, '.vmesh/B'));
    assert.deepEqual(c.expose, { echo: '127.0.0.1:9000' });
    assert.equal(c.security.certificate, join(dir, 'b.cert'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
