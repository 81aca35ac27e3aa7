// The vmesh command as a user runs it: help, keygen, config errors, exit codes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

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
  for (const c of ['demo', 'keygen', 'up', 'status', 'resolve', 'connect'])
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
