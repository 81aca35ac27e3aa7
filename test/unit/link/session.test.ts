// Links over the in-memory transport: handshake, frames, keepalive, dead
// peers, framing errors, queue limits and duplicate-link resolution.
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import {
  LinkHandshake,
  LinkManager,
  LinkSession,
  MemoryNetwork,
  SecureChannel,
  duplexPair,
} from '../../../src/link/index.ts';
import type { Link, LinkCredentials } from '../../../src/link/index.ts';
import { Counters, silentLogger } from '../../../src/observe/index.ts';
import { TestPki } from '../../../src/testbed/index.ts';
import { FrameDecoder, FrameType, encodeFrame } from '../../../src/wire/index.ts';

const fast = { keepaliveIntervalMs: 20, deadAfterMs: 150, handshakeTimeoutMs: 200 };
const pki = new TestPki('unit');

async function pair(opts = fast): Promise<{
  a: LinkSession;
  b: LinkSession;
  ia: LinkCredentials;
  ib: LinkCredentials;
  ca: Counters;
}> {
  const [x, y] = duplexPair();
  const ia = pki.issue('A').credentials;
  const ib = pki.issue('B').credentials;
  const ca = new Counters();
  const a = new LinkSession(x, 'outbound', opts, ca);
  const b = new LinkSession(y, 'inbound', opts, new Counters());
  await Promise.all([a.handshake(ia), b.handshake(ib)]);
  return { a, b, ia, ib, ca };
}

/** The far end of a link driven by hand: runs the handshake on `stream`, returns its channel. */
async function handDriven(
  stream: Duplex,
  creds: LinkCredentials,
  initiator: boolean,
): Promise<{ channel: SecureChannel; last: Buffer | undefined }> {
  const hs = new LinkHandshake(creds, initiator);
  const decoder = new FrameDecoder();
  const first = hs.start();
  if (first !== undefined) stream.write(encodeFrame(FrameType.HELLO, first));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      try {
        for (const f of decoder.push(chunk)) {
          const step = hs.receive(f.body);
          const reply =
            step.reply === undefined ? undefined : encodeFrame(FrameType.HELLO, step.reply);
          if (step.done !== undefined) {
            stream.off('data', onData);
            // The initiator's last message is returned unsent, so a test can send it with more.
            if (reply !== undefined && !initiator) stream.write(reply);
            resolve({ channel: new SecureChannel(step.done.send, step.done.receive), last: reply });
            return;
          }
          if (reply !== undefined) stream.write(reply);
        }
      } catch (err) {
        reject(err as Error);
      }
    };
    stream.on('data', onData);
  });
}

const closed = (l: Link): Promise<string> => new Promise((resolve) => l.onClose(resolve));

