/** Front doors: how applications ask for virtual connections. The only door of src/front/. */
export { connect, VconnStream } from './connect.ts';
export type { ConnectOptions } from './connect.ts';
