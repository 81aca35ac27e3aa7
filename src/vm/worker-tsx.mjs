// Boots a VM Worker from TypeScript sources (tests, `node --import tsx`):
// Workers do not inherit tsx's loader hooks on Node 20, so register them here
// and then import the real entry. Compiled runs use dist/vm/worker.js instead.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
