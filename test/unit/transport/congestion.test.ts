// The pieces of loss recovery and congestion control on their own: NewReno
// (RFC 9002 §7), the loss detector (§6), the RTT estimator (§5) and the
// pacer (§7.7), driven by hand with explicit times.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  LossDetector,
  Pacer,
  RttEstimator,
  fixedWindow,
  initialWindowFor,
  newReno,
} from '../../../src/transport/index.ts';
import type { SentPacket, SentPacketInfo } from '../../../src/transport/index.ts';

const MDS = 1200;

function info(packetNumber: number, bytes = MDS, cwndLimited = true): SentPacketInfo {
  return { packetNumber, sentAt: packetNumber, bytes, cwndLimited };
}

test('NewReno starts at the RFC 9002 §7.2 initial window and never goes below the minimum', () => {
  assert.equal(initialWindowFor(1200), 12000);
  assert.equal(initialWindowFor(16384), 32768);
  assert.equal(initialWindowFor(1000), 10000);
  const cc = newReno({ maxDatagramBytes: MDS });
  assert.equal(cc.window(), 12000);
  for (let i = 0; i < 20; i++) {
    cc.onSent(info(i));
    cc.onLoss(MDS, i, info(i));
    // Each loss above starts a new recovery period only if sent after the last one began.
  }
  assert.ok(cc.window() >= 2 * MDS);
  cc.onPersistentCongestion();
  assert.equal(cc.window(), 2 * MDS);
});

test('slow start grows the window by every acknowledged byte, then halves it on a loss (§7.3.1, §7.3.2)', () => {
  const cc = newReno({ maxDatagramBytes: MDS });
  for (let pn = 0; pn < 10; pn++) cc.onSent(info(pn));
  for (let pn = 0; pn < 10; pn++) cc.onAck(MDS, 50, info(pn));
  assert.equal(cc.window(), 24000);
  assert.equal(cc.snapshot().ssthreshBytes, undefined);
  for (let pn = 10; pn < 30; pn++) cc.onSent(info(pn));
  cc.onLoss(MDS, 100, info(12));
  assert.equal(cc.window(), 12000);
  assert.equal(cc.snapshot().ssthreshBytes, 12000);
  assert.equal(cc.snapshot().congestionEvents, 1);
});

test('recovery is keyed on packet numbers: one reduction per window, no growth from packets sent before it (§7.3.2)', () => {
  const cc = newReno({ maxDatagramBytes: MDS, initialWindowBytes: 48000 });
  for (let pn = 0; pn < 40; pn++) cc.onSent(info(pn));
  cc.onLoss(MDS, 10, info(5));
  assert.equal(cc.window(), 24000);
  // More losses and acknowledgements from the same flight (packet numbers < 40): nothing changes.
  cc.onLoss(MDS, 11, info(6));
  cc.onLoss(MDS, 11, info(39));
  cc.onAck(MDS, 12, info(20));
  cc.onAck(MDS, 12, info(39));
  assert.equal(cc.window(), 24000);
  assert.equal(cc.snapshot().congestionEvents, 1);
  // A packet sent after recovery began is acknowledged: congestion avoidance, mds · bytes / cwnd.
  cc.onSent(info(40));
  cc.onAck(MDS, 20, info(40));
  assert.equal(cc.window(), 24000 + (MDS * MDS) / 24000);
  // Its loss would start a new period and reduce again.
  cc.onSent(info(41));
  cc.onLoss(MDS, 30, info(41));
  assert.equal(cc.snapshot().congestionEvents, 2);
  assert.ok(cc.window() < 12100);
});

test('congestion avoidance adds about one datagram per window of acknowledged bytes (§7.3.3)', () => {
  const cc = newReno({ maxDatagramBytes: MDS, initialWindowBytes: 48000 });
  cc.onSent(info(0));
  cc.onLoss(MDS, 0, info(0)); // ssthresh = cwnd = 24000
  let pn = 1;
  const start = cc.window();
  let acked = 0;
  while (acked < start) {
    cc.onSent(info(pn));
    cc.onAck(MDS, pn, info(pn));
    acked += MDS;
    pn++;
  }
  const growth = cc.window() - start;
  assert.ok(growth > 0.9 * MDS && growth <= MDS, `grew ${growth}`);
});

