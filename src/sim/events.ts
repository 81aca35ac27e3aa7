/** Scripted events for `vmesh sim --events FILE`: a YAML list, validated, times in seconds. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { VmeshError } from '../errors/index.ts';
import type { ScriptEvent } from './run.ts';

const at = z.number().min(0);
const eventSchema = z.union([
  z.object({ at, action: z.enum(['link-down', 'link-up']), a: z.string(), b: z.string() }).strict(),
  z.object({ at, action: z.enum(['crash', 'restart']), device: z.string() }).strict(),
  z.object({ at, action: z.literal('partition'), group: z.array(z.string()).min(1) }).strict(),
  z.object({ at, action: z.literal('heal') }).strict(),
]);

/**
 * Parses an events file:
 *
 *   - { at: 5, action: link-down, a: d0, b: d1 }
 *   - { at: 12, action: crash, device: d4 }
 *   - { at: 20, action: partition, group: [d0, d1, d2] }
 *   - { at: 30, action: heal }
 *
 * `at` is seconds after the churn phase starts.
 */
export function parseEvents(text: string, source: string): ScriptEvent[] {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `${source} is not valid YAML: ${(err as Error).message}`,
    );
  }
  const result = z.array(eventSchema).safeParse(raw ?? []);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  [${i.path.join('.')}]: ${i.message}`);
    throw new VmeshError('VMESH_ERR_CONFIG', `${source} is invalid:\n${lines.join('\n')}`);
  }
  return result.data.map((e) => ({ ...e, at: e.at * 1000 }) as ScriptEvent);
}

export function loadEvents(file: string): ScriptEvent[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `cannot read events file ${file}: ${(err as Error).message}`,
    );
  }
  return parseEvents(text, `events file ${file}`);
}
