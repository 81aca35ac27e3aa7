// What sealing costs per data packet on a link, and which way to seal the
// payload: prints a table and writes bench/results/link-seal.json.
//
// Every figure is a ratio to a baseline measured in the same run: framing a
// packet without crypto (what a link did before). The three ways to protect
// a packet on a link are timed as the crypto calls alone (same CipherState,
// seal on one end, open on the other): header sealed with the payload left to
// the end-to-end seal (the design), the payload authenticated as associated
// data, and everything encrypted; then SecureChannel itself, framing and
// copies included. Run: node --import tsx bench/link-seal.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { CipherState } from '../src/crypto/index.ts';
import { SecureChannel } from '../src/link/index.ts';
import { PacketKind, encodeFrame, encodePacket, FrameType } from '../src/wire/index.ts';

const ROUNDS = 5;
const key = (): Uint8Array => randomBytes(32);

function packet(payloadBytes: number): Buffer {
  return encodePacket({
    kind: PacketKind.DATA,
    protocol: 1,
    flags: 0,
    hopLimit: 32,
    connection: '0123456789abcdef',
    source: 'a'.repeat(32),
    destination: 'd'.repeat(32),
    packetNumber: 1,
    payload: randomBytes(payloadBytes),
  });
}

/** Median µs per packet of `fn` (seal on one end, open on the other). */
function measure(fn: () => void, iterations: number): number {
  for (let i = 0; i < iterations / 10; i++) fn();
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    runs.push(Number(process.hrtime.bigint() - t) / 1000 / iterations);
  }
  return runs.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)] as number;
}

const rows: {
  size: number;
  design: string;
  usPerPacket: number;
  mbPerS: number;
  vsBaseline: number;
}[] = [];
for (const size of [1200, 16384]) {
  const bytes = packet(size);
  const iterations = size > 8000 ? 20000 : 50000;
  const baseline = measure(() => {
    const f = encodeFrame(FrameType.PACKET, bytes);
    Buffer.from(f.subarray(5));
  }, iterations);
  const [k1, k2, k3] = [key(), key(), key()];
  const chosenA = new SecureChannel(new CipherState(k1), new CipherState(k2));
  const chosenB = new SecureChannel(new CipherState(k2), new CipherState(k1));
  const chosen = measure(() => {
    const f = chosenA.seal(FrameType.PACKET, bytes);
    chosenB.open(f[4] as number, f.subarray(5));
  }, iterations);
  const headerLength = bytes.length - size;
  const header = bytes.subarray(0, headerLength);
  const payload = bytes.subarray(headerLength);
  const lengthAd = Buffer.alloc(4);
  lengthAd.writeUInt32BE(size, 0);
  // Crypto alone, the three ways (same CipherState calls the link makes, no framing).
  const hS = new CipherState(k3);
  const hR = new CipherState(k3);
  const headerOnly = measure(() => {
    hR.decrypt(hS.encrypt(header, lengthAd), lengthAd);
  }, iterations);
  const adS = new CipherState(k3);
  const adR = new CipherState(k3);
  const asAd = measure(() => {
    adR.decrypt(adS.encrypt(header, payload), payload);
  }, iterations);
  const allS = new CipherState(k1);
  const allR = new CipherState(k1);
  const all = measure(() => {
    allR.decrypt(allS.encrypt(bytes));
  }, iterations);
  for (const [design, us] of [
    ['baseline: framing a packet, no crypto', baseline],
    ['crypto: header sealed, payload as is', headerOnly],
    ['crypto: payload authenticated as AD', asAd],
    ['crypto: everything encrypted', all],
    ['SecureChannel (chosen), framing + crypto', chosen],
  ] as const) {
    rows.push({
      size,
      design,
      usPerPacket: us,
      mbPerS: size / us,
      vsBaseline: us / baseline,
    });
  }
}

console.log('per packet, seal on one end + open on the other (median of 5 runs)\n');
console.log('payload  design                                     µs/packet    MB/s  × baseline');
for (const r of rows) {
  console.log(
    `${String(r.size).padStart(7)}  ${r.design.padEnd(42)} ${r.usPerPacket.toFixed(2).padStart(9)} ${r.mbPerS.toFixed(0).padStart(7)} ${r.vsBaseline.toFixed(2).padStart(10)}`,
  );
}
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/link-seal.json',
  `${JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2)}\n`,
);
console.log('\nwritten: bench/results/link-seal.json');
