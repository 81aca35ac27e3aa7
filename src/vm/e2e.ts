/**
 * End to end: each virtual connection's own Noise IK handshake, from the
 * source VM to the destination VM, and the sealing of every data packet's
 * payload — so relay VMs forward ciphertext they can neither read nor alter
 * undetected.
 *
 * Handshake (Noise_IK_25519_ChaChaPoly_BLAKE2s, prologue "vmesh-vconn/1" ‖
 * connection id), carried in HANDSHAKE packets before any transport data:
 *
 *   source -> destination   e, es, s, ss   + the source's certificate
 *   destination -> source   e, ee, se      (empty payload)
 *
 * The source knows the destination's static key from the destination's
 * certificate (the network directory). The destination checks the source's
 * certificate (this network's CA, validity, revocation), that it was issued
 * for the static key the source just proved it holds, and that it names the
 * packet's source device. The source resends its first message until the
 * answer comes; the destination answers a repeated first message with the
 * same reply.
 *
 * Data: payload = ChaCha20-Poly1305(k, nonce = packet number, AD = kind ‖
 * protocol ‖ connection ‖ source ‖ destination ‖ packet number), so a
 * tampered payload, a forged header field or a packet of another connection
 * fails to open; a packet number seen before is a replay. Either is dropped,
 * counted and quarantined by the engine; nothing reaches the transport.
 */
import { Handshake, verifyCertificate, verifyRevocationList } from '../crypto/index.ts';
import type { CipherState, NoiseKeyPair, RevocationList, Trust } from '../crypto/index.ts';
import { VmeshError } from '../errors/index.ts';
import { CONNECTION_ID_BYTES, DEVICE_ID_BYTES, writeHexId } from '../wire/index.ts';
import type { ConnectionId, DeviceId, Packet } from '../wire/index.ts';

/** What a source or destination VM is given for its end-to-end session (structured-clone safe). */
export interface E2eSpec {
  /** This device's X25519 key pair (the Noise static key). */
  staticKey: NoiseKeyPair;
  /** This device's certificate (sent by the source in the handshake). */
  certificate: Uint8Array;
  /** The network's trust anchor (the destination checks the source's certificate). */
  trust: Trust;
  /** The newest revocation list, encoded, if any. */
  revocations?: Uint8Array;
  /** Source: the destination's X25519 public key, from its certificate. */
  remoteStatic?: Uint8Array;
}

/** The authenticated peer of a destination VM. */
export interface E2ePeer {
  device: DeviceId;
  name: string;
}

const AD_BYTES = 2 + CONNECTION_ID_BYTES + 2 * DEVICE_ID_BYTES + 8;

export class EndToEnd {
  private readonly noise: Handshake;
  private send: CipherState | undefined;
  private receive: CipherState | undefined;
  private firstMessage: Uint8Array | undefined;
  private reply: Uint8Array | undefined;
  private peerInfo: E2ePeer | undefined;
  private readonly ad = Buffer.alloc(AD_BYTES);

  constructor(
    private readonly role: 'source' | 'destination',
    private readonly spec: E2eSpec,
    private readonly connection: ConnectionId,
    /** The other end's device id. */
    private readonly peer: DeviceId,
  ) {
    if (role === 'source' && spec.remoteStatic === undefined)
      throw new VmeshError('VMESH_ERR_INTERNAL', 'a source VM needs the destination key');
    const prologue = Buffer.alloc(13 + CONNECTION_ID_BYTES);
    prologue.write('vmesh-vconn/1', 0, 'latin1');
    writeHexId(prologue, 13, connection, CONNECTION_ID_BYTES);
    this.noise = new Handshake({
      pattern: 'IK',
      initiator: role === 'source',
      prologue,
      staticKeyPair: spec.staticKey,
      ...(spec.remoteStatic === undefined ? {} : { remoteStaticKey: spec.remoteStatic }),
    });
  }

