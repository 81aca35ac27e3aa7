// The patent claim's facts about two connections of one app, read from the
// devices' own records (control API) of a diamond testbed A–B–D, A–C–D: a
// source VM on A and a destination VM on D for each, one relay VM each on
// distinct relays, each in its own worker thread, and traced paths that
// agree with where the relay VMs ran. Returns A's records of the two.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { echoRoundTrip, waitFor } from '../../src/testbed/index.ts';
import type { DeviceStatus, Testbed } from '../../src/testbed/index.ts';
import type { VconnStream } from '../../src/front/index.ts';

type Vconn = DeviceStatus['vconns'][number];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Sends `bytes` random bytes on each stream at once and checks every byte came back. */
export async function echoBoth(streams: VconnStream[], bytes: number): Promise<void> {
  const payloads = streams.map(() => randomBytes(bytes));
  const echoed = await Promise.all(streams.map((s, i) => echoRoundTrip(s, payloads[i] as Buffer)));
  echoed.forEach((e, i) =>
    assert.equal(sha(e), sha(payloads[i] as Buffer), `stream ${i + 1} bytes`),
  );
}

export async function assertClaimFacts(testbed: Testbed, ids: string[]): Promise<Vconn[]> {
  const status = new Map<string, DeviceStatus>();
  await waitFor(
    async () => {
      for (const n of ['A', 'B', 'C', 'D']) status.set(n, await testbed.status(n));
      return ids.every(
        (id) =>
          (status.get('A') as DeviceStatus).vconns.find((v) => v.connection === id)
            ?.forwardPathNames !== undefined,
      );
    },
    5000,
    'paths to be recorded',
  );
  const vmsOf = (device: string, role: string): string[] =>
    (status.get(device) as DeviceStatus).vms
      .filter((v) => v.role === role && ids.includes(v.connection))
      .map((v) => v.connection);
  // (b), (d): a VM per connection on the source device, and on the destination.
  assert.deepEqual(vmsOf('A', 'source').sort(), [...ids].sort());
  assert.deepEqual(vmsOf('D', 'destination').sort(), [...ids].sort());
  // (g), (h): one relay VM per connection, on distinct relays.
  const relayOf = ids.map((id) => ['B', 'C'].filter((r) => vmsOf(r, 'relay').includes(id)));
  // A connection whose source recorded a path change (a link declared dead under load, then
  // failover) legitimately spawned a relay VM on each relay it used; otherwise exactly one.
  const moved = ids.map(
    (id) =>
      ((status.get('A') as DeviceStatus).vms.find((v) => v.connection === id && v.role === 'source')
        ?.report?.pathChanges ?? 0) > 0,
  );
  relayOf.forEach((r, i) =>
    assert.ok(
      moved[i] === true ? r.length >= 1 : r.length === 1,
      `relay VMs: ${JSON.stringify(relayOf)}, path changes: ${JSON.stringify(moved)}`,
    ),
  );
  const vconns = ids.map((id) => {
    const v = (status.get('A') as DeviceStatus).vconns.find((x) => x.connection === id);
    assert.ok(v !== undefined, `A has no record of ${id}`);
    return v;
  });
  // The traced paths agree with where the relay VMs ran, and the two relays differ.
  vconns.forEach((v, i) => {
    assert.equal(v.forwardPathNames?.length, 2);
    assert.equal(v.forwardPathNames?.[1], 'D');
    assert.ok(relayOf[i]?.includes(v.forwardPathNames?.[0] as string));
  });
  assert.notEqual(vconns[0]?.forwardPathNames?.[0], vconns[1]?.forwardPathNames?.[0]);
  // Every VM of these connections ran in its own worker thread.
  const threads = ['A', 'B', 'C', 'D'].flatMap((n) =>
    (status.get(n) as DeviceStatus).vms
      .filter((v) => ids.includes(v.connection))
      .map((v) => `${n}:${v.threadId}`),
  );
  assert.equal(new Set(threads).size, threads.length);
  return vconns;
}
