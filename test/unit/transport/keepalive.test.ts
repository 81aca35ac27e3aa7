// Keepalives on the virtual clock: an idle open connection stays up and
// keeps its path warm; a vanished peer is noticed because a keepalive goes
// unanswered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrames } from '../../../src/transport/index.ts';
import { Bottleneck, createTestnet } from './netsim.ts';
import type { Endpoint, PathSpec } from './netsim.ts';

/** Times of every packet each endpoint emitted, and which carried a PING. */
function watch(e: Endpoint): { all: number[]; pings: number[] } {
  const seen = { all: [] as number[], pings: [] as number[] };
  e.tap = (_pn, payload, at) => {
    seen.all.push(at);
    if (decodeFrames(payload).some((f) => f.kind === 'ping')) seen.pings.push(at);
  };
  return seen;
}

function maxGap(times: number[], from: number, to: number): number {
  const ts = [from, ...times.filter((t) => t > from && t < to), to].sort((a, b) => a - b);
  let gap = 0;
  for (let i = 1; i < ts.length; i++)
    gap = Math.max(gap, (ts[i] as number) - (ts[i - 1] as number));
  return gap;
}

test('an idle open connection sends a keepalive every keepaliveMs and is never timed out', () => {
  const net = createTestnet({ seed: 1 });
  const { client, server } = net.connect({
    forward: { delayMs: 20 },
    backward: { delayMs: 20 },
    client: { idleTimeoutMs: 15_000 },
    server: { idleTimeoutMs: 15_000 },
  });
  const c = watch(client);
  const s = watch(server);
  client.send(1000);
  server.onEvent = (e) => {
    if (e.type === 'data') server.send(e.data.length);
  };
  const until = 120_000;
  net.run({ maxMs: until });
  assert.equal(client.received, 1000, 'the exchange happened');
  for (const e of [client, server]) {
    assert.equal(e.failed, false);
    assert.equal(e.t.stats().state, 'open');
  }
  // Idle from about 100 ms on: keepalives every 5 s (one side answers with an
  // ACK, which restarts the other's keepalive clock, so together ~one per 5 s).
  const pings = [...c.pings, ...s.pings];
  const idle = until - 100;
  assert.ok(
    pings.length >= idle / 5000 - 1 && pings.length <= idle / 5000 + 1,
    `${pings.length} pings`,
  );
  // Something crosses the path at least every keepaliveMs + a round trip (relays stay up).
  const wire = [...c.all, ...s.all];
  assert.ok(
    maxGap(wire, 100, until) <= 5000 + 50,
    `longest silence ${maxGap(wire, 100, until)} ms`,
  );
  assert.equal(client.t.stats().keepalivesSent + server.t.stats().keepalivesSent, pings.length);
});

test('a peer that vanishes while the connection is idle is detected when its keepalive goes unanswered', () => {
  const net = createTestnet({ seed: 2 });
  const forward: PathSpec = { delayMs: 20 };
  const backward: PathSpec = { delayMs: 20 };
  const { client, server } = net.connect({
    forward,
    backward,
    client: { idleTimeoutMs: 15_000, keepaliveMs: 5000 },
    server: { idleTimeoutMs: 15_000, keepaliveMs: 5000 },
  });
  client.send(1000);
  const vanishAt = 30_000;
  net.at(vanishAt, () => {
    forward.down = true;
    backward.down = true;
  });
  net.run({ until: () => client.failed && server.failed, maxMs: 120_000 });
  for (const e of [client, server]) {
    const last = e.log.at(-1);
    assert.equal(last?.event.type, 'error');
    assert.equal(last?.event.type === 'error' ? last.event.code : '', 'VMESH_ERR_TIMEOUT');
    const at = last?.at ?? 0;
    // Not before a keepalive went out and idleTimeoutMs passed without an answer;
    // no later than the next keepalive plus the idle timeout.
    assert.ok(at >= vanishAt + 15_000, `${e.label} gave up at ${at}`);
    assert.ok(at <= vanishAt + 5000 + 15_000 + 100, `${e.label} gave up at ${at}`);
  }
  assert.ok(client.t.stats().ptoExpirations > 0, 'the unanswered keepalive was probed');
});

test('with keepalives off an idle connection is silent: nothing is sent and a vanished peer goes unnoticed', () => {
  const net = createTestnet({ seed: 3 });
  const forward: PathSpec = { delayMs: 20 };
  const backward: PathSpec = { delayMs: 20 };
  const { client, server } = net.connect({
    forward,
    backward,
    client: { keepaliveMs: 0 },
    server: { keepaliveMs: 0 },
  });
  const c = watch(client);
  const s = watch(server);
  client.send(1000);
  net.at(10_000, () => {
    forward.down = true;
    backward.down = true;
  });
  net.run({ maxMs: 120_000 });
  assert.deepEqual(
    [...c.all, ...s.all].filter((t) => t > 1000),
    [],
  );
  assert.equal(client.failed, false);
  assert.equal(server.failed, false);
});

test('no keepalives while data flows: the receiver of a bulk transfer hears from its peer all the time', () => {
  const net = createTestnet({ seed: 4 });
  const { client, server } = net.connect({
    forward: { delayMs: 10, bottleneck: new Bottleneck(500, 50) },
    backward: { delayMs: 10 },
    client: { keepaliveMs: 1000, maxPayloadBytes: 1200 },
    server: { keepaliveMs: 1000, maxPayloadBytes: 1200 },
  });
  client.send(Infinity);
  net.run({ maxMs: 10_000 });
  assert.equal(client.t.stats().keepalivesSent, 0);
  assert.equal(server.t.stats().keepalivesSent, 0);
  assert.ok(server.received > 4_000_000);
});

test('keepalives keep going while the peer cannot take data (flow-control blocked), so the connection lives', () => {
  const net = createTestnet({ seed: 5 });
  const { client, server } = net.connect({
    forward: { delayMs: 10 },
    backward: { delayMs: 10 },
    client: { idleTimeoutMs: 8000 },
    server: { idleTimeoutMs: 8000, receiveWindowBytes: 64 * 1024 },
  });
  server.autoConsume = false;
  client.send(1024 * 1024);
  net.run({ maxMs: 60_000 });
  assert.equal(server.received, 64 * 1024, 'one window and no more');
  assert.equal(client.failed, false);
  assert.equal(server.failed, false);
  assert.ok(client.t.stats().keepalivesSent + server.t.stats().keepalivesSent >= 10);
  // Reading resumes the transfer.
  server.t.consumed(server.received, net.now);
  server.autoConsume = true;
  net.run({ until: () => server.received === 1024 * 1024, maxMs: 120_000 });
  assert.equal(server.received, 1024 * 1024);
  assert.equal(server.firstMismatch, undefined);
});

test('regression: a connection idle for longer than idleTimeoutMs (keepalives off) can still write; the idle clock starts at the first unacknowledged packet', () => {
  const net = createTestnet({ seed: 6 });
  const { client, server } = net.connect({
    forward: { delayMs: 20 },
    backward: { delayMs: 20 },
    client: { keepaliveMs: 0, idleTimeoutMs: 5000 },
    server: { keepaliveMs: 0, idleTimeoutMs: 5000 },
  });
  client.send(1000);
  net.at(30_000, () => client.send(1000, { end: true }));
  net.run({ until: () => server.ended, maxMs: 60_000 });
  assert.equal(client.failed, false, JSON.stringify(client.log));
  assert.equal(server.received, 2000);
});
