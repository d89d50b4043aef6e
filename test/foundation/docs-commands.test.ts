// Every shell command of the README and docs/ works as written (DESIGN.md, "Docs"): the service is
// started the way `npm start` starts it (its own new database, Redis prefixes, keys folder and
// port), then every command line of every bash block, README first and then docs/ in name order,
// runs through bash exactly as printed, with the service's environment, and must exit 0. A few
// lines cannot run inside a test run; each is listed below with the reason and where it is
// checked instead, and the list may only name lines that exist. The admin the README creates can
// then sign in to that service, and the service principal can get a token from it.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, dropTestDatabase, eventually, testEnvironment } from '../helpers/app';
import { runCommand } from '../helpers/cli';
import { ROOT } from '../helpers/env';
import { descendantsOf, freePort, isAlive } from '../helpers/processes';

jest.setTimeout(240_000);

const DOCUMENTS = [
  'README.md',
  ...fs
    .readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

/** Lines that cannot run inside a test run, and where they are checked instead. */
const NOT_RUN_HERE: Record<string, string> = {
  'npm ci && npm start':
    'reinstalling node_modules under running tests; .ci/run runs `npm ci`, this test starts the service with `npm start`',
  'npm ci && npm test': 'the test run itself: .ci/run runs `npm ci` and `npm test`',
  'npm ci && npm run cli -- keys':
    'reinstalling node_modules under running tests; the keys command runs in test/foundation/cli-usage.test.ts',
  'docker compose up -d --build': 'no Docker engine on this machine kind (DESIGN.md, "Docker")',
  'docker compose up -d --scale worker=3': 'no Docker engine on this machine kind (DESIGN.md, "Docker")',
};

/** The command lines of every bash block of a document (comments, blank lines and trailing comments left out). */
function commandsOf(document: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, document), 'utf8');
  return [...text.matchAll(/^```bash\n([\s\S]*?)^```/gm)].flatMap(([, block]) =>
    block
      .replace(/\\\n/g, '')
      .split('\n')
      .map((line) => line.replace(/\s+#\s.*$/, '').trim())
      .filter((line) => line && !line.startsWith('#')),
  );
}

let service: ChildProcess;
let output = '';
let env: Record<string, string>;
let url: string;
let database: string;
let keysDir: string;

beforeAll(async () => {
  keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'us-readme-'));
  database = `us_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  const port = await freePort();
  env = {
    PATH: process.env.PATH!,
    HOME: process.env.HOME ?? os.homedir(),
    ...testEnvironment(database),
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_KEYS_DIR: path.join(keysDir, 'jwt'),
    LOCAL_KMS_KEY_PATH: path.join(keysDir, 'master.key'),
    LOG_LEVEL: 'warn',
  };
  url = `http://127.0.0.1:${port}`;
  // Its own process group, so that teardown can find everything it started.
  service = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  service.stdout!.on('data', (d) => (output += d));
  service.stderr!.on('data', (d) => (output += d));
  await eventually(async () => (await call(`${url}/health/ready`).catch(() => ({ status: 0 }))).status === 200, {
    timeoutMs: 180_000,
    intervalMs: 250,
  }).catch((err: Error) => {
    throw new Error(`npm start did not become ready: ${err.message}\n${output}`);
  });
});

afterAll(async () => {
  if (service) await stop(service);
  if (database) await dropTestDatabase(database);
  if (keysDir) fs.rmSync(keysDir, { recursive: true, force: true });
});

/** SIGTERM to npm's process group (start.js stops the api and the worker in order), SIGKILL to whatever outlives it. */
async function stop(child: ChildProcess): Promise<void> {
  const pids = [child.pid!, ...descendantsOf(child.pid!).map(({ pid }) => pid)];
  if (isAlive(child.pid!)) process.kill(-child.pid!, 'SIGTERM');
  await eventually(() => !pids.some(isAlive), { timeoutMs: 30_000, intervalMs: 100 }).catch(() => {
    for (const pid of pids.filter(isAlive)) process.kill(pid, 'SIGKILL');
  });
}

test('every command of the README and docs/ runs as written and exits 0, against the running service', async () => {
  const all = DOCUMENTS.flatMap((document) => commandsOf(document).map((command) => ({ document, command })));
  for (const exempt of Object.keys(NOT_RUN_HERE)) expect(all.map((c) => c.command)).toContain(exempt);
  const commands = all.filter((c) => !(c.command in NOT_RUN_HERE)).map((c) => c.command);
  for (const expected of [/create-admin .*--password-stdin/, /assign-role/, /create-service/, /migrate:status/])
    expect(commands).toContainEqual(expect.stringMatching(expected));
  const outputs: string[] = [];
  for (const command of commands) {
    const r = await runCommand('bash', ['-c', command], { env });
    expect({ command, status: r.status, stderr: r.status === 0 ? '' : r.stderr }).toEqual({ command, status: 0, stderr: '' });
    outputs.push(r.stdout);
  }

  // They acted on this service: the admin signs in with the README's password, the service principal gets a token.
  const [, password, email] = /printf '%s' '([^']+)' \| .*--email (\S+)/.exec(commands[0])!;
  const login = await call(`${url}/v1/auth/login`, { body: { email, password } });
  expect(login.status).toBe(200);
  expect(login.body.user.email).toBe(email);
  const printed = outputs.join('\n');
  const [clientId, clientSecret] = [/client_id=(\S+)/, /client_secret=(\S+)/].map((re) => re.exec(printed)?.[1]);
  const token = await call(`${url}/v1/auth/service-token`, { body: { client_id: clientId, client_secret: clientSecret } });
  expect(token.status).toBe(200);
});
