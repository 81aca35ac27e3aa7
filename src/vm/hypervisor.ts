/**
 * The hypervisor: runs one worker_threads Worker (own V8 isolate, own heap
 * limit, crash isolation) per virtual connection on this device, feeds it
 * packets in batches (one postMessage per VM per event-loop turn), enforces
 * the VM cap, watches that every VM still answers, and keeps a record of
 * every VM, live or ended. See README.md in this folder for the lifecycle.
 *
 * Main structures: `live` (vmId -> VmHandle), `pool` (pool.ts: pre-booted
 * idle Workers, not counted as VMs), `history` (bounded list of VmRecords).
 * Decisions: the cap check and the pool-or-cold choice in `spawn()`; crash,
 * out-of-memory and exit handling in VmHandle's 'error'/'exit' listeners
 * (only that VM's vconn ends); the watchdog and the idle backstop in `tick()`,
 * one timer for all VMs, running only while VMs are live.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { ResourceLimits } from 'node:worker_threads';
import { VmeshError } from '../errors/index.ts';
import type { ErrorCode } from '../errors/index.ts';
import type { Counters, Logger } from '../observe/index.ts';
import { WarmPool } from './pool.ts';
import type { DeviceToVm, PacketItem, VmRecord, VmRole, VmSpec, VmToDevice } from './types.ts';

export interface HypervisorOptions {
  /**
   * Most VMs alive at once on this device; one more is refused with
   * VMESH_ERR_VM_LIMIT. Idle Workers of the warm pool do not count.
   * @default 256
   */
  maxVms?: number;
  /**
   * Pre-booted idle Workers kept ready so that a VM starts without a Worker
   * boot (config `limits.vmPool`); 0 turns the pool off.
   * @default 4
   */
  poolSize?: number;
  /**
   * V8 old-generation heap limit per VM, MiB (Worker resourceLimits). A VM
   * that reaches it ends with VMESH_ERR_VM_CRASHED, 'out-of-memory: ...'.
   * @default 64
   */
  vmHeapMb?: number;
  /**
   * V8 young-generation limit per VM, MiB. Without it V8 sizes the young
   * generation from the old one (48 MiB for 64), which would let a VM hold
   * nearly twice `vmHeapMb`.
   * @default 16
   */
  vmYoungMb?: number;
  /**
   * Stack size of a VM's thread, MiB.
   * @default 4
   */
  vmStackMb?: number;
  /**
   * Bytes of packets queued toward one VM before further packets are dropped and counted.
   * @default 8388608
   */
  maxQueuedBytes?: number;
  /**
   * How often the watchdog pings each live VM, ms.
   * @default 1000
   */
  watchdogIntervalMs?: number;
  /**
   * A VM that has not answered a ping for this long is terminated; its vconn
   * ends with VMESH_ERR_VM_CRASHED, 'hung: no answer for N ms'.
   * @default 5000
   */
  watchdogTimeoutMs?: number;
  /**
   * Backstop to the engine's own idle timers: a VM of a role in
   * `idleReapRoles` whose last message to the device is older than this is
   * terminated ('idle: ...', VMESH_ERR_TIMEOUT). Unset: 10 × the VM's
   * `options.relayIdleMs`.
   */
  maxIdleMs?: number;
  /**
   * Roles the idle backstop applies to. Source and destination VMs of a
   * healthy but quiet connection send nothing (the transport has no
   * keepalive), so they are left to the app and the transport by default.
   * @default ['relay']
   */
  idleReapRoles?: VmRole[];
  /**
   * Ended VM records kept for snapshots.
   * @default 1000
   */
  historySize?: number;
  /**
   * TEST ONLY: a VMESH_TEST_VM_FAULT value (see README.md) given to this
   * hypervisor's Workers instead of the process environment's.
   */
  testFault?: string;
}

/** How a VM tells its owner what happened. */
export interface VmHandlers {
  onMessage(msg: VmToDevice, vm: VmHandle): void;
  /** The VM is gone; `code` is set when it ended by error (crash, limit, ...). */
  onExit(vm: VmHandle, reason: string, code?: ErrorCode): void;
}