test('a window that was not the limit does not grow (§7.8), and maxWindowBytes caps it', () => {
  const cc = newReno({ maxDatagramBytes: MDS, maxWindowBytes: 20000 });
  for (let pn = 0; pn < 100; pn++) {
    cc.onSent(info(pn, MDS, false));
    cc.onAck(MDS, pn, info(pn, MDS, false));
  }
  assert.equal(cc.window(), 12000);
  for (let pn = 100; pn < 200; pn++) {
    cc.onSent(info(pn));
    cc.onAck(MDS, pn, info(pn));
  }
  assert.equal(cc.window(), 20000);
});

test('persistent congestion collapses to the minimum, then slow start climbs back to ssthresh (§7.6.2)', () => {
  const cc = newReno({ maxDatagramBytes: MDS, initialWindowBytes: 48000 });
  for (let pn = 0; pn < 40; pn++) cc.onSent(info(pn));
  cc.onLoss(MDS, 10, info(0));
  cc.onPersistentCongestion();
  assert.equal(cc.window(), 2 * MDS);
  // The rest of the lost flight does not pull ssthresh down.
  cc.onLoss(MDS, 11, info(30));
  assert.equal(cc.snapshot().ssthreshBytes, 24000);
  cc.onSent(info(40));
  cc.onAck(MDS, 12, info(40));
  assert.equal(cc.window(), 3 * MDS, 'slow start again');
});

test('reset() returns NewReno to its initial state (path change, RFC 9000 §9.4)', () => {
  const cc = newReno({ maxDatagramBytes: MDS });
  cc.onSent(info(0));
  cc.onLoss(MDS, 0, info(0));
  cc.reset();
  assert.equal(cc.window(), 12000);
  assert.equal(cc.snapshot().ssthreshBytes, undefined);
  assert.equal(fixedWindow(5000).window(), 5000);
});

test('NewReno window stays within [minimum, maximum] under any event sequence (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('sent', 'ack', 'loss', 'pc', 'reset'), fc.boolean()), {
        maxLength: 300,
      }),
      (ops) => {
        const cc = newReno({ maxDatagramBytes: MDS, maxWindowBytes: 100_000 });
        let pn = 0;
        let acked = 0;
        for (const [op, limited] of ops) {
          if (op === 'sent') cc.onSent(info(pn++, MDS, limited));
          else if (op === 'ack' && acked < pn) cc.onAck(MDS, 0, info(acked++, MDS, limited));
          else if (op === 'loss' && acked < pn) cc.onLoss(MDS, 0, info(acked++, MDS, limited));
          else if (op === 'pc') cc.onPersistentCongestion();
          else if (op === 'reset') cc.reset();
          assert.ok(cc.window() >= 2 * MDS && cc.window() <= 100_000, `window ${cc.window()}`);
        }
      },
    ),
  );
});

// ---- loss detection -----------------------------------------------------------------------

function packet(pn: number, sentAt: number, bytes = MDS): SentPacket {
  return {
    packetNumber: pn,
    sentAt,
    bytes,
    cwndLimited: true,
    ackEliciting: true,
    streamRanges: [[pn * MDS, (pn + 1) * MDS]],
    fin: false,
    open: false,
    accept: false,
    maxData: false,
  };
}

function detector(maxAckDelayMs = 25): { d: LossDetector; rtt: RttEstimator } {
  const rtt = new RttEstimator(999, 1, 60_000);
  return { d: new LossDetector(rtt, maxAckDelayMs), rtt };
}

test('packet threshold: a packet 3 below the largest acknowledged is lost (§6.1.1)', () => {
  const { d } = detector();
  // Sent 1 ms apart, acknowledged after 50 ms: nothing is old enough for the time threshold.
  for (let pn = 0; pn < 6; pn++) d.onSent(packet(pn, 100 + pn));
  assert.equal(d.bytesInFlight, 6 * MDS);
  const r = d.onAck([[3, 3]], 0, 153);
  assert.deepEqual(
    r.acked.map((p) => p.packetNumber),
    [3],
  );
  assert.deepEqual(
    r.lost.map((p) => p.packetNumber),
    [0],
  );
  assert.equal(d.bytesInFlight, 4 * MDS);
  const r2 = d.onAck([[4, 5]], 0, 154);
  assert.deepEqual(
    r2.lost.map((p) => p.packetNumber),
    [1, 2],
  );
  assert.equal(d.bytesInFlight, 0);
  assert.equal(d.ackElicitingInFlight, false);
});

