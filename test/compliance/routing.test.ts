// Runs the routing compliance suite (./routing.ts) on every built-in protocol.
import { aodv, distanceVector, flooding, linkState, sourceRoute } from '../../src/routing/index.ts';
import { complianceSuite } from './routing.ts';

complianceSuite({
  name: 'link-state',
  factory: () => linkState(),
  storm: { factory: () => linkState({ maxLsdb: 64 }), maxRoutes: 64 },
});
complianceSuite({
  name: 'flooding',
  factory: () => flooding(),
  floodMode: true,
  storm: { factory: () => flooding({ maxOrigins: 64 }), maxRoutes: 64 },
});
complianceSuite({
  name: 'source-route',
  factory: () => sourceRoute(),
  storm: {
    factory: () => sourceRoute({ maxCachedPaths: 16, maxDiscoveries: 16 }),
    maxRoutes: 64,
  },
});
complianceSuite({
  name: 'aodv',
  factory: () => aodv(),
  // The snapshot lists live neighbours as routes too: the cap plus the line's neighbours.
  storm: { factory: () => aodv({ maxRoutes: 64, maxDiscoveries: 16 }), maxRoutes: 70 },
});
complianceSuite({
  name: 'distance-vector',
  factory: () => distanceVector(),
  storm: { factory: () => distanceVector({ maxRoutes: 64, maxSources: 64 }), maxRoutes: 64 },
});
