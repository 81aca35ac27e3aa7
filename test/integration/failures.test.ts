// Failures with real processes: the destination dies mid-transfer, and a
// neighbour sends malformed frames. Each gives a clear, typed outcome — an
// error with a stable code at the app, or a counted drop — never a hang.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from '../../src/front/index.ts';
import { LinkManager, tcpTransport } from '../../src/link/index.ts';
import type { Link } from '../../src/link/index.ts';
import { Counters, silentLogger } from '../../src/observe/index.ts';
import { FrameType, PacketFlag, PacketKind, encodePacket } from '../../src/wire/index.ts';
import type { VconnStream } from '../../src/front/index.ts';
import { startEchoServer, startTestbed, waitFor } from '../../src/testbed/index.ts';

const diamond = (echo: string): Parameters<typeof startTestbed>[1] => [
  { name: 'A', dials: ['B', 'C'], extra: { vm: { idleTimeoutMs: 4000, noRouteGraceMs: 1000 } } },
  { name: 'B', dials: ['D'] },
  { name: 'C', dials: ['D'] },
  { name: 'D', expose: { echo } },
];

/** Writes continuously (with backpressure) until the stream fails; resolves with the error. */
function pumpUntilError(
  stream: VconnStream,
  echoed: { bytes: number },
): Promise<Error & { code?: string }> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(16 * 1024, 7);
    let writes = 0;
    stream.on('data', (c: Buffer) => {
      echoed.bytes += c.length;
    });
    stream.once('error', (err) => resolve(err));
    const write = (): void => {
      // Bounded: at most 64 MiB per connection, far more than the test needs.
      while (!stream.destroyed && writes < 4096) {
        writes++;
        if (!stream.write(chunk)) {
          stream.once('drain', write);
          return;
        }
      }
    };
    write();
  });
}

test(
  'killing the destination mid-transfer gives the app VMESH_ERR_NO_ROUTE on both connections, not a hang',
  { timeout: 60000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-kill-'));
    const echo = await startEchoServer();
    const testbed = await startTestbed(dir, diamond(echo.address), { logLevel: 'warn' });
    try {
      await testbed.converged();
      const control = testbed.device('A').control;
      const streams = [
        await connect({ control, to: 'D', service: 'echo', app: 'kill-test' }),
        await connect({ control, to: 'D', service: 'echo', app: 'kill-test' }),
      ];
      assert.notEqual(streams[0]?.info.protocol, streams[1]?.info.protocol);
      const echoed = [{ bytes: 0 }, { bytes: 0 }];
      const errors = streams.map((s, i) => pumpUntilError(s, echoed[i] as { bytes: number }));
      await waitFor(
        async () => echoed.every((e) => e.bytes > 256 * 1024),
        20000,
        'echo traffic on both connections',
      );
      await testbed.kill('D');
      const failed = await Promise.all(errors);
      for (const err of failed) {
        assert.equal(err.code, 'VMESH_ERR_NO_ROUTE', `${err.code}: ${err.message}`);
      }
      // The source device recorded the failure on both connections.
      const a = await testbed.status('A');
      for (const s of streams) {
        const v = a.vconns.find((x) => x.connection === s.info.connection);
        assert.equal(v?.state, 'failed');
        assert.equal(v?.error?.code, 'VMESH_ERR_NO_ROUTE');
      }
      // A new connection to the dead device is refused with the same code (link-state has no route;
      // flooding still remembers D, so the relay's report and the transport timeout say so).
      await assert.rejects(
        connect({ control, to: 'D', service: 'echo', app: 'kill-test', timeoutMs: 20000 }),
        {
          code: 'VMESH_ERR_NO_ROUTE',
        },
      );
    } finally {
      await testbed.stop();
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'malformed frames from a neighbour are dropped and counted; the link and a running connection carry on',
  { timeout: 60000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmesh-malformed-'));
    const echo = await startEchoServer();
    const testbed = await startTestbed(dir, diamond(echo.address), { logLevel: 'warn' });
    // This test process joins the network as a neighbour "M" of B, through vmesh's own link layer.
    const manager = new LinkManager({
      credentials: testbed.pki.issue('M').credentials,
      transport: tcpTransport(),
      neighbours: [{ address: testbed.device('B').listen }],
      logger: silentLogger,
      counters: new Counters(),
    });
    try {
      await testbed.converged();
      const control = testbed.device('A').control;
      const stream = await connect({ control, to: 'D', service: 'echo', app: 'malformed-test' });
      const received: Buffer[] = [];
      stream.on('data', (c: Buffer) => received.push(c));
      stream.write(Buffer.alloc(50_000, 1));

      const up = new Promise<Link>((resolve) => manager.onLinkUp(resolve));
      await manager.start();
      const link = await up;
      const before = (await testbed.status('B')).counters;
      const count = (c: Record<string, number>, key: string): number => c[key] ?? 0;

      const header = encodePacket({
        kind: PacketKind.DATA,
        protocol: 1,
        flags: PacketFlag.SYN,
        hopLimit: 8,
        connection: '0123456789abcdef',
        source: link.remote,
        destination: link.remote,
        packetNumber: 1,
        payload: new Uint8Array(0),
      });
      const badVersion = Buffer.from(header);
      badVersion[0] = 99;
      const badFlags = Buffer.from(header);
      badFlags[3] = 0xff;
      const sent = [
        link.send(FrameType.PACKET, Buffer.from('definitely not a packet')),
        link.send(FrameType.PACKET, header.subarray(0, 30)),
        link.send(FrameType.PACKET, badVersion),
        link.send(FrameType.PACKET, badFlags),
        link.send(FrameType.CONTROL, Buffer.from([1])),
        link.send(99, Buffer.from('unknown frame type')),
      ];
      assert.deepEqual(sent, [true, true, true, true, true, true]);

      await waitFor(
        async () => {
          const c = (await testbed.status('B')).counters;
          return (
            count(c, 'switch.dropped{reason="malformed"}') -
              count(before, 'switch.dropped{reason="malformed"}') ===
              4 &&
            count(c, 'device.frames.dropped{reason="malformed-control"}') === 1 &&
            count(c, 'device.frames.dropped{reason="unknown-frame-type"}') === 1
          );
        },
        10000,
        'B to count the six bad frames',
      );
      // The link to M is still up on both sides, and B's other links too.
      const b = await testbed.status('B');
      assert.deepEqual(b.links.map((l) => l.name).sort(), ['A', 'D', 'M']);
      assert.equal(manager.links().length, 1);
      // The running connection still delivers every byte.
      const more = Buffer.alloc(50_000, 2);
      const done = new Promise<void>((resolve, reject) => {
        stream.once('end', () => resolve());
        stream.once('error', reject);
      });
      stream.end(more);
      await done;
      const all = Buffer.concat(received);
      assert.equal(all.length, 100_000);
      assert.ok(
        all.subarray(0, 50_000).every((x) => x === 1) && all.subarray(50_000).every((x) => x === 2),
      );
    } finally {
      await manager.stop();
      await testbed.stop();
      await echo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
