import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VmeshError } from '../../../src/errors/index.ts';
import {
  FrameDecoder,
  decodeControl,
  decodePing,
  encodeControl,
  encodeFrame,
  encodePing,
} from '../../../src/wire/index.ts';

const onlyVmeshErrors = (decode: (b: Uint8Array) => unknown) =>
  fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    try {
      decode(bytes);
    } catch (err) {
      assert.ok(err instanceof VmeshError, String(err));
    }
  });

test('frames: any split of a frame sequence yields the same frames (every position, and random chunking)', () => {
  const frames = [
    { type: 5, body: Buffer.from('hello') },
    { type: 4, body: Buffer.alloc(0) },
    { type: 99, body: Buffer.alloc(300, 7) },
  ];
  const stream = Buffer.concat(frames.map((f) => encodeFrame(f.type, f.body)));
  const norm = (fs: { type: number; body: Uint8Array }[]): string[] =>
    fs.map((f) => `${f.type}:${Buffer.from(f.body).toString('hex')}`);
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j += 7) {
      const d = new FrameDecoder();
      const out = [
        ...d.push(stream.subarray(0, i)),
        ...d.push(stream.subarray(i, j)),
        ...d.push(stream.subarray(j)),
      ];
      assert.deepEqual(norm(out), norm(frames));
      assert.equal(d.buffered, 0);
    }
  }
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          type: fc.integer({ min: 0, max: 255 }),
          body: fc.uint8Array({ maxLength: 100 }),
        }),
        { maxLength: 10 },
      ),
      fc.array(fc.nat(), { maxLength: 10 }),
      (fs, cuts) => {
        const bytes = Buffer.concat(fs.map((f) => encodeFrame(f.type, f.body)));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const d = new FrameDecoder();
        const out: { type: number; body: Uint8Array }[] = [];
        let prev = 0;
        for (const p of [...points, bytes.length]) {
          out.push(
            ...d
              .push(bytes.subarray(prev, p))
              .map((f) => ({ type: f.type, body: Buffer.from(f.body) })),
          );
          prev = p;
        }
        assert.deepEqual(norm(out), norm(fs));
      },
    ),
  );
});

test('frames: a length over the limit or zero is fatal, with its code, and stays failed', () => {
  const big = new FrameDecoder({ maxFrameBytes: 100 });
  const header = Buffer.alloc(4);
  header.writeUInt32BE(101);
  assert.throws(() => big.push(header), { code: 'VMESH_ERR_FRAME_TOO_LARGE' });
  assert.throws(() => big.push(encodeFrame(1, Buffer.alloc(1))), {
    code: 'VMESH_ERR_FRAME_TOO_LARGE',
  });
  const zero = new FrameDecoder();
  assert.throws(() => zero.push(Buffer.alloc(4)), { code: 'VMESH_ERR_MALFORMED' });
  fc.assert(onlyVmeshErrors((b) => new FrameDecoder({ maxFrameBytes: 64 }).push(b)));
});

test('control envelope round trips; garbage throws only VmeshError (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
      fc.uint8Array({ maxLength: 100 }),
      (protocol, type, body) => {
        const back = decodeControl(encodeControl({ protocol, type, body }));
        assert.deepEqual(
          { ...back, body: Buffer.from(back.body) },
          { protocol, type, body: Buffer.from(body) },
        );
      },
    ),
  );
  fc.assert(onlyVmeshErrors(decodeControl));
  assert.throws(() => decodeControl(Buffer.from([2, 1, 1, 0])), {
    code: 'VMESH_ERR_UNSUPPORTED_VERSION',
  });
});

test('ping bodies are exactly 8 bytes', () => {
  fc.assert(
    fc.property(fc.double({ noNaN: true }), (v) => assert.equal(decodePing(encodePing(v)), v)),
  );
  fc.assert(onlyVmeshErrors(decodePing));
});
