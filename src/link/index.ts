/** Links between neighbouring devices. The only door of src/link/. */
export { LinkManager } from './manager.ts';
export type { LinkManagerInit } from './manager.ts';
export { LinkSession } from './session.ts';
export { LinkHandshake } from './handshake.ts';
export type { HandshakeStep, LinkCredentials, LinkPeer } from './handshake.ts';
export { DEFAULT_REKEY_AFTER_FRAMES, SecureChannel } from './secure.ts';
export { tcpTransport, parseHostPort } from './tcp/index.ts';
export { MemoryNetwork, duplexPair } from './memory/index.ts';
export { DEFAULT_LINK_OPTIONS } from './types.ts';
export type { Link, LinkOptions, LinkStats, Listener, Transport } from './types.ts';
