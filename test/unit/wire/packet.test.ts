import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VmeshError } from '../../../src/errors/index.ts';
import {
  PACKET_HEADER_BYTES,
  PacketFlag,
  decodeErrorPayload,
  decodePacket,
  encodeErrorPayload,
  encodePacket,
} from '../../../src/wire/index.ts';
import type { Packet } from '../../../src/wire/index.ts';
import { packet } from './arbitraries.ts';

/** A slow, obviously-correct reference decoder written against docs/wire.md with DataView. */
function referenceDecode(bytes: Uint8Array): Packet {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hex = (at: number, n: number): string =>
    [...bytes.subarray(at, at + n)].map((x) => x.toString(16).padStart(2, '0')).join('');
  const flags = v.getUint8(3);
  const [rc, ri, ac, tc] = [v.getUint8(5), v.getUint8(6), v.getUint8(7), v.getUint8(8)];
  let pos = 60;
  const ids = (n: number): string[] =>
    Array.from({ length: n }, () => ((pos += 16), hex(pos - 16, 16)));
  const p: Packet = {
    kind: v.getUint8(1),
    protocol: v.getUint8(2),
    flags,
    hopLimit: v.getUint8(4),
    connection: hex(12, 8),
    source: hex(20, 16),
    destination: hex(36, 16),
    packetNumber: v.getUint32(52) * 2 ** 32 + v.getUint32(56),
    payload: new Uint8Array(),
  };
  if (rc > 0) {
    p.route = ids(rc);
    p.routeIndex = ri;
  }
  if (ac > 0) p.avoid = ids(ac);
  if ((flags & PacketFlag.TRACE) !== 0) {
    p.trace = Array.from({ length: tc }, () => {
      const r = { device: hex(pos, 16), timeMs: v.getUint32(pos + 16) };
      pos += 20;
      return r;
    });
  }
  p.payload = bytes.subarray(pos);
  return p;
}

const plain = (p: Packet): unknown =>
  JSON.parse(JSON.stringify({ ...p, payload: Buffer.from(p.payload).toString('hex') }));

test('encode/decode round trip and agreement with the reference decoder (property)', () => {
  fc.assert(
    fc.property(packet, (p) => {
      const bytes = encodePacket(p);
      const decoded = decodePacket(bytes);
      const expectedFlags =
        p.flags | (p.route ? PacketFlag.ROUTE : 0) | (p.avoid ? PacketFlag.AVOID : 0);
      assert.deepEqual(plain(decoded), plain({ ...p, flags: expectedFlags }));
      assert.deepEqual(plain(referenceDecode(bytes)), plain(decoded));
    }),
  );
});

test('random bytes decode or throw a VmeshError, nothing else (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      try {
        decodePacket(bytes);
      } catch (err) {
        assert.ok(err instanceof VmeshError, String(err));
        assert.ok(['VMESH_ERR_MALFORMED', 'VMESH_ERR_UNSUPPORTED_VERSION'].includes(err.code));
      }
    }),
    { numRuns: 2000 },
  );
});

test('every truncation and every single-bit flip of a valid packet decodes or throws a VmeshError (property)', () => {
  fc.assert(
    fc.property(packet, fc.nat(), fc.nat(7), (p, at, bit) => {
      const bytes = encodePacket(p);
      for (const cut of [0, 1, PACKET_HEADER_BYTES - 1, bytes.length - p.payload.length - 1]) {
        if (cut < 0 || cut >= bytes.length - p.payload.length) continue;
        assert.throws(() => decodePacket(bytes.subarray(0, cut)), VmeshError);
      }
      const flipped = Buffer.from(bytes);
      const i = at % PACKET_HEADER_BYTES;
      flipped[i] = (flipped[i] as number) ^ (1 << bit);
      try {
        decodePacket(flipped);
      } catch (err) {
        assert.ok(err instanceof VmeshError);
      }
    }),
  );
});

test('each header rule is enforced with the right code', () => {
  const base: Packet = {
    kind: 1,
    protocol: 1,
    flags: 0,
    hopLimit: 5,
    connection: '0'.repeat(16),
    source: 'a'.repeat(32),
    destination: 'b'.repeat(32),
    packetNumber: 1,
    payload: new Uint8Array([1, 2, 3]),
  };
  const good = encodePacket(base);
  const mutate = (at: number, value: number): Buffer => {
    const b = Buffer.from(good);
    b[at] = value;
    return b;
  };
  assert.throws(() => decodePacket(mutate(0, 2)), { code: 'VMESH_ERR_UNSUPPORTED_VERSION' });
  assert.throws(() => decodePacket(mutate(1, 9)), { code: 'VMESH_ERR_MALFORMED' }, 'kind');
  assert.throws(() => decodePacket(mutate(2, 0)), { code: 'VMESH_ERR_MALFORMED' }, 'protocol 0');
  assert.throws(
    () => decodePacket(mutate(3, 0x80)),
    { code: 'VMESH_ERR_MALFORMED' },
    'unknown flag',
  );
  assert.throws(
    () => decodePacket(mutate(3, PacketFlag.ROUTE)),
    { code: 'VMESH_ERR_MALFORMED' },
    'ROUTE without route',
  );
  assert.throws(
    () => decodePacket(mutate(7, 1)),
    { code: 'VMESH_ERR_MALFORMED' },
    'avoid count without flag',
  );
  assert.throws(
    () => decodePacket(mutate(8, 1)),
    { code: 'VMESH_ERR_MALFORMED' },
    'trace without flag',
  );
  assert.throws(() => decodePacket(mutate(10, 1)), { code: 'VMESH_ERR_MALFORMED' }, 'reserved');
  assert.throws(
    () => decodePacket(mutate(52, 0xff)),
    { code: 'VMESH_ERR_MALFORMED' },
    'packet number > 2^53',
  );
  assert.throws(() => encodePacket({ ...base, hopLimit: 256 }), { code: 'VMESH_ERR_MALFORMED' });
  assert.throws(() => encodePacket({ ...base, source: 'zz' }), { code: 'VMESH_ERR_MALFORMED' });
  assert.throws(() => encodePacket({ ...base, packetNumber: -1 }), { code: 'VMESH_ERR_MALFORMED' });
});

test('error payloads round trip, truncate long reasons at a character boundary, and reject garbage (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffff }),
      fc.string({ maxLength: 300 }),
      (wire, reason) => {
        const back = decodeErrorPayload(encodeErrorPayload({ wire, reason }));
        assert.equal(back.wire, wire);
        assert.ok(reason.startsWith(back.reason));
        assert.ok(Buffer.byteLength(back.reason) <= 255);
      },
    ),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 50 }), (bytes) => {
      try {
        decodeErrorPayload(bytes);
      } catch (err) {
        assert.ok(err instanceof VmeshError);
      }
    }),
  );
});
