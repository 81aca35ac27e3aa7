// The hypervisor with real Workers (relay VMs with a minimal spec): the warm
// pool hands out booted Workers and refills, the cap refuses with
// VMESH_ERR_VM_LIMIT without counting idle pool Workers, and the test fault
// hook (VMESH_TEST_VM_FAULT, given here through the test-only `testFault`
// option) makes one VM crash, hang or leak so that the crash handling, the
// watchdog, the heap limit and the idle backstop can be seen ending that VM
// alone. Assertions are on counts, codes and records only, never on times.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { ErrorCode } from '../../../src/errors/index.ts';
import { VmeshError } from '../../../src/errors/index.ts';
import { Counters, silentLogger } from '../../../src/observe/index.ts';
import type { Logger } from '../../../src/observe/index.ts';
import { DEFAULT_VM_OPTIONS, Hypervisor } from '../../../src/vm/index.ts';
import type { HypervisorOptions, VmHandle, VmHandlers, VmSpec } from '../../../src/vm/index.ts';
import { vmFaultsFromEnv } from '../../../src/vm/hypervisor.ts';
import { WarmPool } from '../../../src/vm/pool.ts';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const D = 'd'.repeat(32);

let connections = 0;

/** A relay VM on B for a fresh connection A -> D. */
function relaySpec(): Omit<VmSpec, 'vmId'> {
  connections++;
  return {
    role: 'relay',
    connection: connections.toString(16).padStart(16, '0'),
    protocol: 1,
    protocolName: 'link-state',
    self: B,
    source: A,
    destination: D,
    avoid: [],
    fib: {
      protocol: 1,
      version: 1,
      self: B,
      mode: 'unicast',
      avoid: [],
      neighbours: [A, D],
      nextHops: { [A]: A, [D]: D },
    },
    options: DEFAULT_VM_OPTIONS,
  };
}

interface Exit {
  vm: VmHandle;
  reason: string;
  code: ErrorCode | undefined;
}

function recorder(): { handlers: VmHandlers; exits: Exit[] } {
  const exits: Exit[] = [];
  return {
    exits,
    handlers: {
      onMessage: () => undefined,
      onExit: (vm, reason, code) => exits.push({ vm, reason, code }),
    },
  };
}

async function withHypervisor(
  options: HypervisorOptions,
  run: (hv: Hypervisor, counters: Counters) => Promise<void>,
  logger: Logger = silentLogger,
): Promise<void> {
  const counters = new Counters();
  const hv = new Hypervisor(options, logger, counters);
  try {
    await run(hv, counters);
  } finally {
    await hv.destroy();
  }
}

