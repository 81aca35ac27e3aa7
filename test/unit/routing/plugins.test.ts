// Third-party protocol modules and link costs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  ProtocolRegistry,
  builtinProtocols,
  costChanged,
  linkCost,
  loadProtocolModule,
  validateDescriptor,
} from '../../../src/routing/index.ts';
import { SimNetwork, line } from '../../../src/sim/index.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/protocols/', import.meta.url));

test('a valid module is loaded, registered beside the built-ins, and routes in the simulator', async () => {
  const [d] = await loadProtocolModule('neighbours-only.mjs', fixtures);
  assert.equal(d?.name, 'neighbours-only');
  const registry = new ProtocolRegistry();
  for (const b of builtinProtocols()) registry.register(b);
  registry.register(d as NonNullable<typeof d>);
  assert.ok(registry.names().includes('neighbours-only'));
  const net = new SimNetwork(line(3), registry.get('neighbours-only').create);
  net.run(10);
  assert.equal(net.node(1)?.route(net.ids[0] as string)?.nextHop, net.ids[0]);
  assert.equal(net.node(0)?.route(net.ids[2] as string), undefined);
});

test('an invalid module is refused with VMESH_ERR_CONFIG saying why', async () => {
  for (const [file, why] of [
    ['bad-missing-method.mjs', /has no route\(\)/],
    ['bad-nothing.mjs', /exports no protocol/],
    ['does-not-exist.mjs', /could not be loaded/],
  ] as const) {
    await assert.rejects(
      loadProtocolModule(file, fixtures),
      (e: { code?: string; message: string }) => {
        assert.equal(e.code, 'VMESH_ERR_CONFIG');
        assert.match(e.message, why);
        assert.match(e.message, new RegExp(file.replace('.', '\\.')));
        return true;
      },
    );
  }
  const base = builtinProtocols()[0] as ReturnType<typeof builtinProtocols>[number];
  for (const [value, why] of [
    [null, /expected an object/],
    [{ ...base, name: 'Bad Name' }, /"name" must match/],
    [{ ...base, id: 0 }, /"id" must be an integer/],
    [{ ...base, create: 'nope' }, /factory function/],
    [{ ...base, name: 'other' }, /the instance says it is link-state\/1/],
    [
      {
        ...base,
        create: () => {
          throw new Error('boom');
        },
      },
      /factory threw: boom/,
    ],
  ] as const) {
    assert.throws(
      () => validateDescriptor(value, 'm'),
      (e: { code?: string; message: string }) =>
        e.code === 'VMESH_ERR_CONFIG' && why.test(e.message),
    );
  }
  // A module whose protocol clashes with a built-in id or name is refused by the registry.
  const registry = new ProtocolRegistry();
  for (const b of builtinProtocols()) registry.register(b);
  assert.throws(() => registry.register({ ...base, name: 'clash' }), /id 1 is already taken/);
});

test('link cost: 1 on loopback, grows with RTT and loss, bounded; hysteresis ignores noise', () => {
  assert.equal(linkCost(undefined, 0), 1);
  assert.equal(linkCost(0.2, 0), 1);
  assert.equal(linkCost(9.9, 0), 1);
  assert.equal(linkCost(20, 0), 3);
  assert.equal(linkCost(80, 0), 9);
  assert.equal(linkCost(20, 0.3), Math.round(3 / 0.49));
  assert.equal(linkCost(1e9, 1), 0xffff);
  fc.assert(
    fc.property(
      fc.double({ min: -10, max: 1e6, noNaN: true }),
      fc.double({ min: -1, max: 2, noNaN: true }),
      (rtt, loss) => {
        const c = linkCost(rtt, loss);
        assert.ok(Number.isInteger(c) && c >= 1 && c <= 0xffff);
        assert.ok(linkCost(Math.max(rtt, 0) + 10, loss) >= c);
      },
    ),
  );
  assert.equal(costChanged(10, 11), false);
  assert.equal(costChanged(10, 14), true);
  assert.equal(costChanged(1, 2), false);
  assert.equal(costChanged(1, 3), true);
});
