// The transport on a simulated network (netsim.ts): virtual clock, seeded
// RNG, loss, duplication, reordering and drop-tail bottleneck queues.
// Assertions are on bytes, counts and virtual-time figures, never wall time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fixedWindow } from '../../../src/transport/index.ts';
import type { CongestionController } from '../../../src/transport/index.ts';
import { Bottleneck, WIRE_OVERHEAD, createTestnet, jain } from './netsim.ts';
import type { Endpoint, PathSpec } from './netsim.ts';

const MTU = 1200;
const small = { maxPayloadBytes: MTU };

function assertIntact(receiver: Endpoint, total: number): void {
  assert.equal(receiver.firstMismatch, undefined, 'every byte as sent, in order');
  assert.equal(receiver.received, total, 'every byte exactly once');
  assert.equal(receiver.t.stats().bytesReceived, total);
  assert.equal(
    receiver.chunks.reduce((a, b) => a + b, 0),
    total,
  );
}

for (const seed of [1, 2]) {
  test(`bulk transfer both ways under 5% loss, 5% reordering and 1% duplication: every byte once, in order (seed ${seed})`, () => {
    const net = createTestnet({ seed });
    const lossy: PathSpec = {
      delayMs: 10,
      jitterMs: 2,
      loss: 0.05,
      reorder: 0.05,
      reorderDelayMs: 15,
      duplicate: 0.01,
    };
    const { client, server } = net.connect({
      forward: { ...lossy },
      backward: { ...lossy },
      client: small,
      server: small,
    });
    const up = 4 * 1024 * 1024;
    const down = 1024 * 1024;
    client.send(up, { end: true });
    server.send(down, { end: true });
    const end = net.run({
      until: () => client.has('closed') && server.has('closed'),
      maxMs: 300_000,
    });
    assert.ok(end < 300_000, 'finished');
    assertIntact(server, up);
    assertIntact(client, down);
    for (const e of [client, server]) {
      assert.deepEqual(
        e.log.map((l) => l.event.type).filter((t) => t !== 'drain' && t !== 'openRequest'),
        e === client ? ['open', 'end', 'closed'] : ['end', 'closed'],
      );
    }
    const s = client.t.stats();
    assert.ok(s.lostPackets > 50 && s.retransmits > 50, JSON.stringify(s));
    assert.ok(server.t.stats().duplicatesDropped > 0, 'duplicates were seen and dropped');
  });
}

/** One bulk flow through a bottleneck of `queue` packets; cwnd samples over the second half. */
function bottleneckRun(
  seed: number,
  queue: number,
  cc?: CongestionController,
  pacing = false,
): {
  b: Bottleneck;
  client: Endpoint;
  server: Endpoint;
  cwnd: { at: number; bytes: number }[];
  maxInFlightOverWindow: number;
  maxSendBuffered: number;
  durationMs: number;
} {
  const net = createTestnet({ seed });
  const rate = MTU + WIRE_OVERHEAD; // bytes/ms: about one full packet per ms
  const b = new Bottleneck(rate, queue);
  const { client, server } = net.connect({
    forward: { delayMs: 20, jitterMs: 1, bottleneck: b },
    backward: { delayMs: 20, jitterMs: 1 },
    client: { ...small, pacing },
    server: small,
    clientCc: cc,
  });
  client.send(Infinity);
  const durationMs = 20_000;
  const cwnd: { at: number; bytes: number }[] = [];
  let maxInFlightOverWindow = -Infinity;
  let maxSendBuffered = 0;
  let lastInFlight = 0;
  net.onStep = (now) => {
    const s = client.t.stats();
    // After a reduction more than the window is in flight until it drains; what
    // counts is that sending stops at the window (a packet may overshoot it).
    if (s.bytesInFlight > lastInFlight)
      maxInFlightOverWindow = Math.max(
        maxInFlightOverWindow,
        s.bytesInFlight - s.congestionWindowBytes,
      );
    lastInFlight = s.bytesInFlight;
    maxSendBuffered = Math.max(maxSendBuffered, s.sendBufferedBytes);
    if (now >= durationMs / 2) cwnd.push({ at: now, bytes: s.congestionWindowBytes });
  };
  net.run({ maxMs: durationMs });
  return { b, client, server, cwnd, maxInFlightOverWindow, maxSendBuffered, durationMs };
}

