// The end-to-end session of a virtual connection (src/vm/e2e.ts): Noise IK
// between the source and destination VMs, certificates checked, payloads
// sealed with the header bound as associated data.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EndToEnd } from '../../../src/vm/index.ts';
import type { E2eSpec } from '../../../src/vm/index.ts';
import { TestPki } from '../../../src/testbed/index.ts';
import type { Issued } from '../../../src/testbed/index.ts';
import { PacketKind } from '../../../src/wire/index.ts';
import type { Packet } from '../../../src/wire/index.ts';

const pki = new TestPki('e2e');
const CONN = '0123456789abcdef';

function spec(me: Issued, remote?: Issued, p = pki): E2eSpec {
  return {
    staticKey: { publicKey: me.identity.agreementPublic, privateKey: me.identity.agreementPrivate },
    certificate: me.certificate,
    trust: p.trust,
    ...(remote === undefined ? {} : { remoteStatic: remote.identity.agreementPublic }),
  };
}

function sessions(): { src: EndToEnd; dst: EndToEnd; s: Issued; d: Issued } {
  const s = pki.issue('S');
  const d = pki.issue('D');
  const src = new EndToEnd('source', spec(s, d), CONN, d.identity.deviceId);
  const dst = new EndToEnd('destination', spec(d), CONN, s.identity.deviceId);
  const reply = dst.onHandshake(src.hello(), s.identity.deviceId, Date.now());
  assert.ok(reply !== undefined);
  src.onHandshake(reply, d.identity.deviceId, Date.now());
  return { src, dst, s, d };
}

function data(from: Issued, to: Issued, packetNumber: number, payload: Uint8Array): Packet {
  return {
    kind: PacketKind.DATA,
    protocol: 1,
    flags: 0,
    hopLimit: 9,
    connection: CONN,
    source: from.identity.deviceId,
    destination: to.identity.deviceId,
    packetNumber,
    payload,
  };
}

test('the handshake authenticates the source to the destination; payloads open only as sealed', () => {
  const { src, dst, s, d } = sessions();
  assert.ok(src.ready && dst.ready);
  assert.deepEqual(dst.peerDevice, { device: s.identity.deviceId, name: 'S' });
  const p = data(s, d, 5, new Uint8Array(0));
  p.payload = src.seal(p, Buffer.from('hello'));
  assert.ok(!Buffer.from(p.payload).includes(Buffer.from('hello')));
  assert.equal(dst.open(p).toString(), 'hello');
  const back = data(d, s, 5, new Uint8Array(0));
  back.payload = dst.seal(back, Buffer.from('world'));
  assert.equal(src.open(back).toString(), 'world');
  // Any change to a bound header field or to the payload fails to open.
  for (const change of [
    (q: Packet) => void (q.packetNumber = 6),
    (q: Packet) => void (q.source = d.identity.deviceId),
    (q: Packet) => void (q.connection = 'fedcba9876543210'),
    (q: Packet) => void (q.protocol = 2),
    (q: Packet) => void (q.payload = Uint8Array.from(q.payload, (x, i) => (i === 0 ? x ^ 1 : x))),
  ]) {
    const q = { ...p };
    change(q);
    assert.throws(() => dst.open(q), { code: 'VMESH_ERR_AUTH_FAILED' });
  }
});

test('a repeated first message gets the same reply; a different one is refused', () => {
  const s = pki.issue('S');
  const d = pki.issue('D');
  const src = new EndToEnd('source', spec(s, d), CONN, d.identity.deviceId);
  const dst = new EndToEnd('destination', spec(d), CONN, s.identity.deviceId);
  const r1 = dst.onHandshake(src.hello(), s.identity.deviceId, Date.now());
  const r2 = dst.onHandshake(src.hello(), s.identity.deviceId, Date.now());
  assert.deepEqual(r1, r2);
  const other = new EndToEnd('source', spec(s, d), CONN, d.identity.deviceId);
  assert.throws(() => dst.onHandshake(other.hello(), s.identity.deviceId, Date.now()), {
    code: 'VMESH_ERR_HANDSHAKE',
  });
});

test('the destination refuses a source with a certificate of another network, an expired one, or one naming another device', () => {
  const d = pki.issue('D');
  const other = new TestPki('other');
  const cases: [Issued, TestPki, string, string][] = [
    [other.issue('S'), other, 'VMESH_ERR_CERT_INVALID', 'network'],
    [
      pki.issue('S', { notBefore: Date.now() - 3e6, notAfter: Date.now() - 1e6 }),
      pki,
      'VMESH_ERR_CERT_EXPIRED',
      'expired',
    ],
  ];
  for (const [s, p, code] of cases) {
    const src = new EndToEnd('source', spec(s, d, p), CONN, d.identity.deviceId);
    const dst = new EndToEnd('destination', spec(d), CONN, s.identity.deviceId);
    assert.throws(() => dst.onHandshake(src.hello(), s.identity.deviceId, Date.now()), { code });
  }
  // A valid certificate, but the packet claims another source device.
  const s = pki.issue('S');
  const liar = pki.issue('L');
  const src = new EndToEnd('source', spec(s, d), CONN, d.identity.deviceId);
  const dst = new EndToEnd('destination', spec(d), CONN, liar.identity.deviceId);
  assert.throws(() => dst.onHandshake(src.hello(), liar.identity.deviceId, Date.now()), {
    code: 'VMESH_ERR_CERT_INVALID',
  });
  // A source that targets the wrong destination key gets no session.
  const wrong = new EndToEnd('source', spec(s, liar), CONN, d.identity.deviceId);
  const dst2 = new EndToEnd('destination', spec(d), CONN, s.identity.deviceId);
  assert.throws(() => dst2.onHandshake(wrong.hello(), s.identity.deviceId, Date.now()), {
    code: 'VMESH_ERR_HANDSHAKE',
  });
});
