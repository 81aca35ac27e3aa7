/**
 * The hypervisor: spawns one worker_threads Worker (own V8 isolate, own heap
 * limit, crash isolation) per virtual connection on this device, feeds it
 * packets in batches (one postMessage per VM per event-loop turn), enforces
 * the VM cap and keeps a record of every VM, live or ended.
 *
 * Main structures: `live` (vmId -> VmHandle), `history` (bounded list of
 * VmRecords). Decisions: the cap check in `spawn()`; crash handling in
 * VmHandle's 'error'/'exit' listeners (only that VM's vconn ends).
 * Warm pools, idle reaping beyond the VM's own timers and watchdogs come in
 * the performance issue; the spawn path is already the single place to add them.
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { VmeshError } from '../errors/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import type { Counters, Logger } from '../observe/index.ts';
import type { DeviceToVm, PacketItem, VmRecord, VmSpec, VmToDevice } from './types.ts';

export interface HypervisorOptions {
  /**
   * Most VMs alive at once on this device; one more is refused with VMESH_ERR_VM_LIMIT.
   * @default 256
   */
  maxVms?: number;
  /**
   * V8 old-generation heap limit per VM, MiB (Worker resourceLimits).
   * @default 64
   */
  vmHeapMb?: number;
  /**
   * Bytes of packets queued toward one VM before further packets are dropped and counted.
   * @default 8388608
   */
  maxQueuedBytes?: number;
  /**
   * Ended VM records kept for snapshots.
   * @default 1000
   */
  historySize?: number;
}

/** How a VM tells its owner what happened. */
export interface VmHandlers {
  onMessage(msg: VmToDevice, vm: VmHandle): void;
  /** The VM is gone; `code` is set when it ended by error (crash, limit, ...). */
  onExit(vm: VmHandle, reason: string, code?: ErrorCode): void;
}

const workerUrl = import.meta.url.endsWith('.ts')
  ? new URL('./worker-tsx.mjs', import.meta.url)
  : new URL('./worker.js', import.meta.url);

export class Hypervisor {
  private readonly options: Required<HypervisorOptions>;
  private readonly logger: Logger;
  private readonly counters: Counters;
  private readonly live = new Map<string, VmHandle>();
  private readonly history: VmRecord[] = [];

  constructor(options: HypervisorOptions, logger: Logger, counters: Counters) {
    this.options = {
      maxVms: options.maxVms ?? 256,
      vmHeapMb: options.vmHeapMb ?? 64,
      maxQueuedBytes: options.maxQueuedBytes ?? 8 * 1024 * 1024,
      historySize: options.historySize ?? 1000,
    };
    this.logger = logger;
    this.counters = counters;
  }

  get size(): number {
    return this.live.size;
  }

  /** Spawns a VM for `spec`. Throws VmeshError VMESH_ERR_VM_LIMIT at the cap. */
  spawn(spec: Omit<VmSpec, 'vmId'>, handlers: VmHandlers): VmHandle {
    if (this.live.size >= this.options.maxVms) {
      this.counters.inc('vm.refused', { reason: 'limit' });
      throw new VmeshError(
        'VMESH_ERR_VM_LIMIT',
        `this device already runs ${this.live.size} VMs (limits.maxVms = ${this.options.maxVms})`,
        { maxVms: this.options.maxVms },
      );
    }
    const vmId = randomBytes(4).toString('hex');
    const full: VmSpec = { ...spec, vmId };
    const worker = new Worker(workerUrl, {
      resourceLimits: { maxOldGenerationSizeMb: this.options.vmHeapMb },
      name: `vm-${spec.role}-${spec.connection}`,
    });
    const record: VmRecord = {
      vmId,
      role: spec.role,
      connection: spec.connection,
      protocol: spec.protocolName,
      source: spec.source,
      destination: spec.destination,
      avoid: [...spec.avoid],
      threadId: worker.threadId,
      spawnedAt: new Date().toISOString(),
      report: {},
    };
    const handle = new VmHandle(
      worker,
      record,
      full,
      this.options.maxQueuedBytes,
      this.counters,
      handlers,
      (h) => this.ended(h),
    );
    this.live.set(vmId, handle);
    this.counters.inc('vm.spawned', { role: spec.role, protocol: spec.protocolName });
    this.logger.debug({ vm: vmId, role: spec.role, connection: spec.connection }, 'vm spawned');
    return handle;
  }

  /** Live and ended VM records, oldest first. */
  records(): VmRecord[] {
    return [...this.history, ...[...this.live.values()].map((h) => h.record)].map((r) =>
      structuredClone(r),
    );
  }