test('time threshold: older than 9/8 of the RTT and below the largest acknowledged is lost; the loss timer fires then (§6.1.2)', () => {
  const { d, rtt } = detector();
  d.onSent(packet(0, 0));
  d.onSent(packet(1, 10));
  const r = d.onAck([[1, 1]], 0, 110); // RTT sample 100
  assert.equal(rtt.srtt, 100);
  assert.deepEqual(r.lost, []);
  // 9/8 · 100 = 112.5 after it was sent.
  assert.equal(d.deadline(), 112.5);
  assert.equal(d.onTimeout(112.4), undefined);
  const t = d.onTimeout(112.5);
  assert.equal(t?.kind, 'loss');
  assert.deepEqual(t?.kind === 'loss' ? t.lost.map((p) => p.packetNumber) : [], [0]);
  assert.equal(d.deadline(), undefined);
});

test('PTO: srtt + max(4·rttvar, 1) + max_ack_delay after the last ack-eliciting packet, doubled per expiry, reset by an ACK (§6.2)', () => {
  const { d, rtt } = detector(25);
  d.onSent(packet(0, 0));
  assert.equal(d.deadline(), 999, 'initial PTO before any sample');
  d.onAck([[0, 0]], 0, 100);
  assert.equal(rtt.srtt, 100);
  assert.equal(rtt.rttvar, 50);
  d.onSent(packet(1, 200));
  d.onSent(packet(2, 210));
  const pto = 100 + 4 * 50 + 25;
  assert.equal(d.deadline(), 210 + pto);
  assert.equal(d.onTimeout(210 + pto)?.kind, 'pto');
  assert.equal(d.ptoCount, 1);
  assert.equal(d.deadline(), 210 + 2 * pto, 'a PTO declares nothing lost and doubles');
  assert.equal(d.bytesInFlight, 2 * MDS);
  d.onAck([[1, 1]], 0, 900);
  assert.equal(d.ptoCount, 0);
});

test('persistent congestion: losses spanning 3 PTO periods with nothing acknowledged between (§7.6.2)', () => {
  const { d, rtt } = detector(0);
  d.onSent(packet(0, 0));
  d.onAck([[0, 0]], 0, 10); // srtt 10, rttvar 5: duration (10 + 20) · 3 = 90
  assert.equal(d.persistentCongestionDuration(), 90);
  for (let pn = 1; pn <= 20; pn++) d.onSent(packet(pn, 10 + 10 * (pn - 1)));
  d.onSent(packet(21, 300));
  const r = d.onAck([[21, 21]], 0, 310);
  assert.ok(rtt.srtt !== undefined);
  assert.equal(r.lost.length, 20);
  assert.equal(r.persistentCongestion, true);

  // The same losses with one packet in the middle acknowledged: no persistent congestion.
  const { d: d2 } = detector(0);
  d2.onSent(packet(0, 0));
  d2.onAck([[0, 0]], 0, 10);
  // Sent 8 ms apart: each side of the acknowledged packet spans less than the duration.
  for (let pn = 1; pn <= 20; pn++) d2.onSent(packet(pn, 10 + 8 * (pn - 1)));
  d2.onSent(packet(21, 300));
  const r2 = d2.onAck(
    [
      [21, 21],
      [10, 10],
    ],
    0,
    310,
  );
  assert.equal(r2.lost.length, 19);
  assert.equal(r2.persistentCongestion, false);
});

test('a packet declared lost and acknowledged later is reported as late (its bytes did arrive)', () => {
  const { d } = detector();
  for (let pn = 0; pn < 5; pn++) d.onSent(packet(pn, 100 + pn));
  const r = d.onAck([[4, 4]], 0, 150);
  assert.deepEqual(
    r.lost.map((p) => p.packetNumber),
    [0, 1],
  );
  const r2 = d.onAck(
    [
      [4, 4],
      [0, 2],
    ],
    0,
    151,
  );
  assert.deepEqual(
    r2.acked.map((p) => p.packetNumber),
    [2],
  );
  assert.deepEqual(
    r2.lateAcked.map((p) => p.packetNumber),
    [0, 1],
  );
});

test('ACK ranges for packets never sent are ignored and cannot declare losses', () => {
  const { d } = detector();
  for (let pn = 0; pn < 3; pn++) d.onSent(packet(pn, pn));
  const r = d.onAck([[1000, 2000]], 0, 10);
  assert.deepEqual(r.lost, []);
  assert.equal(d.largestAcked, -1);
  assert.equal(d.bytesInFlight, 3 * MDS);
});

