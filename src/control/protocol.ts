/**
 * The local control API's wire: a unix socket carrying one JSON request line
 * from the client, one JSON reply line from the device, and then — for
 * `connect` only — the app's byte stream in frames (src/wire frames with the
 * AppFrame types below), so that an error in the middle of a stream reaches the
 * app with its stable code instead of as a bare socket close.
 *
 * Requests: {op:"status"} | {op:"resolve",name} | {op:"connect",to,service,app,protocol?}.
 * Replies:  {ok:true, ...} | {ok:false, error:{code,message}}.
 */
import { z } from 'zod';

/** Frame types of the app stream after a successful connect reply. */
export const AppFrame = {
  /** Stream bytes. */
  DATA: 1,
  /** The sender finished writing (half-close). */
  END: 2,
  /** The vconn failed: body is JSON {code, message}. Terminal. */
  ERROR: 3,
} as const;

/** Largest request line accepted, bytes. */
export const MAX_REQUEST_LINE_BYTES = 64 * 1024;

const appName = z.string().min(1).max(128);

export const requestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('status') }).strict(),
  z.object({ op: z.literal('resolve'), name: z.string().min(1).max(128) }).strict(),
  z
    .object({
      op: z.literal('connect'),
      to: z.string().min(1).max(128),
      service: z.string().min(1).max(64),
      app: appName,
      protocol: z.string().min(1).max(32).optional(),
    })
    .strict(),
]);

export type ControlRequest = z.output<typeof requestSchema>;
export type ConnectRequest = Extract<ControlRequest, { op: 'connect' }>;

/** What a successful connect reply tells the app about its connection. */
export interface ConnectionInfo {
  connection: string;
  destination: string;
  destinationName: string;
  service: string;
  app: string;
  protocol: string;
  reason: string;
  avoid: string[];
  setupMs: number;
}