  /** Live handles. */
  handles(): VmHandle[] {
    return [...this.live.values()];
  }

  /** Stops every VM (device shutdown). */
  async stopAll(code: ErrorCode, message: string): Promise<void> {
    const all = [...this.live.values()];
    for (const vm of all) vm.stop(code, message);
    await Promise.all(all.map((vm) => vm.exited));
  }

  private ended(handle: VmHandle): void {
    this.live.delete(handle.record.vmId);
    this.history.push(handle.record);
    if (this.history.length > this.options.historySize) this.history.shift();
    this.counters.inc('vm.ended', { role: handle.record.role });
  }
}

/** One running VM as the device sees it. */
export class VmHandle {
  readonly record: VmRecord;
  readonly spec: VmSpec;
  /** Resolves when the Worker has exited. */
  readonly exited: Promise<void>;
  private readonly worker: Worker;
  private readonly counters: Counters;
  private readonly handlers: VmHandlers;
  private readonly maxQueuedBytes: number;
  private pending: PacketItem[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private gone = false;
  private endReason: { reason: string; code?: ErrorCode } | undefined;

  constructor(
    worker: Worker,
    record: VmRecord,
    spec: VmSpec,
    maxQueuedBytes: number,
    counters: Counters,
    handlers: VmHandlers,
    onGone: (h: VmHandle) => void,
  ) {
    this.worker = worker;
    this.record = record;
    this.spec = spec;
    this.counters = counters;
    this.handlers = handlers;
    this.maxQueuedBytes = maxQueuedBytes;
    worker.on('message', (msg: VmToDevice) => {
      if (msg.t === 'report') Object.assign(this.record.report, msg.report);
      if (msg.t === 'done') {
        this.endReason =
          msg.code === undefined ? { reason: msg.reason } : { reason: msg.reason, code: msg.code };
        void this.worker.terminate();
      }
      this.handlers.onMessage(msg, this);
    });
    worker.on('error', (err: Error) => {
      this.counters.inc('vm.crashed', { role: record.role });
      this.endReason ??= { reason: `crashed: ${err.message}`, code: 'VMESH_ERR_VM_CRASHED' };
    });
    this.exited = new Promise((resolve) => {
      worker.once('exit', () => {
        this.gone = true;
        const end = this.endReason ?? {
          reason: 'crashed: exited unexpectedly',
          code: 'VMESH_ERR_VM_CRASHED' as ErrorCode,
        };
        this.record.endedAt = new Date().toISOString();
        this.record.endReason = end.reason;
        onGone(this);
        this.handlers.onExit(this, end.reason, end.code);
        resolve();
      });
    });
    worker.postMessage({ t: 'init', spec } satisfies DeviceToVm);
  }

  get alive(): boolean {
    return !this.gone;
  }

  /** Queues a packet for the VM; delivered in one batch per event-loop turn. Returns false if dropped. */
  deliver(item: PacketItem): boolean {
    if (this.gone) return false;
    if (this.pendingBytes + item.bytes.length > this.maxQueuedBytes) {
      this.counters.inc('vm.queue.dropped', { role: this.record.role });
      return false;
    }
    this.pending.push(item);
    this.pendingBytes += item.bytes.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** Sends a control message to the VM. */
  post(msg: DeviceToVm): void {
    if (this.gone) return;
    const transfer: ArrayBuffer[] = [];
    if (msg.t === 'app-write' && isWhole(msg.data)) transfer.push(msg.data.buffer as ArrayBuffer);
    this.worker.postMessage(msg, transfer);
  }

  /** Asks the VM to end its vconn with `code`; terminates it if it does not within 2 s. */
  stop(code: ErrorCode, message: string): void {
    if (this.gone) return;
    this.post({ t: 'stop', code, message });
    const t = setTimeout(() => void this.worker.terminate(), 2000);
    t.unref();
  }

  /** Ends the VM at once (no goodbye to the peer). */
  kill(reason: string, code?: ErrorCode): void {
    if (this.gone) return;
    this.endReason ??= code === undefined ? { reason } : { reason, code };
    void this.worker.terminate();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.gone) return;
    const items = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const transfer = new Set<ArrayBuffer>();
    for (const item of items)
      if (isWhole(item.bytes)) transfer.add(item.bytes.buffer as ArrayBuffer);
    this.worker.postMessage({ t: 'packets', items } satisfies DeviceToVm, [...transfer]);
  }
}

function isWhole(bytes: Uint8Array): boolean {
  return (
    bytes.buffer instanceof ArrayBuffer &&
    bytes.byteOffset === 0 &&
    bytes.buffer.byteLength === bytes.length
  );
}
