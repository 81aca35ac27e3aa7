/**
 * A throwaway network PKI for testbeds, the demo and tests: one CA, and
 * device identities with certificates issued on demand (with any roles and
 * validity, for outsider tests too), and a revocation list.
 */
import {
  createCa,
  createRevocationList,
  generateIdentity,
  issueCertificate,
  trustOf,
} from '../crypto/index.ts';
import type { Ca, Identity, Role, Trust } from '../crypto/index.ts';
import type { LinkCredentials } from '../link/index.ts';

export interface IssueOptions {
  /** @default ['relay', 'serve'] */
  roles?: Role[];
  /** Unix ms. @default now − 5 min */
  notBefore?: number;
  /** Unix ms. @default now + 1 day */
  notAfter?: number;
  /** Certify these keys instead of a new identity's. */
  identity?: Identity;
}

export interface Issued {
  identity: Identity;
  certificate: Uint8Array;
  serial: number;
  /** Link credentials of this identity with this certificate (no revocation list). */
  credentials: LinkCredentials;
}

export class TestPki {
  readonly ca: Ca;
  readonly trust: Trust;
  private nextSerial = 1;

  constructor(network = 'testbed') {
    this.ca = createCa(network);
    this.trust = trustOf(this.ca);
  }

  issue(name: string, options: IssueOptions = {}): Issued {
    const identity = options.identity ?? generateIdentity();
    const serial = this.nextSerial++;
    const certificate = issueCertificate(this.ca, {
      name,
      signingPublic: identity.signingPublic,
      agreementPublic: identity.agreementPublic,
      notAfter: options.notAfter ?? Date.now() + 24 * 3600 * 1000,
      roles: options.roles ?? ['relay', 'serve'],
      serial,
      ...(options.notBefore === undefined ? {} : { notBefore: options.notBefore }),
    });
    return {
      identity,
      certificate,
      serial,
      credentials: { identity, certificate, trust: this.trust, revocations: () => undefined },
    };
  }

  /** A signed revocation list of `serials`, issued now. */
  revocationList(serials: number[]): Uint8Array {
    return createRevocationList(this.ca, serials, Date.now());
  }
}
