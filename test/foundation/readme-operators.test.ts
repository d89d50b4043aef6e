// The README's operator commands work as written: the service is started the way `npm start`
// starts it (its own new database, Redis prefixes, keys folder and port), then every command line
// of the bash block in "## Operators" runs through bash exactly as printed, with the service's
// environment, and must exit 0. The admin it creates can then sign in to that service, and the
// service principal can get a token from it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, dropTestDatabase, eventually, testEnvironment } from '../helpers/app';
import { runCommand } from '../helpers/cli';
import { ROOT } from '../helpers/env';
import { freePort } from '../helpers/processes';

jest.setTimeout(240_000);

/** The command lines of the first bash block of the README's "## Operators" section (comments and blank lines left out). */
function operatorCommands(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = /^## Operators\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  const block = section && /^```bash\n([\s\S]*?)^```/m.exec(section)?.[1];
  if (!block) throw new Error('README.md: no bash block in "## Operators"');
  return block
    .replace(/\\\n/g, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
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

/** Every process below `root` (npm, its shell, start.js, and the api and worker start.js runs). */
function descendantsOf(root: number): number[] {
  const table = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number));
  const found = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of table)
      if (found.has(ppid) && !found.has(pid)) {
        found.add(pid);
        grew = true;
      }
  }
  found.delete(root);
  return [...found];
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** SIGTERM to npm's process group (start.js stops the api and the worker in order), SIGKILL to whatever outlives it. */
async function stop(child: ChildProcess): Promise<void> {
  const pids = [child.pid!, ...descendantsOf(child.pid!)];
  if (alive(child.pid!)) process.kill(-child.pid!, 'SIGTERM');
  await eventually(() => pids.every((pid) => !alive(pid)), { timeoutMs: 30_000, intervalMs: 100 }).catch(() => {
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
  });
}

test('every operator command of the README runs as written and exits 0, against the running service', async () => {
  const commands = operatorCommands();
  for (const expected of [/create-admin .*--password-stdin/, /assign-role/, /create-service/, /migrate:status/, /kms:rewrap --yes/])
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
