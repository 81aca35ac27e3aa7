/**
 * Selection policy (patent claim 1 (c)-(f), (i)): which routing protocol a new
 * virtual connection uses, which relays it avoids, and why.
 *
 * `diverse` (default): an app's connection to a destination gets a protocol
 * that none of the app's other open connections to that destination uses
 * (preference order of the config otherwise), and avoids their relays when the
 * chosen protocol has a route that does; if every protocol is in use, the
 * least-used one is taken. `first`: the first protocol with a route.
 * An explicit protocol from the app always wins (and still avoids the others'
 * relays where it can). The decision and its reason are returned as data; the
 * device records them on the connection (CLI, dashboard, tests read them).
 */
import { VmeshError } from '../errors/index.ts';
import type { Route, RoutingProtocol } from '../routing/index.ts';
import type { ConnectionId, DeviceId } from '../wire/index.ts';

export type PolicyName = 'diverse' | 'first';

/** One of the app's other open connections to the same destination. */
export interface SiblingConnection {
  connection: ConnectionId;
  protocol: string;
  /** Relays it uses (known from its trace, or predicted from its route). */
  relays: DeviceId[];
}

export interface SelectionRequest {
  app: string;
  destination: DeviceId;
  /** Protocol the app asked for, if any. */
  protocol?: string;
  /** Enabled protocols in preference order. */
  protocols: readonly RoutingProtocol[];
  siblings: readonly SiblingConnection[];
  /** Display name of a device (for reasons). */
  nameOf: (device: DeviceId) => string;
}

export interface Selection {
  protocol: RoutingProtocol;
  avoid: DeviceId[];
  reason: string;
  /** The route the protocol had at selection time. */
  route: Route;
}

export function selectProtocol(policy: PolicyName, req: SelectionRequest): Selection {
  const dest = req.nameOf(req.destination);
  const relays = [...new Set(req.siblings.flatMap((s) => s.relays))]
    .filter((r) => r !== req.destination)
    .sort();
  const avoidText = relays.map(req.nameOf).join(', ');
  const ordinal = req.siblings.length + 1;
  const who = `connection ${ordinal} of app "${req.app}" to ${dest}`;

  if (req.protocol !== undefined) {
    const p = req.protocols.find((x) => x.name === req.protocol);
    if (p === undefined) {
      throw new VmeshError(
        'VMESH_ERR_UNKNOWN_PROTOCOL',
        `protocol "${req.protocol}" is not enabled on this device (enabled: ${req.protocols.map((x) => x.name).join(', ')})`,
      );
    }
    const pick = tryRoute(p, req.destination, relays);
    if (pick === undefined) throw noRoute(dest, [p]);
    return {
      protocol: p,
      avoid: pick.avoid,
      route: pick.route,
      reason: `${who}: ${p.name}, requested by the app${pick.avoid.length > 0 ? `; avoiding relays ${avoidText} used by its other connections` : ''}`,
    };
  }

  if (policy === 'first' || req.siblings.length === 0) {
    for (const p of req.protocols) {
      const route = p.route(req.destination);
      if (route !== undefined) {
        const why =
          req.siblings.length === 0
            ? `first connection of app "${req.app}" to ${dest}`
            : `${who} (policy "first")`;
        return {
          protocol: p,
          avoid: [],
          route,
          reason: `${why}: ${p.name}, the first preferred protocol with a route (${route.hops} hop${route.hops === 1 ? '' : 's'})`,
        };
      }
    }
    throw noRoute(dest, req.protocols);
  }

  const usage = new Map<string, number>();
  for (const s of req.siblings) usage.set(s.protocol, (usage.get(s.protocol) ?? 0) + 1);
  const unused = req.protocols.filter((p) => !usage.has(p.name));
  const used = req.protocols
    .filter((p) => usage.has(p.name))
    .sort((a, b) => (usage.get(a.name) ?? 0) - (usage.get(b.name) ?? 0));
  const usedText = [...usage.keys()].join(', ');

  // Best: an unused protocol that can avoid the siblings' relays; then an unused one that cannot;
  // then the least-used protocol.
  let fallback: Selection | undefined;
  for (const p of unused) {
    const pick = tryRoute(p, req.destination, relays);
    if (pick === undefined) continue;
    const base = `${who}: ${p.name}, a protocol its other connection${req.siblings.length === 1 ? '' : 's'} (${usedText}) do${req.siblings.length === 1 ? 'es' : ''} not use`;
    if (pick.avoid.length > 0 || relays.length === 0) {
      return {
        protocol: p,
        avoid: pick.avoid,
        route: pick.route,
        reason: relays.length === 0 ? base : `${base}; avoiding relays ${avoidText} used by them`,
      };
    }
    fallback ??= {
      protocol: p,
      avoid: [],
      route: pick.route,
      reason: `${base}; no route avoiding relays ${avoidText}, so relays may be shared`,
    };
  }
  if (fallback !== undefined) return fallback;
  for (const p of used) {
    const pick = tryRoute(p, req.destination, relays);
    if (pick === undefined) continue;
    return {
      protocol: p,
      avoid: pick.avoid,
      route: pick.route,
      reason: `${who}: ${p.name}, the least-used protocol (every enabled protocol with a route is already in use)${pick.avoid.length > 0 ? `; avoiding relays ${avoidText}` : ''}`,
    };
  }
  throw noRoute(dest, req.protocols);
}

function tryRoute(
  p: RoutingProtocol,
  destination: DeviceId,
  relays: DeviceId[],
): { route: Route; avoid: DeviceId[] } | undefined {
  if (relays.length > 0) {
    const route = p.route(destination, new Set(relays));
    if (route !== undefined) return { route, avoid: relays };
  }
  const route = p.route(destination);
  return route === undefined ? undefined : { route, avoid: [] };
}

function noRoute(dest: string, protocols: readonly RoutingProtocol[]): VmeshError {
  return new VmeshError(
    'VMESH_ERR_NO_ROUTE',
    `no route to ${dest} by ${protocols.map((p) => p.name).join(' or ')} (yet: routes may still be converging)`,
  );
}
