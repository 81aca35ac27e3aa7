// fast-check arbitraries shared by the wire tests.
import fc from 'fast-check';
import type { Packet } from '../../../src/wire/index.ts';

export const deviceId = fc.stringMatching(/^[0-9a-f]{32}$/);
export const connectionId = fc.stringMatching(/^[0-9a-f]{16}$/);

export const packet: fc.Arbitrary<Packet> = fc
  .record({
    kind: fc.constantFrom(1, 2),
    protocol: fc.integer({ min: 1, max: 255 }),
    syn: fc.boolean(),
    fin: fc.boolean(),
    trace: fc.option(
      fc.array(fc.record({ device: deviceId, timeMs: fc.integer({ min: 0, max: 0xffffffff }) }), {
        maxLength: 5,
      }),
      { nil: undefined },
    ),
    hopLimit: fc.integer({ min: 0, max: 255 }),
    connection: connectionId,
    source: deviceId,
    destination: deviceId,
    packetNumber: fc.oneof(
      fc.integer({ min: 0, max: 1000 }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    ),
    route: fc.array(deviceId, { maxLength: 4 }),
    routeIndex: fc.nat(),
    avoid: fc.array(deviceId, { maxLength: 4 }),
    payload: fc.uint8Array({ maxLength: 300 }),
  })
  .map((r) => {
    const p: Packet = {
      kind: r.kind,
      protocol: r.protocol,
      flags: (r.syn ? 1 : 0) | (r.fin ? 2 : 0) | (r.trace !== undefined ? 4 : 0),
      hopLimit: r.hopLimit,
      connection: r.connection,
      source: r.source,
      destination: r.destination,
      packetNumber: r.packetNumber,
      payload: r.payload,
    };
    if (r.route.length > 0) {
      p.route = r.route;
      p.routeIndex = r.routeIndex % r.route.length;
    }
    if (r.avoid.length > 0) p.avoid = r.avoid;
    if (r.trace !== undefined) p.trace = r.trace;
    return p;
  });
