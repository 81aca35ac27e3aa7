#!/usr/bin/env node
// Runs node:test through tsx on every *.test.ts under the given folders
// (default: test/unit, test/compliance and test/integration; root-only and browser tests live
// in test/root and test/browser and are run by .ci/run). Node 20's test
// runner does not expand globs, so this script lists the files itself.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const roots = args.length > 0 ? args : ['test/unit', 'test/compliance', 'test/integration'];
const files = [];
function walk(path) {
  if (!existsSync(path)) return;
  if (statSync(path).isFile()) {
    if (path.endsWith('.test.ts')) files.push(path);
    return;
  }
  for (const name of readdirSync(path).sort()) walk(join(path, name));
}
for (const root of roots) walk(root);
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}`);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
