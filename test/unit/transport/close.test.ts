// Graceful close, half-close and abort on the simulated network (netsim.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrames } from '../../../src/transport/index.ts';
import { createTestnet } from './netsim.ts';
import type { Endpoint, PathSpec } from './netsim.ts';

const opts = { maxPayloadBytes: 1200 };
const lossy: PathSpec = { delayMs: 15, jitterMs: 3, loss: 0.03, reorder: 0.03, duplicate: 0.01 };

/** The non-data events in order, without drain and openRequest. */
function lifecycle(e: Endpoint): string[] {
  return e.log.map((l) => l.event.type).filter((t) => t !== 'drain' && t !== 'openRequest');
}

for (const seed of [1, 2, 3]) {
  test(`half-close: the client ends first and still receives everything the server sends until it ends (seed ${seed})`, () => {
    const net = createTestnet({ seed });
    const { client, server } = net.connect({
      forward: { ...lossy },
      backward: { ...lossy },
      client: opts,
      server: opts,
    });
    const request = 50_000;
    const reply = 600_000;
    client.send(request, { end: true });
    let clientFinAckedAt: number | undefined;
    let receivedAfterFinAcked = 0;
    let serverSawEndWith: number | undefined;
    let clientSawEndWith: number | undefined;
    server.onEvent = (e, at) => {
      if (e.type !== 'end') return;
      serverSawEndWith = server.received;
      // The server answers only after the client's end, in pieces over 2 s, then ends.
      for (let i = 0; i < 10; i++)
        net.at(at + 200 * i, () => server.send(reply / 10, { end: i === 9 }));
    };
    client.onEvent = (e) => {
      if (e.type === 'data' && clientFinAckedAt !== undefined)
        receivedAfterFinAcked += e.data.length;
      if (e.type === 'end') clientSawEndWith = client.received;
    };
    net.onStep = (now) => {
      const s = client.t.stats();
      if (
        clientFinAckedAt === undefined &&
        server.ended &&
        s.sendBufferedBytes === 0 &&
        s.bytesInFlight === 0
      )
        clientFinAckedAt = now;
    };
    net.run({ until: () => client.has('closed') && server.has('closed'), maxMs: 120_000 });
    // Both saw 'end' after every byte of the other's stream, then 'closed'.
    assert.equal(serverSawEndWith, request);
    assert.equal(clientSawEndWith, reply);
    assert.equal(server.firstMismatch, undefined);
    assert.equal(client.firstMismatch, undefined);
    assert.deepEqual(lifecycle(client), ['open', 'end', 'closed']);
    assert.deepEqual(lifecycle(server), ['end', 'closed']);
    // The client's direction was finished long before; it kept receiving.
    assert.ok(clientFinAckedAt !== undefined);
    assert.ok(
      receivedAfterFinAcked > reply / 2,
      `${receivedAfterFinAcked} bytes after the client's end`,
    );
    // After end(), write is refused.
    assert.equal(client.t.write(Buffer.from('late'), net.now), false);
  });
}

test('both sides end at once with data in flight: each sees all data, then end, then closed', () => {
  const net = createTestnet({ seed: 4 });
  const { client, server } = net.connect({
    forward: { ...lossy },
    backward: { ...lossy },
    client: opts,
    server: opts,
  });
  client.onEvent = (e) => {
    if (e.type === 'open') {
      client.send(200_000, { end: true });
      server.send(300_000, { end: true });
    }
  };
  const ends: number[] = [];
  for (const e of [client, server]) {
    const previous = e.onEvent;
    e.onEvent = (ev, at) => {
      previous?.(ev, at);
      if (ev.type === 'end') ends.push(e.received);
    };
  }
  net.run({ until: () => client.has('closed') && server.has('closed'), maxMs: 120_000 });
  assert.deepEqual(
    ends.sort((a, b) => a - b),
    [200_000, 300_000],
  );
  assert.deepEqual(lifecycle(client), ['open', 'end', 'closed']);
  assert.deepEqual(lifecycle(server), ['end', 'closed']);
  for (const e of [client, server]) {
    assert.equal(e.firstMismatch, undefined);
    assert.equal(e.t.finished, true);
    assert.equal(e.t.stats().state, 'closed');
  }
});

test('an abort is distinguishable from an end: the peer gets error(remote) with the code, never end or closed', () => {
  const net = createTestnet({ seed: 5 });
  const { client, server } = net.connect({
    forward: { delayMs: 10 },
    backward: { delayMs: 10 },
    client: opts,
    server: opts,
  });
  client.send(Infinity);
  net.at(500, () => client.t.abort('VMESH_ERR_SHUTDOWN', 'going away', net.now));
  net.run({ until: () => server.failed, maxMs: 10_000 });
  assert.deepEqual(server.log.at(-1)?.event, {
    type: 'error',
    code: 'VMESH_ERR_SHUTDOWN',
    message: 'going away',
    remote: true,
  });
  assert.equal(server.has('end'), false);
  assert.equal(server.has('closed'), false);
  assert.deepEqual(client.log.at(-1)?.event, {
    type: 'error',
    code: 'VMESH_ERR_SHUTDOWN',
    message: 'going away',
    remote: false,
  });
  assert.equal(client.t.stats().state, 'failed');
  assert.ok(server.received > 0 && server.firstMismatch === undefined);
  // An unknown code on the wire becomes VMESH_ERR_CONN_RESET.
  const net2 = createTestnet({ seed: 6 });
  const c2 = net2.connect({ forward: { delayMs: 10 }, backward: { delayMs: 10 } });
  net2.at(100, () => c2.client.t.abort('NOT_A_CODE', '', net2.now));
  net2.run({ until: () => c2.server.failed, maxMs: 10_000 });
  const last = c2.server.log.at(-1)?.event;
  assert.equal(last?.type === 'error' ? last.code : '', 'VMESH_ERR_CONN_RESET');
});

test('a lost CLOSE is sent again when the peer keeps sending, so the peer sees the abort rather than a timeout', () => {
  const net = createTestnet({ seed: 7 });
  const forward: PathSpec = { delayMs: 10 };
  const { client, server } = net.connect({
    forward,
    backward: { delayMs: 10 },
    client: opts,
    server: { ...opts, idleTimeoutMs: 5000 },
  });
  server.send(Infinity);
  let closes = 0;
  client.tap = (_pn, payload) => {
    if (decodeFrames(payload).some((f) => f.kind === 'close')) closes++;
  };
  net.at(300, () => {
    forward.down = true; // the first CLOSE is lost
    client.t.abort('VMESH_ERR_CONN_RESET', 'bye', net.now);
  });
  net.at(320, () => {
    forward.down = false;
  });
  net.run({ until: () => server.failed, maxMs: 10_000 });
  const last = server.log.at(-1)?.event;
  assert.equal(last?.type, 'error');
  assert.equal(last?.type === 'error' ? last.code : '', 'VMESH_ERR_CONN_RESET');
  assert.ok(closes >= 2, `${closes} CLOSE packets`);
  assert.ok(net.now < 2000, `the peer learned at ${net.now} ms, not by its idle timeout`);
});
