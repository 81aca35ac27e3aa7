/** The local control API (unix socket): protocol, server and client. The only door of src/control/. */
export { AppFrame, MAX_REQUEST_LINE_BYTES, requestSchema } from './protocol.ts';
export type { ConnectionInfo, ConnectRequest, ControlRequest } from './protocol.ts';
export { ControlServer } from './server.ts';
export type { ControlHandler } from './server.ts';
export { controlRequest, openControl } from './client.ts';
export type { ReplyAndSocket } from './client.ts';
