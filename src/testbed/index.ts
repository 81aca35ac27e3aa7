/** Many devices on one machine. The only door of src/testbed/. */
export { freePort, startTestbed, waitFor } from './processes.ts';
export type { DeviceStatus, Testbed, TestbedDevice, TestbedDeviceSpec } from './processes.ts';
export { checkClaim, echoRoundTrip, runDemo, startEchoServer } from './demo.ts';
export type { DemoConnection, DemoOptions, DemoResult } from './demo.ts';
export { TestPki } from './pki.ts';
export type { IssueOptions, Issued } from './pki.ts';
