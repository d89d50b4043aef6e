// Documentation generated from the VARIABLES table of shared/config.ts, so it cannot drift from the
// code: `.env.example` (`npm run docs:config`, a test fails when the file on disk differs) and the
// README's configuration table (`node --import tsx scripts/config-docs.ts --table`).
import fs from 'node:fs';
import path from 'node:path';
import { VARIABLES, type VariableName } from '../shared/config';

type Spec = (typeof VARIABLES)[VariableName];

const NO_EFFECT = '(no effect here)';

/** Variables grouped by `group`, groups in order of their first variable in the table. */
function groups(): Map<string, [VariableName, Spec][]> {
  const byGroup = new Map<string, [VariableName, Spec][]>();
  for (const [name, spec] of Object.entries(VARIABLES) as [VariableName, Spec][]) {
    const list = byGroup.get(spec.group) ?? [];
    list.push([name, spec]);
    byGroup.set(spec.group, list);
  }
  return byGroup;
}

export function renderEnvExample(): string {
  const lines = [
    '# Generated from shared/config.ts by `npm run docs:config`: edit the table there, not this file.',
    '# Every value shown is the default. Copy to .env and change what you need; the environment wins over .env.',
  ];
  for (const [group, variables] of groups()) {
    lines.push('', `# ${group}`);
    for (const [name, spec] of variables) {
      lines.push('', `# ${spec.doc}`);
      if (spec.unused) lines.push(`# ${NO_EFFECT}`);
      lines.push(`${name}=${spec.default ?? ''}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** A Markdown cell: pipes would end the cell, newlines the row. */
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

export function renderConfigTable(): string {
  const lines = ['| variable | default | meaning |', '| --- | --- | --- |'];
  for (const [group, variables] of groups()) {
    lines.push(`| **${cell(group)}** | | |`);
    for (const [name, spec] of variables) {
      const value = spec.default ? `\`${cell(spec.default)}\`` : '*(empty)*';
      // Most such docs already open with "No effect"; the marker is for those that do not.
      const meaning = spec.unused && !/^no effect/i.test(spec.doc) ? `*${NO_EFFECT}* ${spec.doc}` : spec.doc;
      lines.push(`| \`${name}\` | ${value} | ${cell(meaning)} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

// Run from scripts/ (tsx) or dist/scripts/ (compiled): the repository root is one or two levels up.
const ROOT = path.resolve(__dirname, path.extname(__filename) === '.ts' ? '..' : '../..');
export const ENV_EXAMPLE_PATH = path.join(ROOT, '.env.example');

function main(args: string[]): void {
  if (args.includes('--env-example')) {
    fs.writeFileSync(ENV_EXAMPLE_PATH, renderEnvExample());
    process.stderr.write(`wrote ${path.relative(process.cwd(), ENV_EXAMPLE_PATH) || ENV_EXAMPLE_PATH}\n`);
  }
  if (args.includes('--table')) process.stdout.write(renderConfigTable());
  if (!args.includes('--env-example') && !args.includes('--table')) {
    process.stderr.write('usage: node --import tsx scripts/config-docs.ts [--env-example] [--table]\n');
    process.exitCode = 2;
  }
}

if (require.main === module) main(process.argv.slice(2));
