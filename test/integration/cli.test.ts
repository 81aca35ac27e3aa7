// The vmesh command as a user runs it: help, keygen, config errors, exit codes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeCertificateFile, writeIdentityFile, writeTrustFile } from '../../src/crypto/index.ts';
import { TestPki } from '../../src/testbed/index.ts';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'vmesh-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function vmesh(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    encoding: 'utf8',
    timeout: 30000,
    env: { ...process.env, VMESH_CONTROL: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--help lists every command with examples and exit codes', () => {
  const r = vmesh('--help');
  assert.equal(r.status, 0);
  for (const c of ['demo', 'keygen', 'up', 'status', 'resolve', 'connect', 'sim'])
    assert.match(r.stdout, new RegExp(`\\n  ${c}\\b`));
  assert.match(r.stdout, /Exit codes/);
  assert.match(vmesh('up', '--help').stdout, /Example/);
});

test('keygen writes a 0600 identity and prints its device id; refuses to overwrite without --force', () => {
  const file = join(dir, 'id.json');
  const r = vmesh('keygen', '--out', file, '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.match(JSON.parse(r.stdout).device, /^[0-9a-f]{32}$/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const again = vmesh('keygen', '--out', file);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /VMESH_ERR_KEY_FILE/);
});

test('a bad config exits 2 naming the bad field; a missing daemon exits 1 with its code', () => {
  const config = join(dir, 'bad.yaml');
  writeFileSync(config, 'name: A\nneighbours:\n  - not-an-address\n');
  const r = vmesh('up', '--config', config);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /VMESH_ERR_CONFIG/);
  assert.match(r.stderr, /neighbours\[0\]/);
  const s = vmesh('status', '--control', join(dir, 'nothing.sock'));
  assert.equal(s.status, 1);
  assert.match(s.stderr, /VMESH_ERR_DAEMON_UNREACHABLE/);
  const none = vmesh('status');
  assert.equal(none.status, 2);
});

/** Writes an identity, a certificate and the trust file for device `name`; returns the config lines. */
function admitted(name: string): string {
  const issued = pki.issue(name);
  writeIdentityFile(join(dir, `${name}.identity.json`), issued.identity, { overwrite: true });
  writeCertificateFile(join(dir, `${name}.cert`), issued.certificate, { overwrite: true });
  writeTrustFile(join(dir, 'trust.json'), pki.trust, { overwrite: true });
  return `identity: ${name}.identity.json\nsecurity:\n  trust: trust.json\n  certificate: ${name}.cert\n`;
}
const pki = new TestPki('cli-test');

test('routing.modules: a valid third-party protocol runs in the daemon; an invalid one stops it at start (exit 2)', async () => {
  const fixtures = fileURLToPath(new URL('../fixtures/protocols/', import.meta.url));
  const bad = join(dir, 'bad-module.yaml');
  writeFileSync(
    bad,
    `name: M\n${admitted('M')}routing:\n  modules: [${join(fixtures, 'bad-missing-method.mjs')}]\n`,
  );
  const r = vmesh('up', '--config', bad);
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /VMESH_ERR_CONFIG: routing module .*bad-missing-method\.mjs: not a valid routing protocol: the instance has no route\(\)/,
  );

  const good = join(dir, 'good-module.yaml');
  writeFileSync(
    good,
    `name: M\n${admitted('M')}protocols: [neighbours-only, link-state]\nlog: { level: warn }\nrouting:\n  modules: [${join(fixtures, 'neighbours-only.mjs')}]\n`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', main, 'up', '--config', good], {
    env: { ...process.env, VMESH_CONTROL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let status: { status: number | null; stdout: string } = { status: null, stdout: '' };
    for (let i = 0; i < 100; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      status = vmesh('status', '--config', good, '--json');
      if (status.status === 0) break;
    }
    assert.equal(status.status, 0);
    const snapshot = JSON.parse(status.stdout) as { device: { protocols: string[] } };
    assert.deepEqual(snapshot.device.protocols, ['neighbours-only', 'link-state']);
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
});

test('sim prints a table per protocol, --json the same figures, --svg a chart; a bad topology exits 2', () => {
  const svg = join(dir, 'sim.svg');
  const args = [
    'sim',
    '--topology',
    'ring:6',
    '--duration',
    '5',
    '--protocols',
    'link-state,flooding',
  ];
  const table = vmesh(...args, '--svg', svg);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /ring 6: 6 devices, 6 links/);
  assert.match(table.stdout, /\nlink-state +\d+/);
  assert.match(table.stdout, /\nflooding +\d+/);
  assert.match(table.stderr, /simulating flooding \(2\/2\)/);
  assert.match(readFileSync(svg, 'utf8'), /^<svg /);
  const json = vmesh(...args, '--json');
  const result = JSON.parse(json.stdout) as {
    results: { protocol: string; deliveryRatio: number }[];
  };
  assert.deepEqual(
    result.results.map((r) => r.protocol),
    ['link-state', 'flooding'],
  );
  const bad = vmesh('sim', '--topology', 'torus:5');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /VMESH_ERR_CONFIG: unknown topology "torus:5"/);
  const unknown = vmesh('sim', '--protocols', 'nope');
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /VMESH_ERR_UNKNOWN_PROTOCOL/);
});
