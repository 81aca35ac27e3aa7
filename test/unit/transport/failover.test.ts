// Failover readiness: the owner moves the connection to another path and
// calls pathChanged(now); what was not acknowledged goes out again at once,
// and the stream completes with nothing lost, duplicated or reordered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrames, initialWindowFor } from '../../../src/transport/index.ts';
import { Bottleneck, createTestnet } from './netsim.ts';
import type { Endpoint, PathSpec } from './netsim.ts';

const MTU = 1200;
const opts = { maxPayloadBytes: MTU };

/** Stream offsets of every STREAM frame an endpoint sends, with the time. */
function streamLog(e: Endpoint): { at: number; offset: number; length: number }[] {
  const log: { at: number; offset: number; length: number }[] = [];
  e.tap = (_pn, payload, at) => {
    for (const f of decodeFrames(payload))
      if (f.kind === 'stream' && f.data.length > 0)
        log.push({ at, offset: f.offset, length: f.data.length });
  };
  return log;
}

/**
 * A 3 MB transfer on path A (a bottleneck, so a window is queued); at 1 s path
 * A dies with everything on it and path B takes over. `notify` says whether the
 * owner calls pathChanged on both ends.
 */
function failover(seed: number, notify: boolean) {
  const net = createTestnet({ seed });
  const aForward: PathSpec = { delayMs: 15, bottleneck: new Bottleneck(MTU + 48, 50) };
  const aBackward: PathSpec = { delayMs: 15 };
  const bForward: PathSpec = { delayMs: 40, jitterMs: 5, bottleneck: new Bottleneck(600, 100) };
  const bBackward: PathSpec = { delayMs: 40, jitterMs: 5 };
  const { client, server } = net.connect({
    forward: aForward,
    backward: aBackward,
    client: opts,
    server: opts,
  });
  const sent = streamLog(client);
  const total = 3_000_000;
  client.send(total, { end: true });
  server.onEvent = (e) => {
    if (e.type === 'end') server.t.end(net.now);
  };
  const switchAt = 1000;
  let before: ReturnType<typeof client.t.stats> | undefined;
  let after: ReturnType<typeof client.t.stats> | undefined;
  let ackedAtSwitch = 0;
  let lowestUnacked = 0;
  net.at(switchAt, () => {
    aForward.down = true;
    aBackward.down = true;
    client.path = bForward;
    server.path = bBackward;
    before = client.t.stats();
    ackedAtSwitch = server.received;
    lowestUnacked = client.written - before.sendBufferedBytes;
    if (notify) {
      client.t.pathChanged(net.now);
      server.t.pathChanged(net.now);
      after = client.t.stats();
    }
  });
  net.run({ until: () => client.has('closed') && server.has('closed'), maxMs: 120_000 });
  return {
    net,
    client,
    server,
    sent,
    total,
    switchAt,
    before,
    after,
    ackedAtSwitch,
    lowestUnacked,
  };
}

test('after pathChanged the unacknowledged data goes out again at once and the stream completes intact', () => {
  const r = failover(1, true);
  const { client, server, sent, total, switchAt } = r;
  assert.ok(r.before !== undefined && r.after !== undefined);
  assert.ok(r.before.bytesInFlight > 50_000, 'a window was in flight on the dead path');
  // Reset to initial values (RFC 9000 §9.4), everything unacknowledged queued again.
  assert.equal(r.after.smoothedRttMs, undefined);
  assert.equal(r.after.congestionWindowBytes, initialWindowFor(MTU));
  assert.equal(r.after.bytesInFlight, 0);
  assert.equal(r.after.pathChanges, 1);
  // At the switch itself, the client resent from its lowest unacknowledged byte (the
  // server had more: the acknowledgements died with path A), contiguously.
  const atSwitch = sent.filter((s) => s.at === switchAt);
  assert.ok(atSwitch.length > 0, 'resent at once');
  assert.ok(r.lowestUnacked <= r.ackedAtSwitch);
  assert.equal(atSwitch[0]?.offset, r.lowestUnacked, JSON.stringify(atSwitch.slice(0, 3)));
  atSwitch.forEach((s, i) => {
    if (i > 0)
      assert.equal(s.offset, (atSwitch[i - 1]?.offset ?? 0) + (atSwitch[i - 1]?.length ?? 0));
  });
  // At once, but within the reset window.
  const bytesAtSwitch = atSwitch.reduce((n, s) => n + s.length, 0);
  assert.ok(bytesAtSwitch <= initialWindowFor(MTU) + MTU);
  // Nothing lost, duplicated or reordered; both ends closed cleanly.
  assert.equal(server.firstMismatch, undefined);
  assert.equal(server.received, total);
  assert.equal(server.t.stats().bytesReceived, total);
  assert.ok(client.has('closed') && server.has('closed'));
  assert.equal(client.failed || server.failed, false);
});

test('without pathChanged the same failover waits for a timer first and finishes later (the baseline)', () => {
  const notified = failover(2, true);
  const silent = failover(2, false);
  // The first stream bytes sent after the switch.
  const firstResend = (r: ReturnType<typeof failover>): number =>
    (r.sent.find((s) => s.at >= r.switchAt)?.at ?? Infinity) - r.switchAt;
  const why = JSON.stringify({
    notified: firstResend(notified),
    silent: firstResend(silent),
    doneNotified: notified.net.now,
    doneSilent: silent.net.now,
  });
  assert.equal(firstResend(notified), 0, why);
  // Silent: nothing until a loss or probe timer fires.
  assert.ok(firstResend(silent) > 0, why);
  assert.ok(notified.net.now < silent.net.now, why);
  assert.equal(silent.server.firstMismatch, undefined);
  assert.equal(silent.server.received, silent.total);
});

test('pathChanged while opening resends the OPEN at once; with nothing outstanding it sends a PING for a first RTT sample', () => {
  const net = createTestnet({ seed: 3 });
  const dead: PathSpec = { delayMs: 10, down: true };
  const { client, server } = net.connect({
    forward: dead,
    backward: { delayMs: 10 },
    client: opts,
    server: opts,
  });
  const kinds: { at: number; kinds: string[] }[] = [];
  client.tap = (_pn, payload, at) =>
    kinds.push({ at, kinds: decodeFrames(payload).map((f) => f.kind) });
  net.at(100, () => {
    client.path = { delayMs: 10 };
    client.t.pathChanged(net.now);
  });
  net.run({ until: () => client.has('open'), maxMs: 5000 });
  assert.ok(
    kinds.some((k) => k.at === 100 && k.kinds.includes('open')),
    JSON.stringify(kinds),
  );
  assert.ok(server.has('openRequest'));

  // Idle and open: a path change sends a PING at once.
  net.run({ maxMs: 2000 });
  const mark = kinds.length;
  net.at(2000, () => client.t.pathChanged(net.now));
  net.run({ maxMs: 2100 });
  const next = kinds.slice(mark);
  assert.ok(next[0]?.at === 2000 && next[0].kinds.includes('ping'), JSON.stringify(next));
  assert.ok(client.t.stats().smoothedRttMs !== undefined, 'a new sample on the new path');
});

test('pathChanged on a finished transport does nothing', () => {
  const net = createTestnet({ seed: 4 });
  const { client } = net.connect({ forward: { delayMs: 5 }, backward: { delayMs: 5 } });
  net.run({ until: () => client.has('open'), maxMs: 1000 });
  client.t.abort('VMESH_ERR_SHUTDOWN', 'done', net.now);
  client.t.pathChanged(net.now);
  assert.equal(client.t.stats().pathChanges, 0);
});
