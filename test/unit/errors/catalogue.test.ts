import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRORS, VmeshError, codeFromWire } from '../../../src/errors/index.ts';
import type { ErrorCode } from '../../../src/errors/index.ts';
import { renderErrorsDoc } from '../../../scripts/errors-doc.ts';

test('docs/errors.md is the rendering of the catalogue (regenerate with scripts/errors-doc.ts)', () => {
  assert.equal(readFileSync('docs/errors.md', 'utf8'), renderErrorsDoc());
});

test('every code has a unique wire number that maps back to it', () => {
  const codes = Object.keys(ERRORS) as ErrorCode[];
  const wires = codes.map((c) => ERRORS[c].wire);
  assert.equal(new Set(wires).size, codes.length);
  for (const c of codes) {
    assert.match(c, /^VMESH_ERR_[A-Z_]+$/);
    assert.equal(codeFromWire(ERRORS[c].wire), c);
  }
  assert.equal(codeFromWire(65535), 'VMESH_ERR_INTERNAL');
});

test('VmeshError survives JSON round trips with its code; unknown codes become INTERNAL', () => {
  const e = new VmeshError('VMESH_ERR_NO_ROUTE', 'no route to D', { to: 'D' });
  const back = VmeshError.fromJSON(JSON.parse(JSON.stringify(e)));
  assert.equal(back.code, 'VMESH_ERR_NO_ROUTE');
  assert.equal(back.message, 'no route to D');
  assert.deepEqual(back.details, { to: 'D' });
  assert.equal(VmeshError.fromJSON({ code: 'NOPE', message: 'x' }).code, 'VMESH_ERR_INTERNAL');
  assert.equal(VmeshError.fromJSON('boom').code, 'VMESH_ERR_INTERNAL');
});
