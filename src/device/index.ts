/** The device daemon. The only door of src/device/. */
export { Device } from './device.ts';
export type { DeviceOptions, VconnRecord } from './device.ts';
export { configSchema, loadConfig, validateConfig } from './config.ts';
export type { DeviceConfig } from './config.ts';
export { Directory, DIRECTORY_PROTOCOL_ID, decodeAnnounce, encodeAnnounce } from './directory.ts';
export { selectProtocol } from './policy.ts';
export type { PolicyName, Selection, SelectionRequest, SiblingConnection } from './policy.ts';
export { FairQueue } from './scheduler.ts';
export type { FairQueueOptions, SchedulableLink } from './scheduler.ts';
