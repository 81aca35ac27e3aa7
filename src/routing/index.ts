/** Routing protocols: the contract, the registry and the built-in protocols. The only door of src/routing/. */
export type {
  ForwardingMode,
  ForwardingTable,
  ProtocolDescriptor,
  ProtocolMessage,
  Route,
  RouteEntry,
  RoutingAction,
  RoutingComponents,
  RoutingProtocol,
  RoutingProtocolFactory,
  RoutingSnapshot,
} from './types.ts';
export { ProtocolRegistry, builtinProtocols, validateDescriptor } from './registry.ts';
export { loadProtocolModule } from './plugins.ts';
export { Reader } from './ids.ts';
export {
  checkClaim,
  claimBlock,
  encodeClaim,
  nullSigner,
  readClaim,
  sameClaim,
  signsNothing,
} from './signing.ts';
export type { Claim, RoutingSigner } from './signing.ts';
export { MAX_LINK_COST, costChanged, linkCost } from './cost.ts';
export { linkState } from './link-state/index.ts';
export type { LinkStateInit } from './link-state/index.ts';
export {
  LinkStateMessage,
  decodeLsa,
  encodeLsa,
  decodeHello as decodeLinkStateHello,
  encodeHello as encodeLinkStateHello,
} from './link-state/messages.ts';
export {
  flooding,
  FloodingMessage,
  decodeAnnounce as decodeFloodAnnounce,
  encodeAnnounce as encodeFloodAnnounce,
} from './flooding/index.ts';
export type { FloodingInit } from './flooding/index.ts';
export { shortestPaths } from './link-state/spf.ts';
export { sourceRoute, SourceRouteMessage } from './source-route/index.ts';
export type { SourceRouteInit } from './source-route/index.ts';
export { aodv, AodvMessage } from './aodv/index.ts';
export type { AodvInit } from './aodv/index.ts';
export { distanceVector, DistanceVectorMessage } from './distance-vector/index.ts';
export type { DistanceVectorInit } from './distance-vector/index.ts';
