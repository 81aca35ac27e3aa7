/** VMs: the hypervisor and the device<->VM contract. The only door of src/vm/. */
export { Hypervisor, VmHandle } from './hypervisor.ts';
export type { HypervisorOptions, VmHandlers } from './hypervisor.ts';
export { DEFAULT_VM_OPTIONS } from './types.ts';
export { EndToEnd } from './e2e.ts';
export type { E2ePeer, E2eSpec } from './e2e.ts';
export type {
  DeviceToVm,
  QuarantineItem,
  OpenRequest,
  PacketItem,
  PathHop,
  VmOptions,
  VmRecord,
  VmReport,
  VmRole,
  VmSpec,
  VmToDevice,
} from './types.ts';
