/**
 * LinkManager: every link of one device. Owns the listener and one dialer per
 * configured neighbour address.
 *
 * Decisions: (1) redial — after a failed dial or when the link to a dialled
 * neighbour closes, redial after a backoff that doubles from redialMinMs to
 * redialMaxMs, with ±20 % jitter, as long as no other link to that device is
 * up; (2) duplicate links — when both sides dial each other, both keep the
 * link dialled by the device with the lower id and close the other as
 * 'duplicate' (no extra message needed: both compute the same answer).
 */
import type { Duplex } from 'node:stream';
import { toVmeshError } from '../errors/index.ts';
import type { Counters, Logger } from '../observe/index.ts';
import type { DeviceId } from '../wire/index.ts';
import type { LinkCredentials, LinkPeer } from './handshake.ts';
import { LinkSession } from './session.ts';
import { DEFAULT_LINK_OPTIONS } from './types.ts';
import type { Link, LinkOptions, Listener, Transport } from './types.ts';

export interface LinkManagerInit {
  /** What this device presents and checks in every link handshake. */
  credentials: LinkCredentials;
  /** Frames per key per direction before a link rekeys (default 2^20). */
  rekeyAfterFrames?: number;
  transport: Transport;
  /** Address to listen on; no listener if absent. */
  listen?: string | undefined;
  /** Neighbours to dial. */
  neighbours?: { address: string }[];
  logger: Logger;
  counters: Counters;
  options?: LinkOptions;
}

interface Dialer {
  address: string;
  knownId: DeviceId | undefined;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  dialling: boolean;
}

export class LinkManager {
  private readonly init: LinkManagerInit;
  private readonly options: Required<LinkOptions>;
  private readonly active = new Map<DeviceId, LinkSession>();
  private readonly pending = new Set<LinkSession>();
  private readonly dialers: Dialer[];
  private listener: Listener | undefined;
  private running = false;
  private upListeners: ((link: Link) => void)[] = [];
  private downListeners: ((link: Link, reason: string) => void)[] = [];

  constructor(init: LinkManagerInit) {
    this.init = init;
    this.options = {
      ...DEFAULT_LINK_OPTIONS,
      ...(Object.fromEntries(
        Object.entries(init.options ?? {}).filter(([, v]) => v !== undefined),
      ) as LinkOptions),
    };
    this.dialers = (init.neighbours ?? []).map((n) => ({
      address: n.address,
      knownId: undefined,
      attempt: 0,
      timer: undefined,
      dialling: false,
    }));
  }

  onLinkUp(listener: (link: Link) => void): void {
    this.upListeners.push(listener);
  }

  onLinkDown(listener: (link: Link, reason: string) => void): void {
    this.downListeners.push(listener);
  }

  /** The bound listen address, once started. */
  get listenAddress(): string | undefined {
    return this.listener?.address;
  }

  async start(): Promise<void> {
    this.running = true;
    if (this.init.listen !== undefined) {
      this.listener = await this.init.transport.listen(this.init.listen, (stream) =>
        this.accept(stream),
      );
    }
    for (const d of this.dialers) this.dial(d);
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const d of this.dialers) if (d.timer !== undefined) clearTimeout(d.timer);
    for (const s of this.pending) s.close('stopping');
    for (const s of [...this.active.values()]) s.close('stopping');
    await this.listener?.close();
  }

  links(): Link[] {
    return [...this.active.values()];
  }

  link(device: DeviceId): Link | undefined {
    return this.active.get(device);
  }

  /** The authenticated peer (its certificate) of the link to `device`. */
  peerOf(device: DeviceId): LinkPeer | undefined {
    return this.active.get(device)?.remotePeer;
  }

  private accept(stream: Duplex): void {
    if (!this.running) {
      stream.destroy();
      return;
    }
    const session = new LinkSession(stream, 'inbound', this.options, this.init.counters);
    this.handshake(session).catch(() => undefined);
  }

  private dial(d: Dialer): void {
    if (!this.running || d.dialling) return;
    if (d.knownId !== undefined && this.active.has(d.knownId)) return;
    d.dialling = true;
    this.init.transport
      .dial(d.address, this.options.dialTimeoutMs)
      .then(async (stream) => {
        const session = new LinkSession(stream, 'outbound', this.options, this.init.counters);
        const remote = await this.handshake(session);
        d.knownId = remote;
        d.attempt = 0;
        session.onClose(() => this.scheduleDial(d));
      })
      .catch((err: unknown) => {
        this.init.counters.inc('link.dial.failed');
        this.init.logger.debug(
          { address: d.address, err: toVmeshError(err).message },
          'dial failed',
        );
        this.scheduleDial(d);
      })
      .finally(() => {
        d.dialling = false;
      });
  }

  private scheduleDial(d: Dialer): void {
    if (!this.running || d.timer !== undefined) return;
    const base = Math.min(this.options.redialMaxMs, this.options.redialMinMs * 2 ** d.attempt);
    d.attempt = Math.min(d.attempt + 1, 30);
    const delay = base * (0.8 + 0.4 * Math.random());
    d.timer = setTimeout(() => {
      d.timer = undefined;
      this.dial(d);
    }, delay);
  }

  /** Runs the handshake step and registers the link. Resolves with the remote id. */
  private async handshake(session: LinkSession): Promise<DeviceId> {
    this.pending.add(session);
    try {
      const peer: LinkPeer = await session.handshake(
        this.init.credentials,
        this.init.rekeyAfterFrames,
      );
      this.register(session);
      return peer.device;
    } catch (err) {
      const e = toVmeshError(err, 'VMESH_ERR_HANDSHAKE');
      // Refused devices are counted by reason and logged; they never saw a routing message.
      this.init.counters.inc('link.refused', { code: e.code });
      this.init.logger.warn(
        { direction: session.direction, code: e.code, err: e.message },
        'link refused',
      );
      throw e;
    } finally {
      this.pending.delete(session);
    }
  }

  private register(session: LinkSession): void {
    if (!this.running) {
      session.close('stopping');
      return;
    }
    const remote = session.remote;
    const existing = this.active.get(remote);
    if (existing !== undefined && !existing.closed) {
      if (this.preferred(existing, session) === existing) {
        session.close('duplicate');
        return;
      }
      this.active.delete(remote);
      existing.close('duplicate');
    }
    this.active.set(remote, session);
    this.init.counters.inc('link.up');
    session.onClose((reason) => {
      if (this.active.get(remote) === session) {
        this.active.delete(remote);
        this.init.counters.inc('link.down', { reason: reason.split(':')[0] ?? reason });
        for (const l of this.downListeners) l(session, reason);
        // Another dialer may be waiting for this device to go away.
        for (const d of this.dialers) if (d.knownId === remote) this.scheduleDial(d);
      }
    });
    for (const l of this.upListeners) l(session);
  }

  /** Of two links to one device, the one dialled by the lower device id; a tie keeps the newer. */
  private preferred(a: LinkSession, b: LinkSession): LinkSession {
    const self = this.init.credentials.identity.deviceId;
    const dialler = (s: LinkSession): DeviceId => (s.direction === 'outbound' ? self : s.remote);
    const low = self < a.remote ? self : a.remote;
    if (dialler(a) === low && dialler(b) !== low) return a;
    return b;
  }
}