test("handshake: each side learns the other's id and name; frames flow both ways; PINGs measure RTT", async () => {
  const { a, b, ia, ib } = await pair();
  assert.equal(a.remote, ib.identity.deviceId);
  assert.equal(b.remote, ia.identity.deviceId);
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

test('handshake: a silent peer times out; a certificate of another network or for other keys is refused', async () => {
  const [x] = duplexPair();
  const silent = new LinkSession(x, 'outbound', fast, new Counters());
  await assert.rejects(silent.handshake(pki.issue('A').credentials), {
    code: 'VMESH_ERR_HANDSHAKE',
  });
  assert.equal(silent.closed, true);

  const cases: [LinkCredentials, string, RegExp][] = [
    [new TestPki('other').issue('M').credentials, 'VMESH_ERR_CERT_INVALID', /network/],
    [
      // A stolen certificate: B's certificate, presented with other keys.
      { ...pki.issue('M').credentials, certificate: pki.issue('B').certificate },
      'VMESH_ERR_CERT_INVALID',
      /not issued for the key/,
    ],
    [
      pki.issue('M', { notBefore: Date.now() - 3e6, notAfter: Date.now() - 1e6 }).credentials,
      'VMESH_ERR_CERT_EXPIRED',
      /expired/,
    ],
  ];
  for (const [creds, code, message] of cases) {
    for (const outsiderDials of [true, false]) {
      const [y, z] = duplexPair();
      const honest = new LinkSession(
        y,
        outsiderDials ? 'inbound' : 'outbound',
        fast,
        new Counters(),
      );
      const got: number[] = [];
      honest.onFrame((type) => got.push(type));
      const pending = honest.handshake(pki.issue('B').credentials);
      const outsider = new LinkSession(
        z,
        outsiderDials ? 'outbound' : 'inbound',
        fast,
        new Counters(),
      );
      const theirs = outsider.handshake(creds).catch((e: unknown) => e);
      // An outsider of another network that dials refuses our certificate itself and hangs up.
      const hangsUp = outsiderDials && message.source === 'network';
      await assert.rejects(pending, (e: { code: string; message: string }) =>
        hangsUp ? e.code === 'VMESH_ERR_HANDSHAKE' : e.code === code && message.test(e.message),
      );
      await theirs;
      assert.equal(honest.closed, true);
      assert.equal(outsider.remote === '' || outsider.closed, true);
      assert.deepEqual(got, []);
    }
  }
});

test('a peer that stops answering is closed as dead', async () => {
  const [x, y] = duplexPair();
  const a = new LinkSession(x, 'outbound', fast, new Counters());
  // The far end answers the handshake by hand, then says nothing more.
  const done = a.handshake(pki.issue('A').credentials);
  await handDriven(y as Duplex, pki.issue('B').credentials, false);
  await done;
  assert.match(await closed(a), /^dead/);
});

test('after the handshake, unsealed frames are dropped and counted, and a tampered sealed frame closes the link', async () => {
  const [x, y] = duplexPair();
  const counters = new Counters();
  const a = new LinkSession(x, 'outbound', { ...fast, deadAfterMs: 5000 }, counters);
  const done = a.handshake(pki.issue('A').credentials);
  const far = await handDriven(y as Duplex, pki.issue('B').credentials, false);
  await done;
  const got: string[] = [];
  a.onFrame((_t, body) => got.push(Buffer.from(body).toString()));
  (y as Duplex).write(encodeFrame(FrameType.CONTROL, Buffer.from('in clear')));
  (y as Duplex).write(far.channel.seal(FrameType.CONTROL, Buffer.from('sealed')));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got, ['sealed']);
  assert.equal(a.stats().dropped.unsealed, 1);
  const frame = far.channel.seal(FrameType.CONTROL, Buffer.from('tampered'));
  frame[frame.length - 1] = (frame[frame.length - 1] as number) ^ 1;
  (y as Duplex).write(frame);
  assert.match(await closed(a), /^auth-failed/);
  assert.equal(counters.get('link.closed', { reason: 'auth-failed' }), 1);
  assert.deepEqual(got, ['sealed']);
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
  const ia = pki.issue('A').credentials;
  const ib = pki.issue('B').credentials;
  const make = (credentials: LinkCredentials, listen: string, dial: string): LinkManager =>
    new LinkManager({
      credentials,
      transport: net.transport(),
      listen,
      neighbours: [{ address: dial }],
      logger: silentLogger,
      counters: new Counters(),
      options: { redialMinMs: 20, redialMaxMs: 50 },
    });
  const a = make(ia, 'mem:a', 'mem:b');
  const b = make(ib, 'mem:b', 'mem:a');
  await Promise.all([a.start(), b.start()]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(a.links().length, 1);
  assert.equal(b.links().length, 1);
  const dialledByLower = ia.identity.deviceId < ib.identity.deviceId ? 'outbound' : 'inbound';
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
  const b2 = make(ib, 'mem:b', 'mem:a');
  await b2.start();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(a.links().length, 1);
  await Promise.all([a.stop(), b2.stop()]);
});

test('frames that arrive before anyone listens (same read as the last handshake message) are kept and delivered in order', async () => {
  const [x, y] = duplexPair();
  const a = new LinkSession(x, 'inbound', fast, new Counters());
  const done = a.handshake(pki.issue('A').credentials);
  const far = await handDriven(y as Duplex, pki.issue('B').credentials, true);
  // The initiator's last handshake message and its first control frames in one write, as TCP may deliver them.
  (y as Duplex).write(
    Buffer.concat([
      far.last as Buffer,
      far.channel.seal(FrameType.CONTROL, Buffer.from('first')),
      far.channel.seal(FrameType.CONTROL, Buffer.from('second')),
    ]),
  );
  await done;
  await new Promise((r) => setTimeout(r, 10));
  const got: string[] = [];
  a.onFrame((_t, body) => got.push(Buffer.from(body).toString()));
  assert.deepEqual(got, ['first', 'second']);
  a.close();
});
