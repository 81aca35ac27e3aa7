/**
 * Which vmesh the benches run. Devices are processes started by the
 * testbed, which runs the CLI the way the testbed module itself was loaded:
 * compiled (dist/, what `vmesh up` and `npm run demo` run) or from the
 * TypeScript sources through tsx, where every VM Worker also registers tsx's
 * loader (a slower boot and a larger VM: those figures are not the product's).
 * The benches default to dist/ and refuse a dist/ older than src/.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { VmeshError } from '../../src/errors/index.ts';
import type * as FrontModule from '../../src/front/index.ts';
import type * as TestbedModule from '../../src/testbed/index.ts';
import { REPO_ROOT } from './report.ts';

export interface Vmesh {
  build: 'dist' | 'source';
  testbed: typeof TestbedModule;
  front: typeof FrontModule;
}

/** Newest modification time (ms) of the .ts files under `dir`, and which file. */
function newest(dir: string): { file: string; mtimeMs: number } {
  let best = { file: '', mtimeMs: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = newest(path);
      if (inner.mtimeMs > best.mtimeMs) best = inner;
    } else if (entry.name.endsWith('.ts')) {
      const m = statSync(path).mtimeMs;
      if (m > best.mtimeMs) best = { file: path, mtimeMs: m };
    }
  }
  return best;
}

/** Set once dist/ was found fresh: later benches and child benches of the same run skip the check. */
const CHECKED = 'VMESH_BENCH_DIST_CHECKED';

/**
 * Throws VMESH_ERR_CONFIG unless dist/ exists and was built after the last
 * change to src/. Checked once per run (at its start): what the devices then
 * run is that build, whatever src/ does meanwhile.
 */
export function checkDist(): void {
  if (process.env[CHECKED] === '1') return;
  const main = join(REPO_ROOT, 'dist', 'cli', 'main.js');
  let built: number;
  try {
    built = statSync(main).mtimeMs;
  } catch {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      'no compiled build (dist/cli/main.js): run `npm run build` first (`npm run bench` does), or pass --source',
    );
  }
  const src = newest(join(REPO_ROOT, 'src'));
  if (src.mtimeMs > built) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `dist/ is older than ${src.file.replace(REPO_ROOT, '')}: run \`npm run build\` first (\`npm run bench\` does), or pass --source`,
    );
  }
  process.env[CHECKED] = '1';
}

/** Loads the testbed and the front door from the chosen build. */
export async function loadVmesh(build: 'dist' | 'source'): Promise<Vmesh> {
  if (build === 'dist') checkDist();
  const file = (dir: string): string =>
    pathToFileURL(
      build === 'dist'
        ? join(REPO_ROOT, 'dist', dir, 'index.js')
        : join(REPO_ROOT, 'src', dir, 'index.ts'),
    ).href;
  const testbed = (await import(file('testbed'))) as typeof TestbedModule;
  const front = (await import(file('front'))) as typeof FrontModule;
  return { build, testbed, front };
}
