// The vconn transport between a client and a server through a simulated
// channel on a virtual clock with a seeded RNG: delay, loss, reordering and
// duplication. Deterministic: assertions are on bytes, events and counts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { seeded } from '../../helpers/rng.ts';
import { VmeshError } from '../../../src/errors/index.ts';
import {
  RangeSet,
  RttEstimator,
  createTransport,
  decodeFrames,
  encodeFrames,
  MAX_ACK_RANGES,
} from '../../../src/transport/index.ts';
import type {
  StreamTransport,
  TransportEvent,
  TransportFrame,
  TransportOptions,
} from '../../../src/transport/index.ts';

interface Channel {
  loss: number;
  duplicate: number;
  delayMs: number;
  jitterMs: number;
  /** Drop everything from this time on (the peer vanished). */
  cutAt?: number;
}

const rng = seeded;

interface Side {
  t: StreamTransport;
  events: TransportEvent[];
  data: Buffer[];
  bytesOut: number;
}

/** Runs both ends until `done()` or `untilMs` of virtual time. */
function simulate(
  opts: {
    seed: number;
    channel: Channel;
    client?: Partial<TransportOptions>;
    server?: Partial<TransportOptions>;
    untilMs?: number;
  },
  script: (now: number, c: Side, s: Side) => void,
  done: (c: Side, s: Side) => boolean,
): { client: Side; server: Side; now: number } {
  const random = rng(opts.seed);
  const client: Side = {
    t: createTransport({ role: 'client', ...opts.client }),
    events: [],
    data: [],
    bytesOut: 0,
  };
  const server: Side = {
    t: createTransport({ role: 'server', ...opts.server }),
    events: [],
    data: [],
    bytesOut: 0,
  };
  const inflight: { at: number; to: Side; pn: number; payload: Uint8Array }[] = [];
  let now = 0;
  const until = opts.untilMs ?? 120000;
  const pump = (from: Side, to: Side): void => {
    for (const p of from.t.poll(now)) {
      from.bytesOut += p.payload.length;
      const copies = random() < opts.channel.duplicate ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        if (random() < opts.channel.loss) continue;
        if (opts.channel.cutAt !== undefined && now >= opts.channel.cutAt) continue;
        inflight.push({
          at: now + opts.channel.delayMs + random() * opts.channel.jitterMs,
          to,
          pn: p.packetNumber,
          payload: p.payload,
        });
      }
    }
    for (const e of from.t.events()) {
      from.events.push(e);
      if (e.type === 'data') {
        from.data.push(Buffer.from(e.data));
        from.t.consumed(e.data.length, now);
      }
    }
  };
  while (now <= until) {
    script(now, client, server);
    for (let i = 0; i < 4; i++) {
      pump(client, server);
      pump(server, client);
    }
    if (done(client, server)) break;
    inflight.sort((a, b) => a.at - b.at);
    const deadlines = [client.t.nextDeadline(), server.t.nextDeadline(), inflight[0]?.at].filter(
      (x): x is number => x !== undefined,
    );
    const next = Math.max(now + 1, Math.min(now + 50, ...deadlines));
    now = next;
    while (inflight.length > 0 && (inflight[0]?.at ?? Infinity) <= now) {
      const m = inflight.shift();
      if (m !== undefined) m.to.t.receive(m.pn, m.payload, now);
    }
  }
  return { client, server, now };
}

/** Client opens, server accepts, client sends `data` and ends; server echoes everything and ends. */
function echoScenario(
  seed: number,
  channel: Channel,
  data: Buffer,
  extra: Partial<TransportOptions> = {},
) {
  let written = false;
  let serverEnded = false;
  let echoed = 0;
  return simulate(
    { seed, channel, client: extra, server: extra },
    (now, c, s) => {
      if (now === 0) c.t.open(Buffer.from('{"service":"echo"}'), now);
      if (s.events.some((e) => e.type === 'openRequest') && s.t.stats().state === 'awaiting-accept')
        s.t.accept(now);
      if (!written && c.events.some((e) => e.type === 'open')) {
        written = true;
        for (let i = 0; i < data.length; i += 7000) c.t.write(data.subarray(i, i + 7000), now);
        c.t.end(now);
      }
      const have = s.data.reduce((n, b) => n + b.length, 0);
      if (have > echoed) {
        s.t.write(Buffer.concat(s.data).subarray(echoed, have), now);
        echoed = have;
      }
      if (!serverEnded && s.events.some((e) => e.type === 'end') && echoed === have) {
        serverEnded = true;
        s.t.end(now);
      }
    },
    (c, s) =>
      c.events.some((e) => e.type === 'closed' || e.type === 'error') &&
      s.events.some((e) => e.type === 'closed' || e.type === 'error'),
  );
}

