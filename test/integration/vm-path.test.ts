// Three VM engines (source on A, relay on B, destination on D) wired in one
// process with lossless in-order delivery, a real TCP echo service behind D:
// the data path of one vconn without Workers or links, so a failure here
// points at the engine or the transport rather than at process plumbing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { ForwardingTable } from '../../src/routing/index.ts';
import { startEchoServer } from '../../src/testbed/index.ts';
import { VmEngine } from '../../src/vm/engine.ts';
import { DEFAULT_VM_OPTIONS } from '../../src/vm/index.ts';
import type { VmRole, VmSpec, VmToDevice } from '../../src/vm/index.ts';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const D = 'd'.repeat(32);
const CONN = 'fedcba9876543210';

test('source -> relay -> destination engines carry a stream to a real service and back, with the traced path', async () => {
  const echo = await startEchoServer();
  const engines = new Map<string, VmEngine>();
  const appEvents: VmToDevice[] = [];
  const received: Buffer[] = [];
  let ended = false;
  const timers = new Map<string, NodeJS.Timeout>();
  const now = (): number => performance.now();
  const make = (
    self: string,
    role: VmRole,
    nextHops: Record<string, string>,
    neighbours: string[],
  ): VmEngine => {
    const fib: ForwardingTable = {
      protocol: 1,
      version: 1,
      self,
      mode: 'unicast',
      avoid: [],
      neighbours,
      nextHops,
    };
    const spec: VmSpec = {
      vmId: self.slice(0, 4),
      role,
      connection: CONN,
      protocol: 1,
      protocolName: 'link-state',
      self,
      source: A,
      destination: D,
      avoid: [],
      fib,
      options: DEFAULT_VM_OPTIONS,
      ...(role === 'source' ? { open: { service: 'echo', app: 'test' } } : {}),
      ...(role === 'destination' ? { services: { echo: echo.address } } : {}),
    };
    const engine: VmEngine = new VmEngine(spec, {
      now,
      wake: (at) => {
        const old = timers.get(self);
        if (old !== undefined) clearTimeout(old);
        if (at !== undefined)
          timers.set(
            self,
            setTimeout(() => engine.onTimer(), Math.max(0, at - now())),
          );
      },
      post: (m) => {
        if (m.t === 'send') {
          // Deliver asynchronously, as the device and links would.
          for (const item of m.items) {
            setImmediate(() =>
              engines
                .get(item.peer)
                ?.onMessage({ t: 'packets', items: [{ peer: self, bytes: item.bytes }] }),
            );
          }
        } else if (role === 'source') {
          appEvents.push(m);
          if (m.t === 'app-data') {
            received.push(Buffer.from(m.data));
            setImmediate(() => engine.onMessage({ t: 'app-consumed', bytes: m.data.length }));
          }
          if (m.t === 'app-end') ended = true;
        }
      },
    });
    engines.set(self, engine);
    return engine;
  };
  make(D, 'destination', { [A]: B }, [B]);
  make(B, 'relay', { [A]: A, [D]: D }, [A, D]);
  const source = make(A, 'source', { [D]: B }, [B]);
  for (const e of engines.values()) e.start();
  try {
    const data = randomBytes(200_000);
    await waitUntil(() => appEvents.some((e) => e.t === 'app-open' || e.t === 'app-error'));
    assert.ok(
      appEvents.some((e) => e.t === 'app-open'),
      JSON.stringify(appEvents.filter((e) => e.t === 'app-error')),
    );
    for (let i = 0; i < data.length; i += 10_000)
      source.onMessage({ t: 'app-write', data: data.subarray(i, i + 10_000) });
    source.onMessage({ t: 'app-end' });
    await waitUntil(() => ended || appEvents.some((e) => e.t === 'app-error'));
    assert.ok(ended, JSON.stringify(appEvents.filter((e) => e.t === 'app-error')));
    assert.ok(Buffer.concat(received).equals(data), 'echoed bytes differ');
    const reports = appEvents.filter(
      (e): e is Extract<VmToDevice, { t: 'report' }> => e.t === 'report',
    );
    const path = reports.find((r) => r.report.forwardPath !== undefined)?.report;
    assert.deepEqual(path?.forwardPath, [B, D]);
    assert.deepEqual(path?.returnPath, [B, A]);
  } finally {
    for (const t of timers.values()) clearTimeout(t);
    for (const e of engines.values())
      e.onMessage({ t: 'stop', code: 'VMESH_ERR_SHUTDOWN', message: 'test over' });
    for (const t of timers.values()) clearTimeout(t);
    await echo.close();
  }
});

async function waitUntil(check: () => boolean, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
