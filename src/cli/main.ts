#!/usr/bin/env node
/**
 * The `vmesh` command line. Each command is a thin shell over the library
 * folders; output is plain text for people, `--json` for scripts.
 * Exit codes: 0 success, 1 the operation failed (the error's stable code is
 * printed), 2 bad usage or configuration.
 */
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { controlRequest } from '../control/index.ts';
import { generateIdentity, writeIdentityFile } from '../crypto/index.ts';
import { Device, loadConfig } from '../device/index.ts';
import { VmeshError, toVmeshError } from '../errors/index.ts';
import { connect } from '../front/index.ts';
import type { Logger } from '../observe/index.ts';
import { runDemo } from '../testbed/index.ts';
import type { DemoResult } from '../testbed/index.ts';
import { ProtocolRegistry, builtinProtocols } from '../routing/index.ts';
import { formatSimTable, loadEvents, simChartSvg, simulate, topologyFrom } from '../sim/index.ts';
import { registerCaCommands } from './ca.ts';
import { formatStatus } from './format.ts';

const program = new Command();
program
  .name('vmesh')
  .description(
    'vmesh gives every connection an application asks for its own virtual machine and its own routing\n' +
      'protocol, and carries it hop by hop through relay devices to the destination.',
  )
  .version('0.1.0')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Examples:
  $ vmesh demo                              run the 4-device demo on 127.0.0.1
  $ vmesh ca init --network home --out ca.json --trust trust.json
                                            make a network CA and the trust file devices get
  $ vmesh keygen --out keys/a.json          make a device identity (mode 0600)
  $ vmesh ca sign --ca ca.json --identity keys/a.json --name A --roles relay,serve --out a.cert
  $ vmesh up --config a.yaml                run a device daemon
  $ vmesh status --config a.yaml            what the device sees: links, routes, VMs, connections
  $ vmesh connect D echo --config a.yaml    pipe stdin/stdout through a virtual connection
  $ vmesh sim --topology geometric:50       compare the routing protocols on virtual time