/** What the hypervisor has done so far (also in the counters as `vm.*`). */
export interface HypervisorStats {
  /** VMs alive now. */
  live: number;
  /** Booted idle Workers in the warm pool now. */
  poolIdle: number;
  /** Pool Workers booting now (0 or 1). */
  poolBooting: number;
  /** VMs spawned from the pool / cold. */
  pooledSpawns: number;
  coldSpawns: number;
  /** spawn() calls refused at the cap (VMESH_ERR_VM_LIMIT). */
  refused: number;
  /** VMs that threw, exited on their own or ran out of memory, and the out-of-memory part of those. */
  crashed: number;
  outOfMemory: number;
  /** VMs the watchdog terminated. */
  hung: number;
  /** VMs the idle backstop terminated. */
  reaped: number;
  /** Idle pool Workers that died (each replaced). */
  poolDied: number;
}

/** A fault the test hook VMESH_TEST_VM_FAULT injects into a VM (worker.ts). TEST ONLY. */
export interface VmFault {
  /** After this many packets delivered to the VM, it throws (an uncaught exception). */
  crashAfterPackets?: number;
  /** After this many packets, the VM's thread blocks for good (answers nothing). */
  hangAfterPackets?: number;
  /** After this many packets, the VM allocates until it hits its heap limit. */
  leakAfterPackets?: number;
  /** Only VMs of this role. */
  role?: VmRole;
  /** Only the nth VM (1-based) of the matching role this device spawns. */
  nth?: number;
}

const FAULT_KINDS = ['crashAfterPackets', 'hangAfterPackets', 'leakAfterPackets'] as const;
const ROLES: readonly VmRole[] = ['source', 'relay', 'destination'];

/**
 * Parses VMESH_TEST_VM_FAULT: one fault object or an array of them.
 * Undefined when unset or empty; VMESH_ERR_CONFIG when malformed.
 */
export function vmFaultsFromEnv(value: string | undefined): VmFault[] | undefined {
  if (value === undefined || value === '') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    throw new VmeshError('VMESH_ERR_CONFIG', 'VMESH_TEST_VM_FAULT is not JSON');
  }
  const list = Array.isArray(raw) ? (raw as unknown[]) : [raw];
  return list.map((item, i) => {
    const where = Array.isArray(raw) ? `VMESH_TEST_VM_FAULT[${i}]` : 'VMESH_TEST_VM_FAULT';
    if (typeof item !== 'object' || item === null || Array.isArray(item))
      throw new VmeshError('VMESH_ERR_CONFIG', `${where} must be an object`);
    const o = item as Record<string, unknown>;
    const fault: VmFault = {};
    for (const key of Object.keys(o)) {
      if (![...FAULT_KINDS, 'role', 'nth'].includes(key))
        throw new VmeshError('VMESH_ERR_CONFIG', `${where}.${key} is not a known field`);
    }
    for (const key of [...FAULT_KINDS, 'nth'] as const) {
      const v = o[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
        throw new VmeshError('VMESH_ERR_CONFIG', `${where}.${key} must be a positive integer`);
      fault[key] = v;
    }
    if (o.role !== undefined) {
      if (!ROLES.includes(o.role as VmRole))
        throw new VmeshError(
          'VMESH_ERR_CONFIG',
          `${where}.role must be one of ${ROLES.join(', ')}`,
        );
      fault.role = o.role as VmRole;
    }
    if (FAULT_KINDS.every((k) => fault[k] === undefined))
      throw new VmeshError(
        'VMESH_ERR_CONFIG',
        `${where} names no fault (${FAULT_KINDS.join(', ')})`,
      );
    return fault;
  });
}

const workerUrl = import.meta.url.endsWith('.ts')
  ? new URL('./worker-tsx.mjs', import.meta.url)
  : new URL('./worker.js', import.meta.url);

type ResolvedOptions = Required<Omit<HypervisorOptions, 'maxIdleMs' | 'testFault'>> &
  Pick<HypervisorOptions, 'maxIdleMs' | 'testFault'>;

export class Hypervisor {
  private readonly options: ResolvedOptions;
  private readonly logger: Logger;
  private readonly counters: Counters;
  private readonly live = new Map<string, VmHandle>();
  private readonly history: VmRecord[] = [];
  private readonly pool: WarmPool;
  private readonly resourceLimits: ResourceLimits;
  private readonly workerEnv: NodeJS.ProcessEnv | undefined;
  /** VMs spawned per role (the fault hook's `nth`). */
  private readonly ordinals = new Map<VmRole, number>();
  private readonly counts = {
    pooledSpawns: 0,
    coldSpawns: 0,
    refused: 0,
    crashed: 0,
    outOfMemory: 0,
    hung: 0,
    reaped: 0,
  };
  private timer: NodeJS.Timeout | undefined;
  private lastTick = 0;
  private pingSeq = 0;
  private closed = false;

