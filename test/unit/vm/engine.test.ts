// The VM engine driven directly (no Worker): forwarding decisions, hop limit,
// trace records, flood duplicate suppression, errors back to the source, and
// robustness to garbage. The Worker shell around it is exercised by the
// integration tests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ERRORS } from '../../../src/errors/index.ts';
import type { ForwardingTable } from '../../../src/routing/index.ts';
import { VmEngine } from '../../../src/vm/engine.ts';
import { DEFAULT_VM_OPTIONS } from '../../../src/vm/index.ts';
import type { VmSpec, VmToDevice } from '../../../src/vm/index.ts';
import {
  PacketFlag,
  PacketKind,
  decodeErrorPayload,
  decodePacket,
  encodePacket,
} from '../../../src/wire/index.ts';
import type { Packet } from '../../../src/wire/index.ts';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
const D = 'd'.repeat(32);
const CONN = '0123456789abcdef';

function table(
  mode: 'unicast' | 'flood' | 'source',
  nextHops: Record<string, string>,
  neighbours: string[],
  paths?: Record<string, string[]>,
): ForwardingTable {
  return {
    protocol: 1,
    version: 1,
    self: B,
    mode,
    avoid: [],
    neighbours,
    nextHops,
    ...(paths === undefined ? {} : { paths }),
  };
}

function relay(fib: ForwardingTable): {
  engine: VmEngine;
  posted: VmToDevice[];
  clock: { now: number };
} {
  const posted: VmToDevice[] = [];
  const clock = { now: 1000 };
  const spec: VmSpec = {
    vmId: 'test',
    role: 'relay',
    connection: CONN,
    protocol: 1,
    protocolName: 'link-state',
    self: B,
    source: A,
    destination: D,
    avoid: [],
    fib,
    options: DEFAULT_VM_OPTIONS,
  };
  const engine = new VmEngine(spec, {
    post: (m) => posted.push(m),
    now: () => clock.now,
    wake: () => undefined,
  });
  engine.start();
  return { engine, posted, clock };
}

function packet(over: Partial<Packet> = {}): Packet {
  return {
    kind: PacketKind.DATA,
    protocol: 1,
    flags: PacketFlag.SYN | PacketFlag.TRACE,
    hopLimit: 5,
    connection: CONN,
    source: A,
    destination: D,
    packetNumber: 7,
    payload: Buffer.from('sealed end-to-end'),
    ...over,
  };
}

function sent(posted: VmToDevice[]): { peer: string; packet: Packet }[] {
  return posted
    .filter((m): m is Extract<VmToDevice, { t: 'send' }> => m.t === 'send')
    .flatMap((m) => m.items.map((i) => ({ peer: i.peer, packet: decodePacket(i.bytes) })));
}

test('a unicast relay forwards to the next hop, decrements the hop limit and appends its trace record', () => {
  const { engine, posted } = relay(table('unicast', { [D]: D, [A]: A }, [A, D]));
  engine.onMessage({ t: 'packets', items: [{ peer: A, bytes: encodePacket(packet()) }] });
  const out = sent(posted);
  assert.equal(out.length, 1);
  assert.equal(out[0]?.peer, D);
  assert.equal(out[0]?.packet.hopLimit, 4);
  assert.deepEqual(
    out[0]?.packet.trace?.map((r) => r.device),
    [B],
  );
  assert.deepEqual(Buffer.from(out[0]?.packet.payload ?? []), Buffer.from('sealed end-to-end'));
});

test('hop limit 0: dropped, and an ERROR packet (TTL expired) goes back toward the source', () => {
  const { engine, posted } = relay(table('unicast', { [D]: D, [A]: A }, [A, D]));
  engine.onMessage({
    t: 'packets',
    items: [{ peer: A, bytes: encodePacket(packet({ hopLimit: 0 })) }],
  });
  const out = sent(posted);
  assert.equal(out.length, 1);
  assert.equal(out[0]?.peer, A);
  assert.equal(out[0]?.packet.kind, PacketKind.ERROR);
  assert.equal(out[0]?.packet.destination, A);
  assert.equal(
    decodeErrorPayload(out[0]?.packet.payload ?? new Uint8Array()).wire,
    ERRORS.VMESH_ERR_TTL_EXPIRED.wire,
  );
});

test('no route onward: an ERROR packet (no route) goes back; an ERROR is never answered with an ERROR', () => {
  const { engine, posted } = relay(table('unicast', { [A]: A }, [A]));
  engine.onMessage({ t: 'packets', items: [{ peer: A, bytes: encodePacket(packet()) }] });
  const out = sent(posted);
  assert.equal(out.length, 1);
  assert.equal(
    decodeErrorPayload(out[0]?.packet.payload ?? new Uint8Array()).wire,
    ERRORS.VMESH_ERR_NO_ROUTE.wire,
  );
  posted.length = 0;
  const error = packet({
    kind: PacketKind.ERROR,
    source: D,
    destination: C,
    flags: 0,
    payload: Buffer.from([0, 8, 0]),
  });
  engine.onMessage({ t: 'packets', items: [{ peer: D, bytes: encodePacket(error) }] });
  assert.equal(sent(posted).length, 0);
});

