// SecureChannel: what a link seals, what it leaves to the end-to-end seal,
// and what makes it fail (tampering, reordering, injection), with rekeying.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { CipherState } from '../../../src/crypto/index.ts';
import { SecureChannel } from '../../../src/link/index.ts';
import { FrameType, PacketKind, decodePacket, encodePacket } from '../../../src/wire/index.ts';

function pair(rekeyAfter?: number): [SecureChannel, SecureChannel] {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  return [
    new SecureChannel(new CipherState(k1), new CipherState(k2), rekeyAfter),
    new SecureChannel(new CipherState(k2), new CipherState(k1), rekeyAfter),
  ];
}

const packet = (payload: Buffer): Buffer =>
  encodePacket({
    kind: PacketKind.DATA,
    protocol: 1,
    flags: 0,
    hopLimit: 9,
    connection: '0123456789abcdef',
    source: 'a'.repeat(32),
    destination: 'd'.repeat(32),
    packetNumber: 42,
    payload,
    trace: [{ device: 'b'.repeat(32), timeMs: 7 }],
  });

/** The frame's type byte and body. */
const split = (frame: Buffer): [number, Buffer] => [frame[4] as number, frame.subarray(5)];

test('control frames travel sealed whole; packets with their header sealed and payload as is', () => {
  const [a, b] = pair();
  const control = a.seal(FrameType.CONTROL, Buffer.from('routing secret'));
  assert.equal(control[4], FrameType.SEALED);
  assert.ok(!control.includes(Buffer.from('routing secret')));
  assert.deepEqual(b.open(...split(control)), {
    type: FrameType.CONTROL,
    body: Buffer.from('routing secret'),
  });

  const payload = Buffer.from('end-to-end ciphertext already');
  const p = packet(payload);
  const sealed = a.seal(FrameType.PACKET, p);
  assert.equal(sealed[4], FrameType.SEALED_PACKET);
  // The header's addresses are hidden; the payload is passed as it is (sealed end to end).
  assert.ok(!sealed.includes(Buffer.from('aaaaaaaa', 'hex')));
  assert.ok(sealed.includes(payload));
  const opened = b.open(...split(sealed));
  assert.equal(opened.type, FrameType.PACKET);
  assert.deepEqual(Buffer.from(opened.body), p);
  assert.equal(decodePacket(opened.body).packetNumber, 42);
  // Something that is not a packet is sealed whole (the receiver's switch drops it).
  const junk = a.seal(FrameType.PACKET, Buffer.from('not a packet'));
  assert.equal(junk[4], FrameType.SEALED);
  assert.deepEqual(b.open(...split(junk)).body, Buffer.from('not a packet'));
});

test('a flipped bit in a sealed frame or a sealed header, a reordered, replayed or injected frame: VMESH_ERR_AUTH_FAILED', () => {
  for (const make of [
    (a: SecureChannel) => a.seal(FrameType.CONTROL, Buffer.from('x')),
    (a: SecureChannel) => a.seal(FrameType.PACKET, packet(Buffer.from('payload'))),
  ]) {
    const [a, b] = pair();
    const frame = make(a);
    const flipped = Buffer.from(frame);
    flipped[10] = (flipped[10] as number) ^ 1;
    assert.throws(() => b.open(...split(flipped)), { code: 'VMESH_ERR_AUTH_FAILED' });
  }
  const [a, b] = pair();
  const f1 = a.seal(FrameType.CONTROL, Buffer.from('1'));
  const f2 = a.seal(FrameType.CONTROL, Buffer.from('2'));
  assert.throws(() => b.open(...split(f2)), { code: 'VMESH_ERR_AUTH_FAILED' }); // reordered
  b.open(...split(f1));
  assert.throws(() => b.open(...split(f1)), { code: 'VMESH_ERR_AUTH_FAILED' }); // replayed
  const [mallory] = pair();
  assert.throws(() => b.open(...split(mallory.seal(FrameType.CONTROL, Buffer.from('i'))))); // injected
  // An unsealed frame type is not opened at all.
  assert.throws(() => b.open(FrameType.CONTROL, Buffer.from('clear')), {
    code: 'VMESH_ERR_MALFORMED',
  });
});

test('the payload is bound to its length: truncating or extending it fails; changing its bytes is left to the end-to-end seal', () => {
  const [a, b] = pair();
  const sealed = a.seal(FrameType.PACKET, packet(Buffer.from('0123456789')));
  assert.throws(() => b.open(FrameType.SEALED_PACKET, sealed.subarray(5, sealed.length - 1)), {
    code: 'VMESH_ERR_AUTH_FAILED',
  });
  const [c, d] = pair();
  const s2 = c.seal(FrameType.PACKET, packet(Buffer.from('0123456789')));
  const changed = Buffer.from(s2);
  changed[changed.length - 1] = (changed[changed.length - 1] as number) ^ 1;
  // Documented design (docs/security.md): the link does not check payload bytes.
  assert.equal(d.open(...split(changed)).type, FrameType.PACKET);
});

test('both directions rekey after the same number of frames and keep talking (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 30 }),
      (every, bodies) => {
        const [a, b] = pair(every);
        for (const body of bodies) {
          const got = b.open(...split(a.seal(FrameType.CONTROL, body)));
          assert.deepEqual(Buffer.from(got.body), Buffer.from(body));
          const back = a.open(...split(b.seal(FrameType.PING, body)));
          assert.equal(back.type, FrameType.PING);
        }
        assert.equal(a.counts.sent, bodies.length);
      },
    ),
  );
  // After a rekey, the old key no longer opens frames.
  const k = randomBytes(32);
  const sender = new SecureChannel(new CipherState(k), new CipherState(randomBytes(32)), 1);
  const stale = new SecureChannel(new CipherState(randomBytes(32)), new CipherState(k), 1 << 20);
  stale.open(...split(sender.seal(FrameType.CONTROL, Buffer.from('before'))));
  assert.throws(() => stale.open(...split(sender.seal(FrameType.CONTROL, Buffer.from('after')))), {
    code: 'VMESH_ERR_AUTH_FAILED',
  });
});

test('random bytes never open, and never throw anything but a VmeshError (property)', () => {
  const [, b] = pair();
  fc.assert(
    fc.property(
      fc.constantFrom(FrameType.SEALED, FrameType.SEALED_PACKET),
      fc.uint8Array({ maxLength: 200 }),
      (type, body) => {
        assert.throws(
          () => b.open(type, body),
          (e: { code?: string }) =>
            e.code === 'VMESH_ERR_AUTH_FAILED' || e.code === 'VMESH_ERR_MALFORMED',
        );
      },
    ),
  );
});