Exit codes: 0 ok, 1 failed (the error code is printed, e.g. VMESH_ERR_NO_ROUTE), 2 bad usage or config.
Errors: docs/errors.md. Config file: README.md.`,
  );

program
  .command('keygen')
  .description('generate a device identity (Ed25519 + X25519) and write it with mode 0600')
  .requiredOption('-o, --out <file>', 'identity file to write')
  .option('-f, --force', 'overwrite an existing file')
  .option('--json', 'print JSON')
  .addHelpText('after', '\nExample:\n  $ vmesh keygen --out ~/.vmesh/identity.json')
  .action((opts: { out: string; force?: boolean; json?: boolean }) => {
    const identity = generateIdentity();
    writeIdentityFile(opts.out, identity, { overwrite: opts.force === true });
    if (opts.json === true)
      console.log(JSON.stringify({ device: identity.deviceId, file: opts.out }));
    else console.log(`device id ${identity.deviceId}\nwritten to ${opts.out} (mode 0600)`);
  });

program
  .command('up')
  .description('run a device daemon in the foreground (Ctrl-C or SIGTERM stops it cleanly)')
  .requiredOption('-c, --config <file>', 'device config file (YAML)')
  .addHelpText('after', '\nExample:\n  $ vmesh up --config devices/a.yaml')
  .action(async (opts: { config: string }) => {
    const config = loadConfig(opts.config);
    const logger = pino({
      level: config.log.level,
      base: { device: config.name },
    }) as unknown as Logger;
    const device = new Device({ config, logger });
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping');
      device.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err: String(err) }, 'stop failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    await device.start();
  });

function controlPath(opts: { control?: string; config?: string }): string {
  if (opts.control !== undefined) return opts.control;
  if (opts.config !== undefined) return loadConfig(opts.config).control;
  const env = process.env.VMESH_CONTROL;
  if (env !== undefined && env !== '') return env;
  throw new VmeshError(
    'VMESH_ERR_CONFIG',
    'say which device: --config FILE, --control SOCKET or VMESH_CONTROL',
  );
}

program
  .command('status')
  .description("show a device's links, routes per protocol, VMs and connections")
  .option('-c, --config <file>', 'device config file (to find its control socket)')
  .option('--control <socket>', 'control socket path (default: $VMESH_CONTROL)')
  .option('--json', 'print the full snapshot as JSON')
  .addHelpText('after', '\nExample:\n  $ vmesh status --config a.yaml --json | jq .vconns')
  .action(async (opts: { control?: string; config?: string; json?: boolean }) => {
    const status = await controlRequest(controlPath(opts), { op: 'status' });
    if (opts.json === true) console.log(JSON.stringify(status, null, 2));
    else console.log(formatStatus(status));
  });

program
  .command('resolve')
  .description('look up a device name (or id) in the network directory')
  .argument('<name>', 'device name or id')
  .option('-c, --config <file>', 'device config file')
  .option('--control <socket>', 'control socket path')
  .action(async (name: string, opts: { control?: string; config?: string }) => {
    const reply = await controlRequest(controlPath(opts), { op: 'resolve', name });
    console.log(`${String(reply.name)} ${String(reply.device)}`);
  });

program
  .command('connect')
  .description('open a virtual connection to SERVICE on device TO and pipe it to stdin/stdout')
  .argument('<to>', 'destination device name or id')
  .argument('<service>', 'service exposed on the destination')
  .option('-c, --config <file>', 'device config file')
  .option('--control <socket>', 'control socket path')
  .option('--app <name>', 'application identity', 'cli')
  .option('--protocol <name>', 'ask for this routing protocol')
  .addHelpText('after', '\nExample:\n  $ echo hello | vmesh connect D echo --config a.yaml')
  .action(
    async (
      to: string,
      service: string,
      opts: { control?: string; config?: string; app: string; protocol?: string },
    ) => {
      const stream = await connect({
        control: controlPath(opts),
        to,
        service,
        app: opts.app,
        ...(opts.protocol === undefined ? {} : { protocol: opts.protocol }),
      });
      console.error(`connected by ${stream.info.protocol}: ${stream.info.reason}`);
      await new Promise<void>((resolve, reject) => {
        stream.once('error', reject);
        stream.once('end', () => resolve());
        stream.pipe(process.stdout, { end: false });
        process.stdin.pipe(stream);
      });
    },
  );

program
  .command('demo')
  .description(
    'run the embedded demo: 4 devices in a diamond, one app, two connections by two protocols',
  )
  .option('--bytes <n>', 'bytes to send on each connection', parseBytes, 1024 * 1024)
  .option('--keep', 'keep the temporary folder with configs, keys and logs')
  .option('--json', 'print the result as JSON')
  .action(async (opts: { bytes: number; keep?: boolean; json?: boolean }) => {
    const say =
      opts.json === true ? (): void => undefined : (line: string): void => console.log(`· ${line}`);
    const result = await runDemo({ bytes: opts.bytes, keep: opts.keep === true }, say);
    if (opts.json === true) console.log(JSON.stringify(result, null, 2));
    else console.log(formatDemo(result));
    process.exitCode = result.ok ? 0 : 1;
  });

program
  .command('sim')
  .description(
    'run the routing protocols alone on virtual time (simulated links, churn, traffic) and compare them',
  )
  .option(
    '-t, --topology <spec>',
    'line:N, ring:N, grid:WxH, diamond, geometric:N, scale-free:N or file:PATH (lines "A B [delay=ms] [loss=p] [rate=bps] [cost=c]")',
    'grid:5x5',
  )
  .option('-p, --protocols <list>', 'comma-separated protocols (default: every built-in one)')
  .option('--seed <n>', 'seed of every random choice', parseCount, 1)
  .option('--duration <s>', 'seconds of traffic and churn (virtual time)', parseCount, 60)
  .option('--flows <n>', 'random source/destination pairs sending traffic', parseCount)
  .option('--interval <ms>', 'ms between packets of a flow', parseCount, 200)
  .option('--churn <n>', 'random link failures per minute', parseCount, 6)
  .option('--down <s>', 'seconds a randomly failed link stays down', parseCount, 10)
  .option('--delay <ms>', 'one-way link delay', parseCount, 5)
  .option('--loss <p>', 'link loss probability (0..1)', parseProbability, 0)
  .option(
    '--mobility <speed>',
    'geometric only: devices move (unit square per second)',
    parseProbability,
  )
  .option(
    '--events <file>',
    'YAML list of scripted events (link-down/up, crash/restart, partition/heal)',
  )
  .option('--json', 'print the result as JSON')
  .option('--svg <file>', 'also write an SVG chart of the figures')
  .addHelpText(
    'after',
    `
