/**
 * Device configuration: the YAML file given to `vmesh up --config FILE`.
 *
 * Owns: the zod schema (every field, its default), loading and validation.
 * A bad file fails with VMESH_ERR_CONFIG and a message that names each bad
 * field by its path (`neighbours[1]: expected "host:port"`). Relative paths in
 * the file are resolved against the file's folder. The format is documented in
 * README.md ("The config file") and docs/configuration.md.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { VmeshError } from '../errors/index.ts';

const hostPort = z
  .string()
  .regex(
    /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
    'expected "host:port" (IPv6 as "[::1]:port")',
  )
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535');

const name = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'expected 1-64 characters of letters, digits, ".", "_" or "-"',
  );

const positiveInt = z.number().int().positive();

export const configSchema = z
  .object({
    /** Human name of this device (later: taken from its certificate). */
    name,
    /** Identity key file; created (mode 0600) if missing. Default: <stateDir>/identity.json. */
    identity: z.string().min(1).optional(),
    /** Folder for the control socket and runtime files. Default: .vmesh/<name> beside the config. */
    stateDir: z.string().min(1).optional(),
    /** Address the link listener binds ("host:port"). No listener if absent. */
    listen: hostPort.optional(),
    /** Neighbours this device dials: "host:port" or { address }. */
    neighbours: z
      .array(z.union([hostPort, z.object({ address: hostPort }).strict()]))
      .default([])
      .transform((list) => list.map((n) => (typeof n === 'string' ? { address: n } : n))),
    /** Local control socket path. Default: <stateDir>/control.sock. */
    control: z.string().min(1).optional(),
    /** Routing protocols this device runs, in order of preference. Default: all built-in. */
    protocols: z.array(z.string().min(1)).min(1).optional(),
    /** Selection policy: "diverse" (default) or "first" (always the first protocol that has a route). */
    policy: z.enum(['diverse', 'first']).default('diverse'),
    /** Services this device exposes: name -> local TCP "host:port". */
    expose: z.record(name, hostPort).default({}),
    /**
     * Who may reach which service: service name -> device names or ids ("*":
     * everyone). A service without an entry is open to every admitted device.
     */
    acl: z.record(name, z.array(z.string().min(1)).min(1)).default({}),
    /** Admission to the network (docs/security.md). */
    security: z
      .object({
        /** The network's trust file (its CA public key), from `vmesh ca init`. */
        trust: z.string().min(1),
        /** This device's certificate, from `vmesh ca sign`. */
        certificate: z.string().min(1),
        /** The network's revocation list, from `vmesh ca revoke`; re-read when it changes. */
        revocations: z.string().min(1).optional(),
        /** Frames per key per direction before a link rekeys. */
        rekeyAfterFrames: positiveInt.default(1 << 20),
      })
      .strict(),
    routing: z
      .object({
        /** Third-party routing protocol modules (paths, relative to the config file). */
        modules: z.array(z.string().min(1)).default([]),
        /** How long a new connection waits for a reactive protocol's route discovery, ms. */
        discoveryWaitMs: positiveInt.default(2000),
        /** How often open connections refresh their routes and links report measured costs, ms. */
        refreshMs: positiveInt.default(1000),
        /**
         * Link costs from measured RTT and loss (true), or 1 for every link (false: routes move
         * only when links come and go — the testbed uses this so its own load cannot move routes).
         */
        measuredCosts: z.boolean().default(true),
      })
      .strict()
      .default({ modules: [], discoveryWaitMs: 2000, refreshMs: 1000, measuredCosts: true }),
    limits: z
      .object({
        /** VMs alive at once; one more is refused with VMESH_ERR_VM_LIMIT (pool Workers do not count). */
        maxVms: positiveInt.default(256),
        /** V8 old-generation heap limit per VM, MiB; over it the VM ends with VMESH_ERR_VM_CRASHED. */
        vmHeapMb: positiveInt.default(64),
        /** V8 young-generation limit per VM, MiB. */
        vmYoungMb: positiveInt.default(16),
        /** Stack size of a VM's thread, MiB. */
        vmStackMb: positiveInt.default(4),
        /** Pre-booted idle Workers kept ready for new VMs (0: none). */
        vmPool: z.number().int().min(0).max(1024).default(4),
        /** How often each live VM is pinged, ms. */
        watchdogIntervalMs: positiveInt.default(1000),
        /** A VM that has not answered a ping for this long is terminated (VMESH_ERR_VM_CRASHED), ms. */
        watchdogTimeoutMs: positiveInt.default(5000),
        /** A relay VM silent toward the device this long is terminated. Default: 10 × vm.relayIdleMs. */
        maxIdleMs: positiveInt.optional(),
        maxFrameBytes: positiveInt.min(1024).default(256 * 1024),
        maxQueuedBytes: positiveInt.default(8 * 1024 * 1024),
      })
      .strict()
      .default({
        maxVms: 256,
        vmHeapMb: 64,
        vmYoungMb: 16,
        vmStackMb: 4,
        vmPool: 4,
        watchdogIntervalMs: 1000,
        watchdogTimeoutMs: 5000,
        maxFrameBytes: 256 * 1024,
        maxQueuedBytes: 8 * 1024 * 1024,
      }),
    link: z
      .object({
        keepaliveIntervalMs: positiveInt.default(1000),
        deadAfterMs: positiveInt.default(4000),
        handshakeTimeoutMs: positiveInt.default(5000),
        redialMinMs: positiveInt.default(200),
        redialMaxMs: positiveInt.default(5000),
      })
      .strict()
      .default({
        keepaliveIntervalMs: 1000,
        deadAfterMs: 4000,
        handshakeTimeoutMs: 5000,
        redialMinMs: 200,
        redialMaxMs: 5000,
      }),
    vm: z
      .object({
        hopLimit: z.number().int().min(1).max(255).optional(),
        relayIdleMs: positiveInt.optional(),
        finLingerMs: positiveInt.optional(),
        noRouteGraceMs: positiveInt.optional(),
        idleTimeoutMs: positiveInt.optional(),
      })
      .strict()
      .default({}),
    log: z
      .object({
        level: z
          .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
          .default('info'),
      })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

