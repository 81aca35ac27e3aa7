/**
 * The one error catalogue of vmesh.
 *
 * Owns: every stable error code, its numeric wire value (carried in ERROR
 * packets between devices) and a one-line summary. `docs/errors.md` is kept in
 * sync with this table by a test (test/unit/errors/catalogue.test.ts).
 * Callers switch on `code`, never on message text.
 */

/** Catalogue entry: stable string code, wire number (u16), summary for docs. */
export interface ErrorSpec {
  readonly wire: number;
  readonly summary: string;
}

export const ERRORS = {
  VMESH_ERR_INTERNAL: { wire: 1, summary: 'An unexpected internal failure; a bug to report.' },
  VMESH_ERR_CONFIG: {
    wire: 2,
    summary: 'The device configuration is invalid; the message names the bad field.',
  },
  VMESH_ERR_MALFORMED: {
    wire: 3,
    summary: 'A frame, packet or message could not be decoded; it is dropped and counted.',
  },
  VMESH_ERR_FRAME_TOO_LARGE: {
    wire: 4,
    summary: 'A link frame announced a length over `maxFrameBytes`; the link is closed.',
  },
  VMESH_ERR_UNSUPPORTED_VERSION: {
    wire: 5,
    summary: 'A peer speaks a wire or handshake version this device does not.',
  },
  VMESH_ERR_HANDSHAKE: {
    wire: 6,
    summary: 'The link handshake failed or timed out; no link was formed.',
  },
  VMESH_ERR_LINK_DOWN: { wire: 7, summary: 'The link to a neighbour closed or went silent.' },
  VMESH_ERR_NO_ROUTE: {
    wire: 8,
    summary: 'No route to the destination by the chosen protocol (and avoid-set).',
  },
  VMESH_ERR_UNKNOWN_DEVICE: {
    wire: 9,
    summary: 'The destination name or device id is not known to this device.',
  },
  VMESH_ERR_UNKNOWN_PROTOCOL: {
    wire: 10,
    summary: 'The routing protocol named or carried in a packet is not enabled here.',
  },
  VMESH_ERR_UNKNOWN_SERVICE: {
    wire: 11,
    summary: 'The destination device does not expose the requested service.',
  },
  VMESH_ERR_SERVICE_UNAVAILABLE: {
    wire: 12,
    summary: 'The service is exposed but its local TCP address refused or failed the connection.',
  },
  VMESH_ERR_VM_LIMIT: {
    wire: 13,
    summary: 'The device already runs its maximum number of VMs (`limits.maxVms`).',
  },
  VMESH_ERR_VM_CRASHED: {
    wire: 14,
    summary: 'The VM carrying this connection failed; only its own connection ended.',
  },
  VMESH_ERR_TIMEOUT: {
    wire: 15,
    summary: 'The peer stopped acknowledging within the transport timeout.',
  },
  VMESH_ERR_CONN_RESET: {
    wire: 16,
    summary: 'The other end aborted the virtual connection.',
  },
  VMESH_ERR_QUEUE_FULL: {
    wire: 17,
    summary: 'A bounded queue was full; the packet was dropped and counted.',
  },
  VMESH_ERR_TTL_EXPIRED: {
    wire: 18,
    summary: 'A packet ran out of hop limit before reaching its destination.',
  },
  VMESH_ERR_DAEMON_UNREACHABLE: {
    wire: 19,
    summary: "The local device daemon's control socket could not be reached.",
  },
  VMESH_ERR_KEY_FILE: {
    wire: 20,
    summary: 'An identity key file is missing, unreadable, malformed or too widely readable.',
  },
  VMESH_ERR_BAD_REQUEST: {
    wire: 21,
    summary: 'A control API request was malformed or named an unknown operation.',
  },
  VMESH_ERR_SHUTDOWN: {
    wire: 22,
    summary: 'The device is shutting down; the connection was closed.',
  },
  VMESH_ERR_FLOW_CONTROL: {
    wire: 23,
    summary: 'The peer sent beyond the receive window it was granted.',
  },
  VMESH_ERR_UNKNOWN_CONNECTION: {
    wire: 24,
    summary: 'A packet named a connection this device has no VM for and could not open.',
  },
  VMESH_ERR_CERT_INVALID: {
    wire: 25,
    summary:
      "A certificate is malformed, not signed by this network's CA, or does not match the keys presented with it.",
  },
  VMESH_ERR_CERT_EXPIRED: {
    wire: 26,
    summary: 'A certificate is outside its validity period.',
  },
  VMESH_ERR_CERT_REVOKED: {
    wire: 27,
    summary: "A certificate is on the network's revocation list.",
  },
  VMESH_ERR_NOT_ADMITTED: {
    wire: 28,
    summary:
      'The device is not admitted to this network (no valid certificate, or not allowed the role it needs, such as relaying).',
  },
  VMESH_ERR_AUTH_FAILED: {
    wire: 29,
    summary:
      'A sealed message failed authentication (tampered, forged or misrouted); it was dropped, counted and quarantined.',
  },
  VMESH_ERR_REPLAY: {
    wire: 30,
    summary: 'A sealed message was a replay of one already received; it was dropped and counted.',
  },
  VMESH_ERR_ACCESS_DENIED: {
    wire: 31,
    summary: "The service's access list does not allow the connecting device.",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

const byWire = new Map<number, ErrorCode>(
  (Object.keys(ERRORS) as ErrorCode[]).map((code) => [ERRORS[code].wire, code]),
);

/** The stable code for a wire number; unknown numbers map to VMESH_ERR_INTERNAL. */
export function codeFromWire(wire: number): ErrorCode {
  return byWire.get(wire) ?? 'VMESH_ERR_INTERNAL';
}

/** True if `code` is a code of the catalogue (for values that crossed a process boundary). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** Base class of every error vmesh throws or reports: carries a stable `code`. */
export class VmeshError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'VmeshError';
    this.code = code;
    this.details = details;
  }

  /** Plain form for JSON (control API, VM messages). Never carries secrets. */
  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: { ...this.details } };
  }

  /** Rebuilds an error from its JSON form; unknown codes become VMESH_ERR_INTERNAL. */
  static fromJSON(value: unknown): VmeshError {
    if (typeof value === 'object' && value !== null) {
      const v = value as { code?: unknown; message?: unknown; details?: unknown };
      const code = isErrorCode(v.code) ? v.code : 'VMESH_ERR_INTERNAL';
      const message = typeof v.message === 'string' ? v.message : String(v.code);
      const details =
        typeof v.details === 'object' && v.details !== null
          ? (v.details as Record<string, unknown>)
          : undefined;
      return new VmeshError(code, message, details);
    }
    return new VmeshError('VMESH_ERR_INTERNAL', String(value));
  }
}

/** Wraps anything thrown into a VmeshError, keeping a VmeshError as it is. */
export function toVmeshError(err: unknown, fallback: ErrorCode = 'VMESH_ERR_INTERNAL'): VmeshError {
  if (err instanceof VmeshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new VmeshError(fallback, message);
}
