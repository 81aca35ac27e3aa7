/**
 * Third-party routing protocols: a module named in the device config
 * (`routing.modules`) is imported and each descriptor it exports — the
 * default export, `protocol`, or `protocols` (an array) — is validated and
 * registered. A module that cannot be loaded or exports nothing valid stops
 * the device at start with VMESH_ERR_CONFIG saying why.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { VmeshError } from '../errors/index.ts';
import { validateDescriptor } from './registry.ts';
import type { ProtocolDescriptor } from './types.ts';

export async function loadProtocolModule(
  path: string,
  baseDir: string,
): Promise<ProtocolDescriptor[]> {
  const file = isAbsolute(path) ? path : resolve(baseDir, path);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `routing module ${file} could not be loaded: ${(err as Error).message}`,
    );
  }
  const found: unknown[] = [];
  if (mod.default !== undefined) found.push(mod.default);
  if (mod.protocol !== undefined) found.push(mod.protocol);
  if (Array.isArray(mod.protocols)) found.push(...(mod.protocols as unknown[]));
  if (found.length === 0) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `routing module ${file} exports no protocol (expected a default export, "protocol" or "protocols")`,
    );
  }
  return found.map((d, i) =>
    validateDescriptor(d, `routing module ${file}${found.length > 1 ? ` (#${i + 1})` : ''}`),
  );
}
