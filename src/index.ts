/**
 * vmesh as a library: `import { connect } from 'vmesh'`.
 * Everything else is reached through the CLI (`vmesh --help`) and the device daemon.
 */
export { connect, VconnStream } from './front/index.ts';
export type { ConnectOptions } from './front/index.ts';
export type { ConnectionInfo } from './control/index.ts';
export { VmeshError, ERRORS } from './errors/index.ts';
export type { ErrorCode } from './errors/index.ts';