test('through a drop-tail bottleneck of 20 packets the window converges, the queue is not kept full, and the link stays busy; a fixed window overruns it', () => {
  const queue = 20;
  const r = bottleneckRun(3, queue);
  const base = bottleneckRun(3, queue, fixedWindow(200_000));
  const pkt = MTU + WIRE_OVERHEAD;
  // The path holds a bandwidth-delay product (40 ms at one packet per ms) plus the queue.
  const pipe = (40 + queue) * pkt;
  const peaks = r.cwnd.map((c) => c.bytes);
  const maxCwnd = Math.max(...peaks);
  const minCwnd = Math.min(...peaks);
  const half = r.durationMs / 2;
  const lateMax = Math.max(
    ...r.cwnd.filter((c) => c.at >= (3 * r.durationMs) / 4).map((c) => c.bytes),
  );
  const earlyMax = Math.max(
    ...r.cwnd.filter((c) => c.at < (3 * r.durationMs) / 4).map((c) => c.bytes),
  );
  const goodput = (r.server.receivedBy(r.durationMs) - r.server.receivedBy(half)) / half;
  const baseGoodput =
    (base.server.receivedBy(base.durationMs) - base.server.receivedBy(half)) / half;
  const dropRate = r.b.drops / r.b.arrivals;
  const baseDropRate = base.b.drops / base.b.arrivals;
  const figures = {
    maxCwnd,
    minCwnd,
    pipe,
    earlyMax,
    lateMax,
    goodput,
    baseGoodput,
    dropRate,
    baseDropRate,
    meanQueue: r.b.meanOccupancy(),
    baseMeanQueue: base.b.meanOccupancy(),
    events: r.client.t.stats().congestionEvents,
    maxInFlightOverWindow: r.maxInFlightOverWindow,
    maxSendBuffered: r.maxSendBuffered,
  };
  const why = JSON.stringify(figures);
  // Bounded: the window's peaks stay near what the path holds and do not creep up.
  assert.ok(maxCwnd <= 1.5 * pipe, why);
  assert.ok(lateMax <= earlyMax * 1.15, why);
  assert.ok(minCwnd >= 0.3 * pipe, why);
  assert.ok(figures.events >= 3, `it keeps probing: ${why}`);
  // The queue is used, not kept full; losses are rare; the link is busy.
  assert.ok(r.b.maxOccupancy <= queue, why);
  assert.ok(r.b.meanOccupancy() < 0.6 * queue, why);
  assert.ok(dropRate < 0.01, why);
  assert.ok(goodput >= 0.85 * MTU, why);
  // Baseline in the same run: a window larger than the pipe keeps the queue full and drops a lot.
  assert.ok(baseDropRate > 10 * dropRate, why);
  assert.ok(base.b.meanOccupancy() > 0.9 * queue, why);
  // The sender never has more in flight than its window plus one packet, and its own buffer is bounded.
  assert.ok(r.maxInFlightOverWindow <= MTU, why);
  assert.ok(r.maxSendBuffered <= 1024 * 1024 + 16384, why);
});

test('pacing spreads the window: the same bottleneck sees a lower peak queue and no fewer bytes', () => {
  const plain = bottleneckRun(4, 60);
  const paced = bottleneckRun(4, 60, undefined, true);
  const half = plain.durationMs / 2;
  const rate = (e: Endpoint): number =>
    (e.receivedBy(plain.durationMs) - e.receivedBy(half)) / half;
  const why = JSON.stringify({
    plainMean: plain.b.meanOccupancy(),
    pacedMean: paced.b.meanOccupancy(),
    plain: rate(plain.server),
    paced: rate(paced.server),
  });
  assert.ok(paced.b.meanOccupancy() < plain.b.meanOccupancy(), why);
  assert.ok(rate(paced.server) >= 0.95 * rate(plain.server), why);
});

for (const seed of [5, 6, 7]) {
  test(`two bulk flows sharing a bottleneck both progress and share fairly (Jain >= 0.8 over the second half, seed ${seed})`, () => {
    const net = createTestnet({ seed });
    const b = new Bottleneck(MTU + WIRE_OVERHEAD, 30);
    const flow = (): { client: Endpoint; server: Endpoint } =>
      net.connect({
        forward: { delayMs: 20, jitterMs: 2, bottleneck: b },
        backward: { delayMs: 20, jitterMs: 2 },
        client: small,
        server: small,
      });
    const a = flow();
    const c = flow();
    a.client.send(Infinity);
    // The second flow starts late, into a full pipe.
    net.at(2000, () => c.client.send(Infinity));
    const duration = 30_000;
    net.run({ maxMs: duration });
    const half = duration / 2;
    const x = [a, c].map((f) => f.server.receivedBy(duration) - f.server.receivedBy(half));
    const index = jain(x);
    const capacity = (MTU * half) / 1; // bytes the link could carry in the second half, about
    const why = JSON.stringify({ x, index, drops: b.drops });
    assert.ok(index >= 0.8, why);
    for (const v of x) assert.ok(v > 0.2 * capacity, `both progress: ${why}`);
    assert.ok((x[0] as number) + (x[1] as number) > 0.85 * capacity, `link busy: ${why}`);
    for (const f of [a, c]) assert.equal(f.server.firstMismatch, undefined);
  });
}

