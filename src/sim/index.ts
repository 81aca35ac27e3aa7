/**
 * The simulator: the routing protocol cores on virtual time, simulated links
 * (delay, loss, bandwidth), topologies, scripted events, traffic and the
 * figures `vmesh sim` reports. The only door of src/sim/.
 */
export { SimNetwork, simId, CONTROL_OVERHEAD_BYTES } from './network.ts';
export { EventHeap } from './heap.ts';
export type { DeviceStats, SimObserver, SimOptions } from './network.ts';
export { Traffic } from './traffic.ts';
export type { Flow, TrafficOptions, TrafficStats } from './traffic.ts';
export {
  DEFAULT_LINK,
  components,
  diamond,
  distance,
  geometricEdges,
  grid,
  line,
  parseEdges,
  randomGeometric,
  ring,
  scaleFree,
  topologyFrom,
} from './topology.ts';
export type { Edge, LinkSpec, Topology } from './topology.ts';
export { fork, randomInt, seeded } from './rng.ts';
export type { Rng } from './rng.ts';
export { simulate } from './run.ts';
export type { ProtocolResult, ScriptEvent, SimResult, SimSpec } from './run.ts';
export { formatSimTable, simChartSvg } from './report.ts';
export { loadEvents, parseEvents } from './events.ts';
