// The policy only asks protocols for routes, so these tests give it protocols
// whose route() answers from a fixed table of paths (a stand-in for the RIB;
// the real protocols are exercised with the policy in test/integration/).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectProtocol } from '../../../src/device/index.ts';
import type { Route, RoutingProtocol } from '../../../src/routing/index.ts';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
const D = 'd'.repeat(32);
const names: Record<string, string> = { [A]: 'A', [B]: 'B', [C]: 'C', [D]: 'D' };

/** A protocol that knows these paths from A to D and picks the first one avoiding `avoid`. */
function pathsProtocol(name: string, id: number, paths: string[][]): RoutingProtocol {
  return {
    name,
    id,
    mode: 'unicast',
    route(destination: string, avoid?: ReadonlySet<string>): Route | undefined {
      const path = paths.find(
        (p) => p.at(-1) === destination && p.slice(1, -1).every((d) => !avoid?.has(d)),
      );
      if (path === undefined) return undefined;
      return {
        destination,
        nextHop: path[1] as string,
        cost: path.length - 1,
        hops: path.length - 1,
        path,
      };
    },
  } as unknown as RoutingProtocol;
}

const diamond = [
  [A, B, D],
  [A, C, D],
];

test('first connection: the first preferred protocol with a route, no avoid-set', () => {
  const ls = pathsProtocol('link-state', 1, diamond);
  const fl = pathsProtocol('flooding', 2, diamond);
  const s = selectProtocol('diverse', {
    app: 'x',
    destination: D,
    protocols: [ls, fl],
    siblings: [],
    nameOf: (d) => names[d] ?? d,
  });
  assert.equal(s.protocol.name, 'link-state');
  assert.deepEqual(s.avoid, []);
  assert.match(s.reason, /first connection of app "x" to D: link-state/);
});

test("second connection of the same app: another protocol, avoiding the first one's relays", () => {
  const ls = pathsProtocol('link-state', 1, diamond);
  const fl = pathsProtocol('flooding', 2, diamond);
  const s = selectProtocol('diverse', {
    app: 'x',
    destination: D,
    protocols: [ls, fl],
    siblings: [{ connection: '1'.repeat(16), protocol: 'link-state', relays: [B] }],
    nameOf: (d) => names[d] ?? d,
  });
  assert.equal(s.protocol.name, 'flooding');
  assert.deepEqual(s.avoid, [B]);
  assert.deepEqual(s.route.path, [A, C, D]);
  assert.match(s.reason, /connection 2 of app "x" to D: flooding.*avoiding relays B/);
});

test('when no route avoids the relays, the other protocol is still chosen and the reason says relays may be shared', () => {
  const ls = pathsProtocol('link-state', 1, [[A, B, D]]);
  const fl = pathsProtocol('flooding', 2, [[A, B, D]]);
  const s = selectProtocol('diverse', {
    app: 'x',
    destination: D,
    protocols: [ls, fl],
    siblings: [{ connection: '1'.repeat(16), protocol: 'link-state', relays: [B] }],
    nameOf: (d) => names[d] ?? d,
  });
  assert.equal(s.protocol.name, 'flooding');
  assert.deepEqual(s.avoid, []);
  assert.match(s.reason, /relays may be shared/);
});

test('all protocols in use: the least-used one; an explicit protocol wins; unknown or unroutable ones are typed errors', () => {
  const ls = pathsProtocol('link-state', 1, diamond);
  const fl = pathsProtocol('flooding', 2, diamond);
  const siblings = [
    { connection: '1'.repeat(16), protocol: 'link-state', relays: [B] },
    { connection: '2'.repeat(16), protocol: 'flooding', relays: [C] },
    { connection: '3'.repeat(16), protocol: 'link-state', relays: [B] },
  ];
  const base = {
    app: 'x',
    destination: D,
    protocols: [ls, fl],
    siblings,
    nameOf: (d: string) => names[d] ?? d,
  };
  assert.equal(selectProtocol('diverse', base).protocol.name, 'flooding');
  assert.equal(
    selectProtocol('diverse', { ...base, siblings: [], protocol: 'flooding' }).protocol.name,
    'flooding',
  );
  assert.throws(() => selectProtocol('diverse', { ...base, protocol: 'aodv' }), {
    code: 'VMESH_ERR_UNKNOWN_PROTOCOL',
  });
  const none = pathsProtocol('link-state', 1, []);
  assert.throws(() => selectProtocol('diverse', { ...base, protocols: [none], siblings: [] }), {
    code: 'VMESH_ERR_NO_ROUTE',
  });
});

test('policy "first" ignores siblings', () => {
  const ls = pathsProtocol('link-state', 1, diamond);
  const fl = pathsProtocol('flooding', 2, diamond);
  const s = selectProtocol('first', {
    app: 'x',
    destination: D,
    protocols: [ls, fl],
    siblings: [{ connection: '1'.repeat(16), protocol: 'link-state', relays: [B] }],
    nameOf: (d) => names[d] ?? d,
  });
  assert.equal(s.protocol.name, 'link-state');
});