export type DeviceConfig = z.output<typeof configSchema> & {
  /** Resolved absolute paths. */
  identity: string;
  stateDir: string;
  control: string;
};

/** Validates a parsed config object; `baseDir` resolves relative paths. */
export function validateConfig(raw: unknown, baseDir: string, source = 'config'): DeviceConfig {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const path = issue.path.length === 0 ? '(top level)' : formatPath(issue.path);
      return `  ${path}: ${issue.message}`;
    });
    throw new VmeshError('VMESH_ERR_CONFIG', `${source} is invalid:\n${lines.join('\n')}`, {
      fields: result.error.issues.map((i) => formatPath(i.path)),
    });
  }
  const c = result.data;
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const stateDir = abs(c.stateDir ?? `.vmesh/${c.name}`);
  return {
    ...c,
    stateDir,
    identity: c.identity === undefined ? resolve(stateDir, 'identity.json') : abs(c.identity),
    control: c.control === undefined ? resolve(stateDir, 'control.sock') : abs(c.control),
    routing: { ...c.routing, modules: c.routing.modules.map(abs) },
    security: {
      ...c.security,
      trust: abs(c.security.trust),
      certificate: abs(c.security.certificate),
      ...(c.security.revocations === undefined ? {} : { revocations: abs(c.security.revocations) }),
    },
  };
}

/** Reads and validates a YAML config file. */
export function loadConfig(file: string): DeviceConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `cannot read config ${file}: ${(err as Error).message}`,
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new VmeshError(
      'VMESH_ERR_CONFIG',
      `config ${file} is not valid YAML: ${(err as Error).message}`,
    );
  }
  return validateConfig(raw, dirname(resolve(file)), `config ${file}`);
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}