Each protocol runs on the same topology, churn and traffic (same seed). Columns:
converge ms (until every flow has a loop-free route), control messages and bytes per
device per second during the churn phase, share of packets delivered, mean path
stretch (hops taken / shortest), route changes, the commonest drop reason.

Examples:
  $ vmesh sim
  $ vmesh sim --topology geometric:50 --churn 20 --svg sim.svg
  $ vmesh sim --topology file:edges.txt --protocols aodv,distance-vector --json`,
  )
  .action(
    (opts: {
      topology: string;
      protocols?: string;
      seed: number;
      duration: number;
      flows?: number;
      interval: number;
      churn: number;
      down: number;
      delay: number;
      loss: number;
      mobility?: number;
      events?: string;
      json?: boolean;
      svg?: string;
    }) => {
      const registry = new ProtocolRegistry();
      for (const d of builtinProtocols()) registry.register(d);
      const protocols =
        opts.protocols === undefined
          ? registry.list()
          : opts.protocols.split(',').map((n) => registry.get(n.trim()));
      const result = simulate({
        topology: topologyFrom(opts.topology, opts.seed),
        protocols,
        seed: opts.seed,
        durationMs: opts.duration * 1000,
        ...(opts.flows === undefined ? {} : { flows: opts.flows }),
        packetIntervalMs: opts.interval,
        linkFailuresPerMinute: opts.churn,
        linkDownMs: opts.down * 1000,
        link: { delayMs: opts.delay, loss: opts.loss },
        ...(opts.mobility === undefined ? {} : { mobilitySpeed: opts.mobility }),
        ...(opts.events === undefined ? {} : { events: loadEvents(opts.events) }),
        onProgress: (name, i, total) => {
          if (opts.json !== true)
            process.stderr.write(`· simulating ${name} (${i + 1}/${total})\n`);
        },
      });
      if (opts.svg !== undefined) writeFileSync(opts.svg, simChartSvg(result));
      if (opts.json === true) console.log(JSON.stringify(result, null, 2));
      else {
        console.log(formatSimTable(result));
        if (opts.svg !== undefined) console.log(`\nchart written to ${opts.svg}`);
      }
    },
  );

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1e9)
    throw new InvalidArgumentError('expected a number from 0 to 1000000000');
  return n;
}

function parseProbability(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new InvalidArgumentError('expected a number from 0 to 1');
  return n;
}

function parseBytes(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024 * 1024 * 1024) {
    throw new InvalidArgumentError('expected a whole number of bytes from 1 to 1073741824');
  }
  return n;
}

function formatDemo(r: DemoResult): string {
  const lines: string[] = [''];
  lines.push('devices');
  for (const d of r.devices)
    lines.push(
      `  ${d.name}  ${d.id.slice(0, 12)}…  listens on ${d.listen}  linked to ${d.links.join(', ')}`,
    );
  lines.push(`service  ${r.service}`);
  for (const c of r.connections) {
    lines.push('', `connection ${c.index}  (id ${c.connection})`);
    lines.push(`  protocol   ${c.protocol}`);
    lines.push(`  why        ${c.reason}`);
    lines.push(
      `  path       ${c.forwardPath.join(' → ')}   (replies: ${c.returnPath.join(' → ')})`,
    );
    lines.push('  VMs');
    for (const vm of c.vms) {
      lines.push(
        `    ${vm.device} spawned a ${vm.role} VM (vm ${vm.vmId}, thread ${vm.threadId})${vm.endReason === undefined ? '' : `, ended: ${vm.endReason}`}`,
      );
    }
    lines.push(
      `  bytes      ${c.bytesSent} sent, ${c.bytesEchoed} echoed back, ${c.intact ? 'all intact' : 'CORRUPTED'}`,
    );
    lines.push(
      `  time       setup ${c.setupMs.toFixed(1)} ms, transfer ${c.transferMs.toFixed(1)} ms`,
    );
  }
  lines.push('', 'checks');
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.text}`);
  lines.push('', r.ok ? 'demo passed' : 'demo FAILED');
  return lines.join('\n');
}

registerCaCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = toVmeshError(err);
  console.error(`vmesh: ${e.code}: ${e.message}`);
  process.exitCode = e.code === 'VMESH_ERR_CONFIG' ? 2 : 1;
});
