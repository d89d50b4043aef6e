// The configuration is documented from one table (VARIABLES in shared/config.ts): these tests fail
// when .env.example or docs/configuration.md falls out of step with it. Fix with `npm run docs:config`.
import fs from 'node:fs';
import path from 'node:path';
import dotenv from 'dotenv';
import { parseConfig, VARIABLES } from '../../shared/config';
import { renderConfigTable, renderConfigurationDoc, renderEnvExample } from '../../scripts/config-docs';
import { ROOT } from '../helpers/env';

const names = Object.keys(VARIABLES);
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');
/** Whole names only: PORT is not found inside SMTP_PORT. */
const mentions = (text: string, name: string) => new RegExp(`(^|[^A-Za-z0-9_])${name}([^A-Za-z0-9_]|$)`).test(text);

test('.env.example is what `npm run docs:config` writes', () => {
  expect(read('.env.example')).toBe(renderEnvExample());
});

test('.env.example sets every variable, to its default', () => {
  const parsed = dotenv.parse(read('.env.example'));
  expect(names.filter((name) => !(name in parsed))).toEqual([]);
  expect(Object.keys(parsed).sort()).toEqual([...names].sort());
  for (const [name, spec] of Object.entries(VARIABLES)) expect([name, parsed[name]]).toEqual([name, spec.default ?? '']);
  // Copied to .env unchanged, it starts the service exactly as no .env would.
  expect(parseConfig(parsed)).toEqual(parseConfig({}));
});

test('variables without effect are marked as such in .env.example', () => {
  const text = read('.env.example');
  for (const [name, spec] of Object.entries(VARIABLES)) {
    const marked = text.includes(`# (no effect here)\n${name}=`);
    expect([name, marked]).toEqual([name, Boolean(spec.unused)]);
  }
});

test('the configuration table has one row per variable', () => {
  const rows = renderConfigTable()
    .split('\n')
    .filter((line) => line.startsWith('| `'));
  expect(rows.map((row) => row.split('`')[1])).toEqual(names);
});

test('docs/configuration.md documents every variable, with the table the script renders', () => {
  const doc = read('docs/configuration.md');
  expect(names.filter((name) => !mentions(doc, name))).toEqual([]);
  // The table itself, as the script renders it: defaults and meanings cannot drift either.
  expect(doc).toBe(renderConfigurationDoc(doc));
  expect(doc).toContain(renderConfigTable().trim());
});
