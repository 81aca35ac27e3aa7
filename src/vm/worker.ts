/**
 * Worker entry of a VM: the thin I/O shell around VmEngine. Once loaded it
 * posts `booted` (the warm pool keeps it idle until then and after); it then
 * receives the spawn spec and batches of packets from the device over
 * `parentPort`, keeps one timer for the engine's next deadline, and posts
 * batches back with their buffers transferred. It answers the hypervisor's
 * watchdog pings itself, without the engine, so a VM whose thread is stuck
 * (an endless loop, a blocking call) is found out. An exception here ends
 * only this Worker (the hypervisor reports it as VMESH_ERR_VM_CRASHED for
 * this vconn alone).
 *
 * TEST ONLY: VMESH_TEST_VM_FAULT (parsed by hypervisor.ts, which also logs a
 * warning) makes matching VMs crash, hang or leak after a number of packets;
 * see README.md. Without the variable nothing here changes.
 */
import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { VmEngine } from './engine.ts';
import { vmFaultsFromEnv } from './hypervisor.ts';
import type { VmFault } from './hypervisor.ts';
import type { DeviceToVm, VmRole, VmToDevice } from './types.ts';

const port = parentPort;
if (port === null) throw new Error('vm/worker.ts must run inside a worker thread');

let engine: VmEngine | undefined;
let timer: NodeJS.Timeout | undefined;
let timerAt: number | undefined;

function post(message: VmToDevice): void {
  const transfer = new Set<ArrayBuffer>();
  if (message.t === 'send') {
    for (const item of message.items) collect(item.bytes, transfer);
  } else if (message.t === 'app-data') {
    collect(message.data, transfer);
  }
  port?.postMessage(message, [...transfer]);
}

function collect(bytes: Uint8Array, into: Set<ArrayBuffer>): void {
  const buffer = bytes.buffer;
  if (
    buffer instanceof ArrayBuffer &&
    bytes.byteOffset === 0 &&
    buffer.byteLength === bytes.length
  ) {
    into.add(buffer);
  }
}

function wake(at: number | undefined): void {
  if (at === timerAt) return;
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  timerAt = at;
  if (at === undefined) return;
  timer = setTimeout(
    () => {
      timer = undefined;
      timerAt = undefined;
      engine?.onTimer();
    },
    Math.max(0, at - performance.now()),
  );
}

// ---- test-only fault hook ------------------------------------------------------------------

/** The faults from VMESH_TEST_VM_FAULT (the hypervisor has already validated them). */
const faults: VmFault[] = ((): VmFault[] => {
  try {
    return vmFaultsFromEnv(process.env.VMESH_TEST_VM_FAULT) ?? [];
  } catch {
    return [];
  }
})();
/** The fault this VM plays, chosen at init by role and ordinal. */
let fault: VmFault | undefined;
let packetsSeen = 0;
/** What the leak fault holds on to. */
const hoard: unknown[] = [];

function chooseFault(role: VmRole, ordinal: number | undefined): VmFault | undefined {
  return faults.find(
    (f) => (f.role === undefined || f.role === role) && (f.nth === undefined || f.nth === ordinal),
  );
}

function injectFault(f: VmFault): void {
  if (f.crashAfterPackets !== undefined && packetsSeen >= f.crashAfterPackets) {
    throw new Error(`test fault (VMESH_TEST_VM_FAULT): crash after ${f.crashAfterPackets} packets`);
  }
  if (f.hangAfterPackets !== undefined && packetsSeen >= f.hangAfterPackets) {
    // Blocks this thread for good without burning a core; only terminate() ends it.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
  if (f.leakAfterPackets !== undefined && packetsSeen >= f.leakAfterPackets) {
    // Allocate on the V8 heap (ArrayBuffers would not count) until the heap limit ends us.
    for (;;) hoard.push(new Array<number>(1024).fill(hoard.length));
  }
}

// ---- messages ------------------------------------------------------------------------------

port.on('message', (msg: DeviceToVm) => {
  if (msg.t === 'ping') {
    port.postMessage({ t: 'pong', seq: msg.seq } satisfies VmToDevice);
    return;
  }
  if (msg.t === 'init') {
    if (faults.length > 0) fault = chooseFault(msg.spec.role, msg.ordinal);
    engine = new VmEngine(msg.spec, { post, now: () => performance.now(), wake });
    engine.start();
    return;
  }
  engine?.onMessage(msg);
  if (fault !== undefined && msg.t === 'packets') {
    packetsSeen += msg.items.length;
    injectFault(fault);
  }
});

port.postMessage({ t: 'booted' } satisfies VmToDevice);
