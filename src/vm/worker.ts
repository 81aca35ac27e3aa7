/**
 * Worker entry of a VM: the thin I/O shell around VmEngine. Receives the
 * spawn spec and batches of packets from the device over `parentPort`, keeps
 * one timer for the engine's next deadline, and posts batches back with their
 * buffers transferred. An exception here ends only this Worker (the
 * hypervisor reports it as VMESH_ERR_VM_CRASHED for this vconn alone).
 */
import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { VmEngine } from './engine.ts';
import type { DeviceToVm, VmToDevice } from './types.ts';

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

port.on('message', (msg: DeviceToVm) => {
  if (msg.t === 'init') {
    engine = new VmEngine(msg.spec, { post, now: () => performance.now(), wake });
    engine.start();
    return;
  }
  engine?.onMessage(msg);
});