  constructor(options: HypervisorOptions, logger: Logger, counters: Counters) {
    this.options = {
      maxVms: options.maxVms ?? 256,
      poolSize: options.poolSize ?? 4,
      vmHeapMb: options.vmHeapMb ?? 64,
      vmYoungMb: options.vmYoungMb ?? 16,
      vmStackMb: options.vmStackMb ?? 4,
      maxQueuedBytes: options.maxQueuedBytes ?? 8 * 1024 * 1024,
      watchdogIntervalMs: options.watchdogIntervalMs ?? 1000,
      watchdogTimeoutMs: options.watchdogTimeoutMs ?? 5000,
      idleReapRoles: options.idleReapRoles ?? ['relay'],
      historySize: options.historySize ?? 1000,
      ...(options.maxIdleMs === undefined ? {} : { maxIdleMs: options.maxIdleMs }),
      ...(options.testFault === undefined ? {} : { testFault: options.testFault }),
    };
    this.logger = logger;
    this.counters = counters;
    this.resourceLimits = {
      maxOldGenerationSizeMb: this.options.vmHeapMb,
      maxYoungGenerationSizeMb: this.options.vmYoungMb,
      stackSizeMb: this.options.vmStackMb,
    };
    const fault = this.options.testFault ?? process.env.VMESH_TEST_VM_FAULT;
    const faults = vmFaultsFromEnv(fault);
    if (faults !== undefined) {
      this.logger.warn(
        { faults },
        'VM fault injection is on (VMESH_TEST_VM_FAULT): for tests only, VMs will fail on purpose',
      );
    }
    this.workerEnv =
      this.options.testFault === undefined
        ? undefined
        : { ...process.env, VMESH_TEST_VM_FAULT: this.options.testFault };
    this.pool = new WarmPool({
      size: this.options.poolSize,
      create: () => this.newWorker('vm-pool'),
      logger,
      counters,
    });
    this.pool.refill();
  }

  /** VMs alive now (pooled idle Workers are not VMs). */
  get size(): number {
    return this.live.size;
  }

  stats(): HypervisorStats {
    const pool = this.pool.stats();
    return {
      live: this.live.size,
      poolIdle: pool.idle,
      poolBooting: pool.booting,
      poolDied: pool.died,
      ...this.counts,
    };
  }

  /** Resolves once the warm pool holds `poolSize` booted Workers (tests, benchmarks). */
  poolReady(): Promise<void> {
    return this.pool.full();
  }

  /**
   * Spawns a VM for `spec`: a warm Worker from the pool when there is one
   * (the pool then refills in the background), else a cold one. Throws
   * VmeshError VMESH_ERR_VM_LIMIT at the cap, VMESH_ERR_SHUTDOWN once stopped.
   */
  spawn(spec: Omit<VmSpec, 'vmId'>, handlers: VmHandlers): VmHandle {
    if (this.closed)
      throw new VmeshError('VMESH_ERR_SHUTDOWN', 'the hypervisor has stopped; no new VMs');
    if (this.live.size >= this.options.maxVms) {
      this.counts.refused++;
      this.counters.inc('vm.refused', { reason: 'limit' });
      throw new VmeshError(
        'VMESH_ERR_VM_LIMIT',
        `this device already runs ${this.live.size} VMs (limits.maxVms = ${this.options.maxVms})`,
        { maxVms: this.options.maxVms },
      );
    }
    const startedAt = performance.now();
    const vmId = randomBytes(4).toString('hex');
    const full: VmSpec = { ...spec, vmId };
    const warm = this.pool.take();
    const worker = warm ?? this.newWorker(`vm-${spec.role}-${spec.connection}`);
    const pooled = warm !== undefined;
    if (pooled) this.counts.pooledSpawns++;
    else this.counts.coldSpawns++;
    this.counters.inc(pooled ? 'vm.pool.hit' : 'vm.pool.miss');
    const ordinal = (this.ordinals.get(spec.role) ?? 0) + 1;
    this.ordinals.set(spec.role, ordinal);
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
      pooled,
      report: {},
    };
    const handle = new VmHandle({
      worker,
      record,
      spec: full,
      ordinal,
      startedAt,
      maxQueuedBytes: this.options.maxQueuedBytes,
      heapMb: this.options.vmHeapMb,
      counters: this.counters,
      handlers,
      onGone: (h, kind) => this.ended(h, kind),
    });
    this.live.set(vmId, handle);
    this.counters.inc('vm.spawned', { role: spec.role, protocol: spec.protocolName });
    this.logger.debug(
      { vm: vmId, role: spec.role, connection: spec.connection, pooled },
      'vm spawned',
    );
    this.startTimer();
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