test('a clean channel: open, transfer, echo, half-close and close on both sides', () => {
  const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
  const { client, server } = echoScenario(
    1,
    { loss: 0, duplicate: 0, delayMs: 5, jitterMs: 0 },
    data,
  );
  assert.ok(Buffer.concat(server.data).equals(data));
  assert.ok(Buffer.concat(client.data).equals(data));
  assert.deepEqual(
    client.events.filter((e) => e.type !== 'data' && e.type !== 'drain').map((e) => e.type),
    ['open', 'end', 'closed'],
  );
  assert.ok(server.events.some((e) => e.type === 'closed'));
  assert.equal(client.t.stats().retransmits, 0);
});

test('20% loss, duplication and reordering: every byte arrives once, in order (property over seeds and sizes)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.integer({ min: 0, max: 120_000 }),
      (seed, size) => {
        const data = Buffer.alloc(size);
        const r = rng(seed + 1);
        for (let i = 0; i < size; i++) data[i] = Math.floor(r() * 256);
        const { client, server } = echoScenario(
          seed,
          { loss: 0.2, duplicate: 0.1, delayMs: 10, jitterMs: 30 },
          data,
        );
        assert.ok(Buffer.concat(server.data).equals(data), 'server got the bytes');
        assert.ok(Buffer.concat(client.data).equals(data), 'client got the echo');
        assert.ok(
          client.events.some((e) => e.type === 'closed'),
          JSON.stringify(client.events.filter((e) => e.type === 'error')),
        );
      },
    ),
    { numRuns: 15 },
  );
});

test("a rejected open reaches the client as an error with the server's code", () => {
  const { client } = simulate(
    { seed: 3, channel: { loss: 0, duplicate: 0, delayMs: 5, jitterMs: 0 } },
    (now, c, s) => {
      if (now === 0) c.t.open(Buffer.from('x'), now);
      if (s.events.some((e) => e.type === 'openRequest') && s.t.stats().state === 'awaiting-accept')
        s.t.reject('VMESH_ERR_UNKNOWN_SERVICE', 'no such service', now);
    },
    (c) => c.t.finished,
  );
  assert.deepEqual(client.events.at(-1), {
    type: 'error',
    code: 'VMESH_ERR_UNKNOWN_SERVICE',
    message: 'no such service',
    remote: true,
  });
});

test('abort reaches the peer as an error; a vanished peer gives VMESH_ERR_TIMEOUT within the idle timeout', () => {
  const aborted = simulate(
    { seed: 4, channel: { loss: 0, duplicate: 0, delayMs: 5, jitterMs: 0 } },
    (now, c, s) => {
      if (now === 0) c.t.open(Buffer.from('x'), now);
      if (s.events.some((e) => e.type === 'openRequest') && s.t.stats().state === 'awaiting-accept')
        s.t.accept(now);
      if (c.events.some((e) => e.type === 'open') && !c.t.finished)
        c.t.abort('VMESH_ERR_CONN_RESET', 'bye', now);
    },
    (_c, s) => s.t.finished,
  );
  assert.deepEqual(aborted.server.events.at(-1), {
    type: 'error',
    code: 'VMESH_ERR_CONN_RESET',
    message: 'bye',
    remote: true,
  });

  const vanished = simulate(
    {
      seed: 5,
      channel: { loss: 0, duplicate: 0, delayMs: 5, jitterMs: 0, cutAt: 100 },
      client: { idleTimeoutMs: 5000 },
    },
    (now, c, s) => {
      if (now === 0) c.t.open(Buffer.from('x'), now);
      if (s.events.some((e) => e.type === 'openRequest') && s.t.stats().state === 'awaiting-accept')
        s.t.accept(now);
      if (now >= 200 && now < 260) c.t.write(Buffer.alloc(1000), now);
    },
    (c) => c.t.finished,
  );
  const last = vanished.client.events.at(-1);
  assert.equal(last?.type, 'error');
  assert.equal(last?.type === 'error' ? last.code : '', 'VMESH_ERR_TIMEOUT');
  assert.ok(vanished.now <= 200 + 5000 + 100, `gave up at ${vanished.now}`);
});