test('abandonAll gives everything up without a congestion signal and restarts the timers', () => {
  const { d } = detector();
  for (let pn = 0; pn < 4; pn++) d.onSent(packet(pn, pn));
  const gone = d.abandonAll();
  assert.equal(gone.length, 4);
  assert.equal(d.bytesInFlight, 0);
  assert.equal(d.deadline(), undefined);
  const r = d.onAck([[0, 3]], 0, 50);
  assert.equal(r.lateAcked.length, 4, 'late acknowledgements from the old path still count');
});

test('the detector accounts bytes in flight exactly under any ACK sequence (property)', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.constant({ kind: 'send' as const }),
          fc.record({
            kind: fc.constant('ack' as const),
            first: fc.nat(60),
            len: fc.nat(5),
          }),
          fc.record({ kind: fc.constant('timer' as const), dt: fc.nat(2000) }),
        ),
        { maxLength: 200 },
      ),
      (ops) => {
        const { d } = detector();
        let pn = 0;
        let now = 0;
        const outstanding = new Set<number>();
        for (const op of ops) {
          now += 1;
          if (op.kind === 'send') {
            d.onSent(packet(pn, now));
            outstanding.add(pn++);
          } else if (op.kind === 'ack') {
            const r = d.onAck([[op.first, op.first + op.len]], 0, now);
            for (const p of [...r.acked, ...r.lost]) {
              assert.ok(outstanding.delete(p.packetNumber), `twice: ${p.packetNumber}`);
            }
            for (const p of r.acked)
              assert.ok(p.packetNumber >= op.first && p.packetNumber <= op.first + op.len);
          } else {
            now += op.dt;
            const t = d.onTimeout(now);
            if (t?.kind === 'loss')
              for (const p of t.lost) assert.ok(outstanding.delete(p.packetNumber));
          }
          assert.equal(d.bytesInFlight, outstanding.size * MDS);
          assert.equal(d.ackElicitingInFlight, outstanding.size > 0);
        }
      },
    ),
  );
});

// ---- RTT and pacing -----------------------------------------------------------------------

test('RTT samples less the ack delay, capped at max_ack_delay and never below min_rtt (RFC 9002 §5.3)', () => {
  const r = new RttEstimator(999, 1, 60_000);
  r.sample(100);
  assert.equal(r.minRtt, 100);
  r.sample(130, 20, 25);
  assert.equal(r.srtt, 0.875 * 100 + 0.125 * 110);
  const srtt = r.srtt;
  r.sample(110, 50, 25); // ack delay capped at 25: 85 < min_rtt + 25, so not adjusted
  assert.equal(r.srtt, 0.875 * srtt + 0.125 * 110);
  r.sample(80);
  assert.equal(r.minRtt, 80);
  assert.equal(r.latest, 80);
  r.reset();
  assert.equal(r.srtt, undefined);
  assert.equal(r.basePto(25), 999);
});

test('the pacer spreads a window over 1/1.25 of an RTT and allows a burst (RFC 9002 §7.7)', () => {
  const p = new Pacer(12000);
  const cwnd = 60000;
  const srtt = 100; // rate 1.25 · 60000 / 100 = 750 bytes/ms
  assert.equal(p.canSend(0, cwnd, srtt), true);
  let sent = 0;
  while (p.canSend(0, cwnd, srtt)) {
    p.onSent(1200);
    sent += 1200;
  }
  assert.equal(sent, 13200, 'the burst and one packet into debt');
  const next = p.nextSendTime(0, cwnd, srtt);
  assert.equal(next, 1200 / 750);
  assert.equal(p.canSend(next, cwnd, srtt), true);
  // Over 100 ms, at most the burst plus the rate's worth goes.
  let bytes = 0;
  for (let t = 10; t <= 110; t += 0.5) {
    while (p.canSend(t, cwnd, srtt)) {
      p.onSent(1200);
      bytes += 1200;
    }
  }
  assert.ok(bytes <= 12000 + 750 * 100 + 1200, `sent ${bytes}`);
  assert.ok(bytes >= 750 * 100 - 1200, `sent ${bytes}`);
  // No RTT sample yet: nothing is held back.
  const q = new Pacer(1200);
  q.onSent(100000);
  assert.equal(q.canSend(0, cwnd, undefined), true);
});
