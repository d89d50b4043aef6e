// The architecture's import rules hold by lint, not by review: api and workers never import each
// other, and shared imports neither (DESIGN.md, "Shape"). Each case lints a forbidden (or allowed)
// import as if it were written in a real file of that folder, with the project's own ESLint
// configuration, in a process of its own (ESLint loads its configuration as an ES module).
import { execFileSync } from 'node:child_process';
import { ROOT } from '../helpers/env';

jest.setTimeout(120_000);

interface Case {
  file: string;
  code: string;
}

const LINT = `
import { ESLint } from 'eslint';
const cases = JSON.parse(process.argv[1]);
const eslint = new ESLint({ cwd: process.cwd() });
const out = [];
for (const { file, code } of cases) {
  const [result] = await eslint.lintText(code, { filePath: file });
  out.push(result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message));
}
process.stdout.write(JSON.stringify(out));
`;

function restrictedImports(cases: Case[]): string[][] {
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', LINT, JSON.stringify(cases)], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return JSON.parse(output) as string[][];
}

test('imports across api, workers and shared follow the architecture, or lint fails', () => {
  const [sharedToApi, deepSharedToApi, sharedToWorkers, workersToApi, apiToWorkers, apiToShared, workersToShared] = restrictedImports([
    { file: 'shared/errors.ts', code: "import { createApp } from '../api/app';\nexport const probe = createApp;\n" },
    { file: 'shared/auth/sessions.ts', code: "import type { AppState } from '../../api/http/state';\nexport type Probe = AppState;\n" },
    { file: 'shared/errors.ts', code: "import { startWorkers } from '../workers/worker';\nexport const probe = startWorkers;\n" },
    { file: 'workers/processors/email.ts', code: "import { createApp } from '../../api/app';\nexport const probe = createApp;\n" },
    { file: 'api/app.ts', code: "import { startWorkers } from '../workers/worker';\nexport const probe = startWorkers;\n" },
    { file: 'api/app.ts', code: "import { AppError } from '../shared/errors';\nexport const probe = AppError;\n" },
    { file: 'workers/worker.ts', code: "import { AppError } from '../shared/errors';\nexport const probe = AppError;\n" },
  ]);
  expect(sharedToApi).toEqual([expect.stringMatching(/shared\/ is used by the api and the workers and imports neither/)]);
  expect(deepSharedToApi).toHaveLength(1);
  expect(sharedToWorkers).toHaveLength(1);
  expect(workersToApi).toEqual([expect.stringMatching(/Workers call the domain services in shared\//)]);
  expect(apiToWorkers).toEqual([expect.stringMatching(/through queues in shared\//)]);
  expect(apiToShared).toEqual([]);
  expect(workersToShared).toEqual([]);
});