test('flow control: a receiver that does not read holds the sender to its window; reading resumes it', () => {
  const window = 50_000;
  let consumedOnce = false;
  const client = createTransport({ role: 'client', receiveWindowBytes: window });
  const server = createTransport({ role: 'server', receiveWindowBytes: window });
  const deliver = (from: StreamTransport, to: StreamTransport, now: number): number => {
    let bytes = 0;
    for (const p of from.poll(now)) {
      for (const f of decodeFrames(p.payload)) if (f.kind === 'stream') bytes += f.data.length;
      to.receive(p.packetNumber, p.payload, now);
    }
    return bytes;
  };
  client.open(Buffer.from('x'), 0);
  let sentStream = 0;
  let delivered = 0;
  for (let now = 0; now < 2000; now += 10) {
    sentStream += deliver(client, server, now);
    for (const e of server.events()) {
      if (e.type === 'openRequest') server.accept(now);
      if (e.type === 'data') delivered += e.data.length;
    }
    deliver(server, client, now);
    client.events();
    if (now === 20) client.write(Buffer.alloc(200_000), now);
    if (now === 1000 && !consumedOnce) {
      assert.equal(delivered, window, 'exactly one window delivered while the app did not read');
      assert.ok(sentStream <= window, `sent ${sentStream} stream bytes, window ${window}`);
      server.consumed(delivered, now);
      consumedOnce = true;
    }
  }
  assert.ok(delivered > window, 'reading opened the window again');
});

test('a peer that sends past the window is aborted with VMESH_ERR_FLOW_CONTROL', () => {
  const server = createTransport({ role: 'server', receiveWindowBytes: 1000 });
  server.receive(0, encodeFrames([{ kind: 'open', request: Buffer.from('x') }]), 0);
  server.accept(0);
  server.receive(
    1,
    encodeFrames([{ kind: 'stream', offset: 0, fin: false, data: Buffer.alloc(2000) }]),
    1,
  );
  const events = server.events();
  assert.deepEqual(events.at(-1), {
    type: 'error',
    code: 'VMESH_ERR_FLOW_CONTROL',
    message: 'peer sent up to 2000 past its window 1000',
    remote: false,
  });
  const close = server
    .poll(2)
    .flatMap((p) => decodeFrames(p.payload))
    .find((f) => f.kind === 'close');
  assert.equal(close?.kind === 'close' ? close.code : '', 'VMESH_ERR_FLOW_CONTROL');
});

test('malformed and duplicate packets are dropped and counted, never thrown (property)', () => {
  const server = createTransport({ role: 'server' });
  server.receive(0, encodeFrames([{ kind: 'open', request: Buffer.from('x') }]), 0);
  server.receive(0, encodeFrames([{ kind: 'open', request: Buffer.from('x') }]), 0);
  assert.equal(server.stats().duplicatesDropped, 1);
  let pn = 1;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      server.receive(pn++, bytes, 1);
    }),
  );
  assert.ok(server.stats().malformedDropped > 0);
});