test('source routing: a relay follows the route in the packet, salvages with its own path, and drops misrouted packets', () => {
  const E = 'e'.repeat(32);
  // Route A B C D; C is a live neighbour: the packet goes to C with the index moved on.
  const { engine, posted } = relay(table('source', {}, [A, C, E], { [D]: [B, E, D] }));
  const routed = packet({ route: [A, B, C, D], routeIndex: 1 });
  engine.onMessage({ t: 'packets', items: [{ peer: A, bytes: encodePacket(routed) }] });
  let out = sent(posted);
  assert.equal(out[0]?.peer, C);
  assert.deepEqual(out[0]?.packet.route, [A, B, C, D]);
  assert.equal(out[0]?.packet.routeIndex, 2);
  // C is gone: salvaged by B's own path B E D (RFC 4728 §8.4.2).
  posted.length = 0;
  engine.onMessage({
    t: 'fib',
    fib: { ...table('source', {}, [A, E], { [D]: [B, E, D] }), version: 2 },
  });
  engine.onMessage({
    t: 'packets',
    items: [{ peer: A, bytes: encodePacket({ ...routed, packetNumber: 8 }) }],
  });
  out = sent(posted);
  assert.equal(out[0]?.peer, E);
  assert.deepEqual(out[0]?.packet.route, [A, B, E, D]);
  assert.equal(out[0]?.packet.routeIndex, 2);
  // A packet whose route says another device holds it is dropped, not forwarded.
  posted.length = 0;
  engine.onMessage({
    t: 'packets',
    items: [
      {
        peer: A,
        bytes: encodePacket(packet({ route: [A, C, D], routeIndex: 1, packetNumber: 9 })),
      },
    ],
  });
  assert.equal(sent(posted).length, 0);
  // No live next hop and no own path: an ERROR goes back along the reversed route.
  engine.onMessage({ t: 'fib', fib: { ...table('source', {}, [A], {}), version: 3 } });
  engine.onMessage({
    t: 'packets',
    items: [{ peer: A, bytes: encodePacket({ ...routed, packetNumber: 10 }) }],
  });
  out = sent(posted);
  assert.equal(out.length, 1);
  assert.equal(out[0]?.peer, A);
  assert.equal(out[0]?.packet.kind, PacketKind.ERROR);
  assert.deepEqual(out[0]?.packet.route, [B, A]);
});

test('a flood relay sends to every neighbour but the incoming one and the source, once per packet number', () => {
  const { engine, posted } = relay(table('flood', { [D]: C }, [A, C, 'e'.repeat(32)]));
  const bytes = encodePacket(packet());
  engine.onMessage({
    t: 'packets',
    items: [
      { peer: A, bytes },
      { peer: C, bytes },
    ],
  });
  const out = sent(posted);
  assert.deepEqual(out.map((o) => o.peer).sort(), [C, 'e'.repeat(32)]);
  // When the destination is a neighbour, only the destination gets it.
  const r2 = relay(table('flood', { [D]: D }, [A, C, D]));
  r2.engine.onMessage({
    t: 'packets',
    items: [{ peer: A, bytes: encodePacket(packet({ packetNumber: 8 })) }],
  });
  assert.deepEqual(
    sent(r2.posted).map((o) => o.peer),
    [D],
  );
});

test('packets of another connection and garbage bytes are dropped, never thrown (property)', () => {
  const { engine, posted } = relay(table('unicast', { [D]: D }, [A, D]));
  engine.onMessage({
    t: 'packets',
    items: [{ peer: A, bytes: encodePacket(packet({ connection: 'f'.repeat(16) })) }],
  });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      engine.onMessage({ t: 'packets', items: [{ peer: A, bytes }] });
    }),
  );
  assert.equal(sent(posted).length, 0);
});

test('a newer forwarding table replaces the old one; an older one is ignored', () => {
  const { engine, posted } = relay(table('unicast', { [D]: D }, [A, D]));
  engine.onMessage({ t: 'fib', fib: { ...table('unicast', { [D]: C }, [A, C]), version: 3 } });
  engine.onMessage({ t: 'fib', fib: { ...table('unicast', { [D]: D }, [A, D]), version: 2 } });
  engine.onMessage({ t: 'packets', items: [{ peer: A, bytes: encodePacket(packet()) }] });
  assert.equal(sent(posted)[0]?.peer, C);
});

test('a relay ends after both directions finished (FIN) and the linger passed, or when idle', () => {
  const { engine, posted, clock } = relay(table('unicast', { [D]: D, [A]: A }, [A, D]));
  engine.onMessage({
    t: 'packets',
    items: [{ peer: A, bytes: encodePacket(packet({ flags: PacketFlag.FIN })) }],
  });
  engine.onMessage({
    t: 'packets',
    items: [
      {
        peer: D,
        bytes: encodePacket(
          packet({ flags: PacketFlag.FIN, source: D, destination: A, packetNumber: 3 }),
        ),
      },
    ],
  });
  clock.now += DEFAULT_VM_OPTIONS.finLingerMs;
  engine.onTimer();
  assert.deepEqual(
    posted.filter((m) => m.t === 'done'),
    [{ t: 'done', reason: 'fin' }],
  );
  const idle = relay(table('unicast', { [D]: D }, [A, D]));
  idle.clock.now += DEFAULT_VM_OPTIONS.relayIdleMs;
  idle.engine.onTimer();
  assert.deepEqual(
    idle.posted.filter((m) => m.t === 'done'),
    [{ t: 'done', reason: 'idle' }],
  );
});