  /** Stops every VM and the warm pool (device shutdown); spawn() is refused afterwards. */
  async stopAll(code: ErrorCode, message: string): Promise<void> {
    this.closed = true;
    const all = [...this.live.values()];
    for (const vm of all) vm.stop(code, message);
    await Promise.all([this.pool.close(), ...all.map((vm) => vm.exited)]);
    this.stopTimer();
  }

  /** stopAll with VMESH_ERR_SHUTDOWN. */
  destroy(): Promise<void> {
    return this.stopAll('VMESH_ERR_SHUTDOWN', 'the hypervisor is shutting down');
  }

  private newWorker(name: string): Worker {
    return new Worker(workerUrl, {
      resourceLimits: this.resourceLimits,
      name,
      ...(this.workerEnv === undefined ? {} : { env: this.workerEnv }),
    });
  }

  private startTimer(): void {
    if (this.timer !== undefined) return;
    this.lastTick = performance.now();
    this.timer = setInterval(() => this.tick(), this.options.watchdogIntervalMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The watchdog and the idle backstop, every `watchdogIntervalMs` while VMs are live. */
  private tick(): void {
    const now = performance.now();
    const o = this.options;
    // If this thread itself was stalled (for a good part of the timeout), pongs may be waiting
    // unread behind this timer: restart every VM's clock rather than blame the VMs for our delay.
    const stalled = now - this.lastTick > o.watchdogIntervalMs + o.watchdogTimeoutMs / 2;
    this.lastTick = now;
    for (const vm of [...this.live.values()]) {
      if (!vm.alive) continue;
      if (stalled) {
        vm.restartClocks(now);
        continue;
      }
      const silent = vm.unansweredFor(now);
      if (silent !== undefined && silent >= o.watchdogTimeoutMs) {
        vm.kill(`hung: no answer for ${Math.round(silent)} ms`, 'VMESH_ERR_VM_CRASHED', 'hung');
        continue;
      }
      const maxIdle = o.maxIdleMs ?? 10 * vm.spec.options.relayIdleMs;
      const idle = now - vm.lastMessageAt;
      if (o.idleReapRoles.includes(vm.record.role) && idle > maxIdle) {
        vm.kill(
          `idle: no message to the device for ${Math.round(idle)} ms (limit ${maxIdle} ms)`,
          'VMESH_ERR_TIMEOUT',
          'reaped',
        );
        continue;
      }
      if (silent === undefined) vm.ping(++this.pingSeq, now);
    }
  }

  private ended(handle: VmHandle, kind: EndKind | undefined): void {
    this.live.delete(handle.record.vmId);
    this.history.push(handle.record);
    if (this.history.length > this.options.historySize) this.history.shift();
    const role = handle.record.role;
    this.counters.inc('vm.ended', { role });
    switch (kind) {
      case 'crashed':
        this.counts.crashed++;
        this.counters.inc('vm.crashed', { role });
        break;
      case 'out-of-memory':
        this.counts.crashed++;
        this.counts.outOfMemory++;
        this.counters.inc('vm.crashed', { role });
        this.counters.inc('vm.out-of-memory', { role });
        break;
      case 'hung':
        this.counts.hung++;
        this.counters.inc('vm.hung', { role });
        break;
      case 'reaped':
        this.counts.reaped++;
        this.counters.inc('vm.reaped', { role });
        break;
      case undefined:
        break;
    }
    if (this.live.size === 0) this.stopTimer();
  }
}

/** How a VM ended, when the hypervisor ended it or saw it fail. */
type EndKind = 'crashed' | 'out-of-memory' | 'hung' | 'reaped';

interface VmHandleInit {
  worker: Worker;
  record: VmRecord;
  spec: VmSpec;
  ordinal: number;
  /** performance.now() at spawn(). */
  startedAt: number;
  maxQueuedBytes: number;
  heapMb: number;
  counters: Counters;
  handlers: VmHandlers;
  onGone: (h: VmHandle, kind: EndKind | undefined) => void;
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
  private ready = false;
  private lastMessage: number;
  /** performance.now() of the oldest ping not yet answered. */
  private pingSentAt: number | undefined;
  private endReason: { reason: string; code?: ErrorCode; kind?: EndKind } | undefined;

  constructor(init: VmHandleInit) {
    const { worker, record, counters } = init;
    this.worker = worker;
    this.record = record;
    this.spec = init.spec;
    this.counters = counters;
    this.handlers = init.handlers;
    this.maxQueuedBytes = init.maxQueuedBytes;
    this.lastMessage = init.startedAt;
    worker.on('message', (msg: VmToDevice) => {
      if (msg.t === 'pong') {
        this.pingSentAt = undefined;
        return;
      }
      if (msg.t === 'booted') return;
      this.lastMessage = performance.now();
      if (msg.t === 'ready' && !this.ready) {
        this.ready = true;
        this.record.readyMs = Math.round((this.lastMessage - init.startedAt) * 10) / 10;
      }
      if (msg.t === 'report') Object.assign(this.record.report, msg.report);
      if (msg.t === 'done') {
        this.endReason ??=
          msg.code === undefined ? { reason: msg.reason } : { reason: msg.reason, code: msg.code };
        void this.worker.terminate();
      }
      this.handlers.onMessage(msg, this);
    });
    worker.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        this.endReason ??= {
          reason: `out-of-memory: ${err.message} (heap limit ${init.heapMb} MiB)`,
          code: 'VMESH_ERR_VM_CRASHED',
          kind: 'out-of-memory',
        };
      } else {
        this.endReason ??= {
          reason: `crashed: ${err.message}`,
          code: 'VMESH_ERR_VM_CRASHED',
          kind: 'crashed',
        };
      }
    });
    this.exited = new Promise((resolve) => {
      worker.once('exit', () => {
        this.gone = true;
        const end = this.endReason ?? {
          reason: 'crashed: exited unexpectedly',
          code: 'VMESH_ERR_VM_CRASHED' as ErrorCode,
          kind: 'crashed' as EndKind,
        };
        this.record.endedAt = new Date().toISOString();
        this.record.endReason = end.reason;
        init.onGone(this, end.kind);
        this.handlers.onExit(this, end.reason, end.code);
        resolve();
      });
    });
    worker.postMessage({ t: 'init', spec: init.spec, ordinal: init.ordinal } satisfies DeviceToVm);
  }

  get alive(): boolean {
    return !this.gone;
  }

  /** performance.now() of the VM's last message to the device (watchdog pongs excluded). */
  get lastMessageAt(): number {
    return this.lastMessage;
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

  /** Ends the VM at once (no goodbye to the peer). `kind` is for the hypervisor's counts. */
  kill(reason: string, code?: ErrorCode, kind?: EndKind): void {
    if (this.gone) return;
    this.endReason ??= {
      reason,
      ...(code === undefined ? {} : { code }),
      ...(kind === undefined ? {} : { kind }),
    };
    void this.worker.terminate();
  }

  /** Watchdog: ms since the oldest unanswered ping, or undefined if none is outstanding. */
  unansweredFor(now: number): number | undefined {
    return this.pingSentAt === undefined ? undefined : now - this.pingSentAt;
  }

  /** Watchdog: pings the VM (only once it is ready: a cold Worker's boot is not a hang). */
  ping(seq: number, now: number): void {
    if (this.gone || !this.ready || this.pingSentAt !== undefined) return;
    this.pingSentAt = now;
    this.worker.postMessage({ t: 'ping', seq } satisfies DeviceToVm);
  }

  /** The device thread itself was stalled: count silence and idleness from `now`. */
  restartClocks(now: number): void {
    if (this.pingSentAt !== undefined) this.pingSentAt = now;
    this.lastMessage = now;
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