test('transport frames round trip and the decoder throws only VmeshError (property)', () => {
  const frame: fc.Arbitrary<TransportFrame> = fc.oneof(
    fc.record({ kind: fc.constant('open' as const), request: fc.uint8Array({ maxLength: 50 }) }),
    fc.constant({ kind: 'accept' as const }),
    fc.constant({ kind: 'ping' as const }),
    fc.record({
      kind: fc.constant('stream' as const),
      offset: fc.integer({ min: 0, max: 2 ** 40 }),
      fin: fc.boolean(),
      data: fc.uint8Array({ maxLength: 50 }),
    }),
    fc.record({
      kind: fc.constant('max-data' as const),
      limit: fc.integer({ min: 0, max: 2 ** 47 }),
    }),
    fc.record({
      kind: fc.constant('close' as const),
      code: fc.stringMatching(/^[A-Z_]{0,30}$/),
      reason: fc.string({ maxLength: 40 }),
    }),
    fc
      .tuple(
        fc.integer({ min: 0, max: 0xffff }),
        fc.uniqueArray(fc.integer({ min: 0, max: 2 ** 47 }), { minLength: 2, maxLength: 64 }),
      )
      .map(([delayMs, xs]) => {
        // Sorted distinct bounds paired up: disjoint inclusive ranges, highest first.
        const bounds = [...xs].sort((a, b) => b - a).slice(0, 2 * MAX_ACK_RANGES);
        const ranges: [number, number][] = [];
        for (let i = 0; i + 1 < bounds.length; i += 2)
          ranges.push([bounds[i + 1] as number, bounds[i] as number]);
        return { kind: 'ack' as const, delayMs, ranges };
      }),
  );
  fc.assert(
    fc.property(fc.array(frame, { minLength: 1, maxLength: 6 }), (frames) => {
      const norm = (fs: TransportFrame[]): unknown =>
        JSON.parse(
          JSON.stringify(
            fs.map((f) =>
              f.kind === 'stream'
                ? { ...f, data: Buffer.from(f.data).toString('hex') }
                : f.kind === 'open'
                  ? { ...f, request: Buffer.from(f.request).toString('hex') }
                  : f,
            ),
          ),
        );
      assert.deepEqual(norm(decodeFrames(encodeFrames(frames))), norm(frames));
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      try {
        decodeFrames(bytes);
      } catch (err) {
        assert.ok(err instanceof VmeshError);
      }
    }),
    { numRuns: 2000 },
  );
});

test('RTT estimator follows RFC 6298 (same smoothing as RFC 9002 §5.3 with no ack delay) on a known sequence', () => {
  const r = new RttEstimator(1000, 200, 10000);
  assert.equal(r.rto(), 1000);
  r.sample(100);
  assert.equal(r.srtt, 100);
  assert.equal(r.rttvar, 50);
  assert.equal(r.rto(), 300);
  r.sample(200);
  assert.equal(r.rttvar, 0.75 * 50 + 0.25 * 100);
  assert.equal(r.srtt, 0.875 * 100 + 0.125 * 200);
  r.timedOut();
  assert.equal(r.rto(), Math.min(10000, 2 * (r.srtt + 4 * r.rttvar)));
});

test('RangeSet merges, removes and answers membership like a Set (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.nat(60), fc.nat(10)), { maxLength: 30 }),
      (ops) => {
        const set = new RangeSet();
        const ref = new Set<number>();
        for (const [add, start, len] of ops) {
          if (add) {
            const fresh = [...Array(len).keys()].filter((i) => !ref.has(start + i)).length;
            assert.equal(set.add(start, start + len), fresh);
            for (let i = 0; i < len; i++) ref.add(start + i);
          } else {
            set.remove(start, start + len);
            for (let i = 0; i < len; i++) ref.delete(start + i);
          }
        }
        for (let i = 0; i < 80; i++) {
          assert.equal(set.has(i), ref.has(i), `value ${i}`);
          let end = i;
          while (ref.has(end)) end++;
          assert.equal(set.contiguousFrom(i), end, `contiguous from ${i}`);
          for (const len of [1, 3, 10]) {
            const any = [...Array(len).keys()].some((k) => ref.has(i + k));
            assert.equal(set.intersects(i, i + len), any, `[${i}, ${i + len})`);
          }
        }
        // Ranges stay sorted, disjoint, non-touching and non-empty.
        const list = set.list();
        list.forEach(([s, e], k) => {
          assert.ok(s < e);
          if (k > 0) assert.ok((list[k - 1] as readonly [number, number])[1] < s);
        });
      },
    ),
  );
});
