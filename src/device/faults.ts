/**
 * Fault injection for tests: a relay that tampers with what it forwards, so
 * that tests with real processes can show the end-to-end checks at work (a
 * compromised relay is the threat; this is how the tests play one). Off
 * unless the environment variable VMESH_TEST_FAULTS holds a JSON object, e.g.
 * {"flipEvery":7,"replayEvery":11,"forgeEvery":13}; the device then logs a
 * warning at start. Applies to DATA packets leaving relay VMs only:
 *
 * - flipEvery N: every Nth packet has one payload bit flipped;
 * - replayEvery N: every Nth packet is sent twice;
 * - forgeEvery N: every Nth packet has its header's packet number changed.
 *
 * Each injected fault is counted (`faults.injected{kind}`).
 */
import { VmeshError } from '../errors/index.ts';
import type { Counters } from '../observe/index.ts';
import { PacketKind, packetHeaderLength } from '../wire/index.ts';

export interface FaultSpec {
  flipEvery?: number;
  replayEvery?: number;
  forgeEvery?: number;
}

export function faultsFromEnv(value: string | undefined): FaultSpec | undefined {
  if (value === undefined || value === '') return undefined;
  let spec: unknown;
  try {
    spec = JSON.parse(value);
  } catch {
    throw new VmeshError('VMESH_ERR_CONFIG', 'VMESH_TEST_FAULTS is not JSON');
  }
  const out: FaultSpec = {};
  for (const key of ['flipEvery', 'replayEvery', 'forgeEvery'] as const) {
    const v = (spec as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `VMESH_TEST_FAULTS.${key} must be a positive integer`,
      );
    out[key] = v;
  }
  return out;
}

export class FaultInjector {
  private seen = 0;

  constructor(
    private readonly spec: FaultSpec,
    private readonly counters: Counters,
  ) {}

  /** What to send instead of `bytes` (a relay VM's outgoing packet). */
  apply(bytes: Uint8Array): Uint8Array[] {
    if (bytes[1] !== PacketKind.DATA) return [bytes];
    let header: number;
    try {
      header = packetHeaderLength(bytes);
    } catch {
      return [bytes];
    }
    const n = ++this.seen;
    const { flipEvery, replayEvery, forgeEvery } = this.spec;
    if (flipEvery !== undefined && n % flipEvery === 0 && bytes.length > header) {
      const copy = Uint8Array.from(bytes);
      copy[copy.length - 1] = (copy[copy.length - 1] as number) ^ 0x01;
      this.counters.inc('faults.injected', { kind: 'flip' });
      return [copy];
    }
    if (forgeEvery !== undefined && n % forgeEvery === 0) {
      const copy = Uint8Array.from(bytes);
      copy[59] = (copy[59] as number) ^ 0x80; // packet number, lowest byte
      this.counters.inc('faults.injected', { kind: 'forge' });
      return [copy];
    }
    if (replayEvery !== undefined && n % replayEvery === 0) {
      this.counters.inc('faults.injected', { kind: 'replay' });
      return [bytes, Uint8Array.from(bytes)];
    }
    return [bytes];
  }
}
