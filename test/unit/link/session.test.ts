// Links over the in-memory transport: handshake, frames, keepalive, dead
// peers, framing errors, queue limits and duplicate-link resolution.
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { generateIdentity } from '../../../src/crypto/index.ts';
import type { Identity } from '../../../src/crypto/index.ts';
import { LinkManager, LinkSession, MemoryNetwork, duplexPair } from '../../../src/link/index.ts';
import type { Link } from '../../../src/link/index.ts';
import { Counters, silentLogger } from '../../../src/observe/index.ts';
import { FrameType, encodeFrame, encodeHello } from '../../../src/wire/index.ts';

const fast = { keepaliveIntervalMs: 20, deadAfterMs: 150, handshakeTimeoutMs: 200 };

async function pair(
  opts = fast,
): Promise<{ a: LinkSession; b: LinkSession; ia: Identity; ib: Identity; ca: Counters }> {
  const [x, y] = duplexPair();
  const ia = generateIdentity();
  const ib = generateIdentity();
  const ca = new Counters();
  const a = new LinkSession(x, 'outbound', opts, ca);
  const b = new LinkSession(y, 'inbound', opts, new Counters());
  await Promise.all([a.handshake(ia, 'A'), b.handshake(ib, 'B')]);
  return { a, b, ia, ib, ca };
}

const closed = (l: Link): Promise<string> => new Promise((resolve) => l.onClose(resolve));

test("handshake: each side learns the other's id and name; frames flow both ways; PINGs measure RTT", async () => {
  const { a, b, ia, ib } = await pair();
  assert.equal(a.remote, ib.deviceId);
  assert.equal(b.remote, ia.deviceId);
  assert.equal(a.remoteName, 'B');
  const got: [number, string][] = [];
  b.onFrame((type, body) => got.push([type, Buffer.from(body).toString()]));
  assert.equal(a.send(FrameType.PACKET, Buffer.from('one')), true);
  assert.equal(a.send(99, Buffer.from('unknown type')), true);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(got, [
    [FrameType.PACKET, 'one'],
    [99, 'unknown type'],
  ]);
  assert.ok(a.rttMs !== undefined && a.rttMs >= 0);
  a.close('test over');
  assert.match(await closed(b), /closed/);
});

test("handshake: a silent peer times out; a peer claiming an id that is not its keys' is refused", async () => {
  const [x] = duplexPair();
  const silent = new LinkSession(x, 'outbound', fast, new Counters());
  await assert.rejects(silent.handshake(generateIdentity(), 'A'), { code: 'VMESH_ERR_HANDSHAKE' });
  assert.equal(silent.closed, true);

  const [y, z] = duplexPair();
  const honest = new LinkSession(y, 'inbound', fast, new Counters());
  const liar = generateIdentity();
  const pending = honest.handshake(generateIdentity(), 'B');
  z.write(
    encodeFrame(
      FrameType.HELLO,
      encodeHello({
        device: generateIdentity().deviceId,
        signingKey: liar.signingPublic,
        agreementKey: liar.agreementPublic,
        name: 'M',
      }),
    ),
  );
  await assert.rejects(pending, {
    code: 'VMESH_ERR_HANDSHAKE',
    message: /does not match its keys/,
  });
});

test('a peer that stops answering is closed as dead', async () => {
  const [x, y] = duplexPair();
  const ia = generateIdentity();
  const ib = generateIdentity();
  const a = new LinkSession(x, 'outbound', fast, new Counters());
  const fake = y as Duplex;
  // The far end answers the handshake by hand, then says nothing more.
  const done = a.handshake(ia, 'A');
  fake.write(
    encodeFrame(
      FrameType.HELLO,
      encodeHello({
        device: ib.deviceId,
        signingKey: ib.signingPublic,
        agreementKey: ib.agreementPublic,
        name: 'B',
      }),
    ),
  );
  await done;
  assert.match(await closed(a), /^dead/);
});

test('a frame over maxFrameBytes closes the link with a framing error; it is counted', async () => {
  const { a, b, ca } = await pair({ ...fast, deadAfterMs: 5000 });
  void a;
  const bStream = (b as unknown as { stream: Duplex }).stream;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(10 * 1024 * 1024);
  bStream.write(header);
  assert.match(await closed(a), /^framing-error/);
  assert.equal(ca.get('link.closed', { reason: 'framing-error' }), 1);
});

test('when the outgoing queue is over its limit, frames are dropped and counted', async () => {
  const { a } = await pair({ ...fast, maxQueuedBytes: 1000 } as typeof fast);
  const stream = (a as unknown as { stream: Duplex }).stream;
  stream.cork();
  let refused = 0;
  for (let i = 0; i < 10; i++) if (!a.send(FrameType.PACKET, Buffer.alloc(600))) refused++;
  assert.equal(
    a.send(FrameType.CONTROL, Buffer.alloc(600)),
    true,
    'control frames are not subject to the data queue limit',
  );
  assert.ok(refused > 0);
  assert.equal(a.stats().dropped['queue-full'], refused);
  a.close();
});

test('LinkManager: when both sides dial each other exactly one link survives on each side, the same one', async () => {
  const net = new MemoryNetwork();
  const ia = generateIdentity();
  const ib = generateIdentity();
  const make = (identity: Identity, name: string, listen: string, dial: string): LinkManager =>
    new LinkManager({
      identity,
      name,
      transport: net.transport(),
      listen,
      neighbours: [{ address: dial }],
      logger: silentLogger,
      counters: new Counters(),
      options: { redialMinMs: 20, redialMaxMs: 50 },
    });
  const a = make(ia, 'A', 'mem:a', 'mem:b');
  const b = make(ib, 'B', 'mem:b', 'mem:a');
  await Promise.all([a.start(), b.start()]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(a.links().length, 1);
  assert.equal(b.links().length, 1);
  const dialledByLower = ia.deviceId < ib.deviceId ? 'outbound' : 'inbound';
  assert.equal(a.links()[0]?.direction, dialledByLower);
  // The surviving link carries frames.
  const got: string[] = [];
  b.links()[0]?.onFrame((_t, body) => got.push(Buffer.from(body).toString()));
  a.links()[0]?.send(FrameType.CONTROL, Buffer.from('x'));
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(got, ['x']);
  // A restart of B: A's link goes down, and comes back by redial.
  await b.stop();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(a.links().length, 0);
  const b2 = make(ib, 'B', 'mem:b', 'mem:a');
  await b2.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(a.links().length, 1);
  await Promise.all([a.stop(), b2.stop()]);
});

test('frames that arrive before anyone listens (same read as the hello) are kept and delivered in order', async () => {
  const [x, y] = duplexPair();
  const ia = generateIdentity();
  const ib = generateIdentity();
  const a = new LinkSession(x, 'outbound', fast, new Counters());
  const done = a.handshake(ia, 'A');
  // The peer's hello and its first control frames in one write, as TCP may deliver them.
  y.write(
    Buffer.concat([
      encodeFrame(
        FrameType.HELLO,
        encodeHello({
          device: ib.deviceId,
          signingKey: ib.signingPublic,
          agreementKey: ib.agreementPublic,
          name: 'B',
        }),
      ),
      encodeFrame(FrameType.CONTROL, Buffer.from('first')),
      encodeFrame(FrameType.CONTROL, Buffer.from('second')),
    ]),
  );
  await done;
  await new Promise((r) => setTimeout(r, 10));
  const got: string[] = [];
  a.onFrame((_t, body) => got.push(Buffer.from(body).toString()));
  assert.deepEqual(got, ['first', 'second']);
  a.close();
});
