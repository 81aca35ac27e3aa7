/** Pure codecs for everything on a link. The only door of src/wire/. */
export * from './ids.ts';
export * from './frame.ts';
export * from './types.ts';
export * from './packet.ts';
export * from './control.ts';
export * from './ping.ts';