  get ready(): boolean {
    return this.send !== undefined;
  }

  /** Destination: who the source proved to be. */
  get peerDevice(): E2ePeer | undefined {
    return this.peerInfo;
  }

  /** Source: the first handshake message (the same bytes on every resend). */
  hello(): Uint8Array {
    this.firstMessage ??= this.noise.writeMessage(this.spec.certificate);
    return this.firstMessage;
  }

  /**
   * A HANDSHAKE packet's payload arrived. Destination: returns the reply to
   * send (again for a repeated first message). Source: completes the
   * session. Throws VmeshError (HANDSHAKE, CERT_*) when it is not acceptable.
   */
  onHandshake(payload: Uint8Array, source: DeviceId, now: number): Uint8Array | undefined {
    if (this.role === 'source') {
      if (this.ready) return undefined;
      this.noise.readMessage(payload);
      this.finish();
      return undefined;
    }
    if (this.reply !== undefined) {
      if (this.firstMessage !== undefined && Buffer.from(payload).equals(this.firstMessage))
        return this.reply;
      throw new VmeshError('VMESH_ERR_HANDSHAKE', 'a second, different first message');
    }
    const certificate = this.noise.readMessage(payload);
    const revocations = this.revocationList();
    const cert = verifyCertificate(certificate, this.spec.trust, {
      now,
      ...(revocations === undefined ? {} : { revocations }),
    });
    const remote = this.noise.remoteStaticKey;
    if (remote === undefined || !Buffer.from(cert.agreementPublic).equals(Buffer.from(remote))) {
      throw new VmeshError(
        'VMESH_ERR_CERT_INVALID',
        `certificate of "${cert.name}" was not issued for the key the source holds`,
      );
    }
    if (cert.deviceId !== source || source !== this.peer) {
      throw new VmeshError(
        'VMESH_ERR_CERT_INVALID',
        `certificate of "${cert.name}" does not name the connection's source device`,
      );
    }
    this.peerInfo = { device: cert.deviceId, name: cert.name };
    this.firstMessage = Uint8Array.from(payload);
    this.reply = this.noise.writeMessage();
    this.finish();
    return this.reply;
  }

  /** Seals a data packet's payload (the packet's header fields are bound as AD). */
  seal(p: Packet, plaintext: Uint8Array): Buffer {
    if (this.send === undefined) throw new VmeshError('VMESH_ERR_INTERNAL', 'no session yet');
    return this.send.encryptWithNonce(p.packetNumber, plaintext, this.bind(p));
  }

  /** Opens a data packet's payload; throws VMESH_ERR_AUTH_FAILED. */
  open(p: Packet): Buffer {
    if (this.receive === undefined)
      throw new VmeshError('VMESH_ERR_AUTH_FAILED', 'data before the end-to-end handshake');
    return this.receive.decryptWithNonce(p.packetNumber, p.payload, this.bind(p));
  }

  private finish(): void {
    const { send, receive } = this.noise.split();
    this.send = send;
    this.receive = receive;
  }

  private bind(p: Packet): Buffer {
    const ad = this.ad;
    ad[0] = p.kind;
    ad[1] = p.protocol;
    writeHexId(ad, 2, p.connection, CONNECTION_ID_BYTES);
    writeHexId(ad, 2 + CONNECTION_ID_BYTES, p.source, DEVICE_ID_BYTES);
    writeHexId(ad, 2 + CONNECTION_ID_BYTES + DEVICE_ID_BYTES, p.destination, DEVICE_ID_BYTES);
    ad.writeUInt32BE(Math.floor(p.packetNumber / 0x100000000), AD_BYTES - 8);
    ad.writeUInt32BE(p.packetNumber >>> 0, AD_BYTES - 4);
    return ad;
  }

  private revocationList(): RevocationList | undefined {
    const bytes = this.spec.revocations;
    if (bytes === undefined) return undefined;
    return verifyRevocationList(bytes, this.spec.trust);
  }
}
