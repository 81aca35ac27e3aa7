// Prints docs/errors.md from the catalogue in src/errors: `node --import tsx scripts/errors-doc.ts > docs/errors.md`.
// test/unit/errors/catalogue.test.ts fails when the file and the catalogue disagree.
import { ERRORS } from '../src/errors/index.ts';
import type { ErrorCode } from '../src/errors/index.ts';

export function renderErrorsDoc(): string {
  const rows = (Object.keys(ERRORS) as ErrorCode[]).map(
    (code) => `| \`${code}\` | ${ERRORS[code].wire} | ${ERRORS[code].summary} |`,
  );
  return `# Errors

Every error vmesh reports carries a stable **code** (switch on it, never on
the message text) and, between devices, a **wire number** (the u16 in an ERROR
packet). The catalogue lives in \`src/errors/index.ts\`; this page is generated
from it (\`node --import tsx scripts/errors-doc.ts > docs/errors.md\`) and a
test fails when the two disagree.

Where errors surface:

- **Library** (\`connect()\`): the promise rejects, or the stream emits
  \`'error'\`, with a \`VmeshError\` whose \`code\` is below.
- **CLI**: \`vmesh: CODE: message\` on stderr; exit code 1 (2 for
  \`VMESH_ERR_CONFIG\`).
- **Control API**: \`{"ok":false,"error":{"code":...,"message":...}}\`.
- **Counters** (\`vmesh status --json\`, \`counters\`): dropped packets and
  frames are counted by reason, e.g. \`switch.dropped{reason="malformed"}\`.

| code | wire | meaning |
| --- | --- | --- |
${rows.join('\n')}
`;
}

if (process.argv[1]?.endsWith('errors-doc.ts')) process.stdout.write(renderErrorsDoc());