async function until(check: () => boolean, what: string, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Garbage packets: the engine drops them as malformed, but the fault hook counts them. */
function garbage(vm: VmHandle, count: number): void {
  for (let i = 0; i < count; i++) vm.deliver({ peer: A, bytes: new Uint8Array([1, 2, 3, i]) });
}

test('the warm pool hands out booted Workers, and refills to poolSize after the spawns', async () => {
  await withHypervisor({ poolSize: 2 }, async (hv, counters) => {
    await hv.poolReady();
    assert.equal(hv.stats().poolIdle, 2);
    const { handlers } = recorder();
    const vms = [hv.spawn(relaySpec(), handlers), hv.spawn(relaySpec(), handlers)];
    // The pool is empty now (its refill is still booting): the third spawn is cold.
    vms.push(hv.spawn(relaySpec(), handlers));
    assert.deepEqual(
      vms.map((v) => v.record.pooled),
      [true, true, false],
    );
    assert.equal(new Set(vms.map((v) => v.record.threadId)).size, 3);
    await until(() => vms.every((v) => v.record.readyMs !== undefined), 'every VM to be ready');
    for (const v of vms) assert.ok((v.record.readyMs as number) >= 0);
    await hv.poolReady();
    const stats = hv.stats();
    assert.equal(stats.poolIdle, 2);
    assert.equal(stats.live, 3);
    assert.equal(stats.pooledSpawns, 2);
    assert.equal(stats.coldSpawns, 1);
    assert.equal(counters.get('vm.pool.hit'), 2);
    assert.equal(counters.get('vm.pool.miss'), 1);
    // The records (snapshots) say where each VM came from.
    assert.deepEqual(
      hv.records().map((r) => r.pooled),
      [true, true, false],
    );
    // The next spawn is pooled again.
    assert.equal(hv.spawn(relaySpec(), handlers).record.pooled, true);
  });
});

test('the cap refuses one VM too many with VMESH_ERR_VM_LIMIT; idle pool Workers do not count', async () => {
  await withHypervisor({ poolSize: 2, maxVms: 2 }, async (hv, counters) => {
    await hv.poolReady();
    const { handlers, exits } = recorder();
    const first = hv.spawn(relaySpec(), handlers);
    hv.spawn(relaySpec(), handlers);
    await hv.poolReady();
    // Two VMs and two idle pool Workers: four Workers, but only two VMs against the cap.
    assert.equal(hv.size, 2);
    assert.equal(hv.stats().poolIdle, 2);
    for (let i = 1; i <= 2; i++) {
      assert.throws(
        () => hv.spawn(relaySpec(), handlers),
        (err: unknown) => err instanceof VmeshError && err.code === 'VMESH_ERR_VM_LIMIT',
      );
      assert.equal(hv.stats().refused, i);
    }
    assert.equal(counters.get('vm.refused', { reason: 'limit' }), 2);
    assert.equal(hv.stats().poolIdle, 2, 'a refusal takes nothing from the pool');
    // Once a VM has ended there is room again.
    first.kill('test over');
    await first.exited;
    assert.equal(exits.length, 1);
    assert.equal(hv.spawn(relaySpec(), handlers).record.pooled, true);
    assert.equal(hv.size, 2);
  });
});

test('the watchdog terminates a hung VM with VMESH_ERR_VM_CRASHED; the other VM goes on', async () => {
  const warnings: string[] = [];
  const logger: Logger = {
    ...silentLogger,
    warn: (_obj, msg) => void warnings.push(msg ?? ''),
  };
  await withHypervisor(
    {
      poolSize: 1,
      watchdogIntervalMs: 50,
      watchdogTimeoutMs: 2000,
      testFault: '{"role":"relay","nth":2,"hangAfterPackets":2}',
    },
    async (hv, counters) => {
      assert.ok(warnings.some((w) => w.includes('VMESH_TEST_VM_FAULT')));
      const { handlers, exits } = recorder();
      const healthy = hv.spawn(relaySpec(), handlers);
      const hung = hv.spawn(relaySpec(), handlers);
      await until(
        () => healthy.record.readyMs !== undefined && hung.record.readyMs !== undefined,
        'both VMs to be ready',
      );
      garbage(healthy, 2);
      garbage(hung, 2);
      await hung.exited;
      assert.equal(exits.length, 1);
      assert.equal(exits[0]?.vm, hung);
      assert.equal(exits[0]?.code, 'VMESH_ERR_VM_CRASHED');
      assert.match(exits[0]?.reason ?? '', /^hung: no answer for \d+ ms$/);
      assert.match(hung.record.endReason ?? '', /^hung: no answer for \d+ ms$/);
      assert.equal(hv.stats().hung, 1);
      assert.equal(counters.get('vm.hung', { role: 'relay' }), 1);
      // The healthy VM still answers: asked to stop, it ends by its own 'done', not by the watchdog.
      assert.equal(healthy.alive, true);
      healthy.stop('VMESH_ERR_SHUTDOWN', 'test over');
      await healthy.exited;
      assert.equal(exits[1]?.vm, healthy);
      assert.doesNotMatch(exits[1]?.reason ?? '', /^hung/);
      assert.equal(hv.stats().hung, 1);
      assert.equal(hv.stats().crashed, 0);
    },
    logger,
  );
});

test('a VM that throws ends with "crashed: ..." and VMESH_ERR_VM_CRASHED; a fault for another role does not fire', async () => {
  await withHypervisor(
    {
      poolSize: 1,
      testFault: JSON.stringify([
        { role: 'destination', crashAfterPackets: 1 },
        { role: 'relay', nth: 2, crashAfterPackets: 3 },
      ]),
    },
    async (hv, counters) => {
      const { handlers, exits } = recorder();
      const spared = hv.spawn(relaySpec(), handlers);
      const victim = hv.spawn(relaySpec(), handlers);
      garbage(spared, 5);
      garbage(victim, 5);
      await victim.exited;
      assert.equal(exits.length, 1);
      assert.equal(exits[0]?.code, 'VMESH_ERR_VM_CRASHED');
      assert.match(exits[0]?.reason ?? '', /^crashed: test fault \(VMESH_TEST_VM_FAULT\)/);
      assert.equal(hv.stats().crashed, 1);
      assert.equal(counters.get('vm.crashed', { role: 'relay' }), 1);
      assert.equal(spared.alive, true);
    },
  );
});

test('a VM over its heap limit ends with "out-of-memory: ..." and VMESH_ERR_VM_CRASHED', async () => {
  await withHypervisor(
    { poolSize: 0, vmHeapMb: 32, vmYoungMb: 4, testFault: '{"leakAfterPackets":1}' },
    async (hv, counters) => {
      const { handlers, exits } = recorder();
      const vm = hv.spawn(relaySpec(), handlers);
      assert.equal(vm.record.pooled, false);
      garbage(vm, 1);
      await vm.exited;
      assert.equal(exits[0]?.code, 'VMESH_ERR_VM_CRASHED');
      assert.match(exits[0]?.reason ?? '', /^out-of-memory: /);
      assert.match(vm.record.endReason ?? '', /heap limit 32 MiB/);
      assert.equal(hv.stats().outOfMemory, 1);
      assert.equal(hv.stats().crashed, 1);
      assert.equal(counters.get('vm.out-of-memory', { role: 'relay' }), 1);
    },
  );
});

test('the idle backstop ends a relay VM that has sent nothing for maxIdleMs, and counts it', async () => {
  await withHypervisor(
    { poolSize: 1, watchdogIntervalMs: 20, maxIdleMs: 200 },
    async (hv, counters) => {
      const { handlers, exits } = recorder();
      const vm = hv.spawn(relaySpec(), handlers);
      await vm.exited;
      assert.equal(exits[0]?.code, 'VMESH_ERR_TIMEOUT');
      assert.match(exits[0]?.reason ?? '', /^idle: no message to the device for \d+ ms/);
      assert.equal(hv.stats().reaped, 1);
      assert.equal(hv.stats().hung, 0);
      assert.equal(counters.get('vm.reaped', { role: 'relay' }), 1);
    },
  );
});

test('after stopAll the pool is empty and spawn is refused with VMESH_ERR_SHUTDOWN', async () => {
  const hv = new Hypervisor({ poolSize: 1 }, silentLogger, new Counters());
  await hv.poolReady();
  const { handlers, exits } = recorder();
  hv.spawn(relaySpec(), handlers);
  await hv.stopAll('VMESH_ERR_SHUTDOWN', 'test over');
  assert.equal(exits.length, 1);
  assert.equal(hv.size, 0);
  assert.equal(hv.stats().poolIdle, 0);
  assert.equal(hv.stats().poolBooting, 0);
  assert.throws(
    () => hv.spawn(relaySpec(), handlers),
    (err: unknown) => err instanceof VmeshError && err.code === 'VMESH_ERR_SHUTDOWN',
  );
});

test('a pooled Worker that dies while idle is replaced and counted', async () => {
  const created: Worker[] = [];
  const counters = new Counters();
  const pool = new WarmPool({
    size: 2,
    create: () => {
      const w = new Worker(
        `const { parentPort } = require('node:worker_threads');
         parentPort.on('message', () => undefined);
         parentPort.postMessage({ t: 'booted' });`,
        { eval: true },
      );
      created.push(w);
      return w;
    },
    logger: silentLogger,
    counters,
  });
  try {
    await pool.full();
    assert.equal(created.length, 2);
    await (created[0] as Worker).terminate();
    await until(() => pool.stats().died === 1, 'the death to be seen');
    await pool.full();
    assert.deepEqual(pool.stats(), {
      idle: 2,
      booting: 0,
      booted: 3,
      taken: 0,
      died: 1,
      bootFailed: 0,
    });
    assert.equal(counters.get('vm.pool.died'), 1);
    const taken = pool.take();
    assert.ok(taken !== undefined && taken !== created[0]);
    await taken.terminate();
    assert.equal(pool.stats().died, 1, 'a Worker taken from the pool is no longer the pool’s');
  } finally {
    await pool.close();
  }
  assert.equal(pool.take(), undefined);
});

test('VMESH_TEST_VM_FAULT parsing: one object or a list; anything else is VMESH_ERR_CONFIG', () => {
  assert.equal(vmFaultsFromEnv(undefined), undefined);
  assert.equal(vmFaultsFromEnv(''), undefined);
  assert.deepEqual(vmFaultsFromEnv('{"crashAfterPackets":50}'), [{ crashAfterPackets: 50 }]);
  assert.deepEqual(
    vmFaultsFromEnv('[{"hangAfterPackets":5,"role":"source","nth":2},{"leakAfterPackets":1}]'),
    [{ hangAfterPackets: 5, role: 'source', nth: 2 }, { leakAfterPackets: 1 }],
  );
  for (const bad of [
    'nope',
    '7',
    '[1]',
    '{}',
    '{"role":"source"}',
    '{"crashAfterPackets":0}',
    '{"crashAfterPackets":1.5}',
    '{"crashAfterPackets":1,"role":"boss"}',
    '{"crashAfterPackets":1,"nth":0}',
    '{"crashAfterPacket":1}',
  ]) {
    assert.throws(
      () => vmFaultsFromEnv(bad),
      (err: unknown) => err instanceof VmeshError && err.code === 'VMESH_ERR_CONFIG',
      bad,
    );
  }
});