test("a small-message flow's requests all complete, promptly, while a bulk flow fills the bottleneck", () => {
  const net = createTestnet({ seed: 8 });
  const b = new Bottleneck(MTU + WIRE_OVERHEAD, 30);
  const path = (): { forward: PathSpec; backward: PathSpec } => ({
    forward: { delayMs: 20, jitterMs: 2, bottleneck: b },
    backward: { delayMs: 20, jitterMs: 2 },
  });
  const bulk = net.connect({ ...path(), client: small, server: small });
  const chat = net.connect({ ...path(), client: small, server: small });
  bulk.client.send(Infinity);
  // Requests of 200 bytes every 100 ms from 3 s on; the server answers each with 100 bytes.
  const request = 200;
  const response = 100;
  const count = 100;
  const sentAt: number[] = [];
  const doneAt: number[] = [];
  for (let i = 0; i < count; i++) {
    net.at(3000 + 100 * i, () => {
      sentAt.push(net.now);
      chat.client.send(request);
    });
  }
  let answered = 0;
  chat.server.onEvent = (e) => {
    if (e.type !== 'data') return;
    const complete = Math.floor(chat.server.received / request);
    for (; answered < complete; answered++) chat.server.send(response);
  };
  chat.client.onEvent = (e) => {
    if (e.type !== 'data') return;
    while (doneAt.length < Math.floor(chat.client.received / response)) doneAt.push(net.now);
  };
  net.run({ until: () => doneAt.length === count, maxMs: 60_000 });
  assert.equal(doneAt.length, count, 'every request answered');
  const latencies = doneAt.map((t, i) => t - (sentAt[i] as number));
  const worst = Math.max(...latencies);
  const sorted = [...latencies].sort((x, y) => x - y);
  const median = sorted[Math.floor(count / 2)] as number;
  const bulkBytes = bulk.server.receivedBy(net.now) - bulk.server.receivedBy(3000);
  const why = JSON.stringify({ worst, median, bulkBytes, drops: b.drops });
  // A round trip is 40 ms plus at most 30 packets of queue: the median stays near it.
  assert.ok(median < 40 + 30 + 50, why);
  assert.ok(worst < 2000, why);
  assert.ok(!bulk.client.t.finished, 'the bulk flow was still running');
  assert.ok(bulkBytes > 0.7 * MTU * (net.now - 3000), `the bulk flow kept the link busy: ${why}`);
  assert.equal(chat.server.firstMismatch, undefined);
  assert.equal(chat.client.firstMismatch, undefined);
});

test('any mix of loss, duplication, reordering, jitter and a bottleneck: both streams arrive intact and both ends close (property)', () => {
  fc.assert(
    fc.property(
      fc.record({
        seed: fc.integer({ min: 1, max: 2 ** 30 }),
        up: fc.integer({ min: 0, max: 300_000 }),
        down: fc.integer({ min: 0, max: 100_000 }),
        // Percentages, as integers so the values spread over the range.
        loss: fc.integer({ min: 0, max: 15 }).map((p) => p / 100),
        duplicate: fc.integer({ min: 0, max: 5 }).map((p) => p / 100),
        reorder: fc.integer({ min: 0, max: 20 }).map((p) => p / 100),
        jitterMs: fc.integer({ min: 0, max: 30 }),
        delayMs: fc.integer({ min: 1, max: 60 }),
        queue: fc.integer({ min: 4, max: 64 }),
        pacing: fc.boolean(),
        payload: fc.constantFrom(600, 1200, 16384),
      }),
      (o) => {
        const net = createTestnet({ seed: o.seed });
        const path = (): PathSpec => ({
          delayMs: o.delayMs,
          jitterMs: o.jitterMs,
          loss: o.loss,
          duplicate: o.duplicate,
          reorder: o.reorder,
        });
        const forward = { ...path(), bottleneck: new Bottleneck(2000, o.queue) };
        const t = { maxPayloadBytes: o.payload, pacing: o.pacing };
        const { client, server } = net.connect({ forward, backward: path(), client: t, server: t });
        client.send(o.up, { end: true });
        server.send(o.down, { end: true });
        net.run({ until: () => client.has('closed') && server.has('closed'), maxMs: 600_000 });
        const why = JSON.stringify({ ...o, now: net.now, c: client.log, s: server.log });
        assertIntact(server, o.up);
        assertIntact(client, o.down);
        assert.ok(client.has('closed') && server.has('closed'), why);
      },
    ),
    { numRuns: 100 },
  );
});
