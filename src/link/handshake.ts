/**
 * The link handshake: Noise_XX_25519_ChaChaPoly_BLAKE2s (prologue
 * "vmesh-link/1"), each side's static key being its device's X25519 key and
 * its certificate travelling, encrypted, in the handshake payloads:
 *
 *   initiator -> responder   e
 *   responder -> initiator   e, ee, s, es   + responder's certificate
 *   initiator -> responder   s, se          + initiator's certificate
 *
 * Each side checks the other's certificate before it sends anything else:
 * signed by this network's CA, within its validity, not revoked, and issued
 * for exactly the static key that the peer just proved it holds (so a stolen
 * certificate without its private key is useless). The device id comes from
 * the certificate's keys. Any failure throws a VmeshError whose code says
 * why (VMESH_ERR_CERT_INVALID / _EXPIRED / _REVOKED, VMESH_ERR_HANDSHAKE), and
 * the peer never sees a routing message.
 */
import { Handshake, verifyCertificate } from '../crypto/index.ts';
import type { Certificate, CipherState, Identity, RevocationList, Trust } from '../crypto/index.ts';
import { VmeshError } from '../errors/index.ts';
import type { DeviceId } from '../wire/index.ts';

const PROLOGUE = Buffer.from('vmesh-link/1');

/** What a device presents and checks on its links. */
export interface LinkCredentials {
  identity: Identity;
  /** This device's certificate (encoded). */
  certificate: Uint8Array;
  trust: Trust;
  /** The newest revocation list the device holds, if any. */
  revocations: () => RevocationList | undefined;
  /** Wall clock for certificate validity (ms since the epoch). */
  now?: () => number;
}

/** The authenticated peer. */
export interface LinkPeer {
  device: DeviceId;
  name: string;
  certificate: Certificate;
}

export type HandshakeStep =
  | { reply?: Uint8Array; done?: undefined }
  | {
      reply?: Uint8Array;
      done: { peer: LinkPeer; send: CipherState; receive: CipherState };
    };

export class LinkHandshake {
  private readonly noise: Handshake;
  private readonly initiator: boolean;
  private step = 0;

  constructor(
    private readonly creds: LinkCredentials,
    initiator: boolean,
  ) {
    this.initiator = initiator;
    this.noise = new Handshake({
      pattern: 'XX',
      initiator,
      prologue: PROLOGUE,
      staticKeyPair: {
        publicKey: creds.identity.agreementPublic,
        privateKey: creds.identity.agreementPrivate,
      },
    });
  }

  /** The initiator's first message (undefined for the responder). */
  start(): Uint8Array | undefined {
    if (!this.initiator) return undefined;
    this.step = 1;
    return this.noise.writeMessage();
  }

  /** Takes the peer's next handshake message; returns what to send and, at the end, the peer. */
  receive(message: Uint8Array): HandshakeStep {
    if (this.initiator) {
      if (this.step !== 1) throw unexpected();
      const payload = this.noise.readMessage(message);
      const peer = this.check(payload);
      const reply = this.noise.writeMessage(this.creds.certificate);
      this.step = 2;
      return { reply, done: { peer, ...this.noise.split() } };
    }
    if (this.step === 0) {
      this.noise.readMessage(message);
      this.step = 1;
      return { reply: this.noise.writeMessage(this.creds.certificate) };
    }
    if (this.step !== 1) throw unexpected();
    const payload = this.noise.readMessage(message);
    const peer = this.check(payload);
    this.step = 2;
    return { done: { peer, ...this.noise.split() } };
  }

  private check(certificate: Uint8Array): LinkPeer {
    const remoteStatic = this.noise.remoteStaticKey;
    if (remoteStatic === undefined)
      throw new VmeshError('VMESH_ERR_HANDSHAKE', 'peer sent no static key');
    const revocations = this.creds.revocations();
    const cert = verifyCertificate(certificate, this.creds.trust, {
      now: (this.creds.now ?? Date.now)(),
      ...(revocations === undefined ? {} : { revocations }),
    });
    if (Buffer.compare(Buffer.from(cert.agreementPublic), Buffer.from(remoteStatic)) !== 0) {
      throw new VmeshError(
        'VMESH_ERR_CERT_INVALID',
        `certificate of "${cert.name}" was not issued for the key the peer holds (a stolen or mismatched certificate)`,
      );
    }
    if (cert.deviceId === this.creds.identity.deviceId) {
      throw new VmeshError('VMESH_ERR_HANDSHAKE', 'peer is this device (a link to itself?)');
    }
    return { device: cert.deviceId, name: cert.name, certificate: cert };
  }
}

function unexpected(): VmeshError {
  return new VmeshError('VMESH_ERR_HANDSHAKE', 'unexpected handshake message');
}
