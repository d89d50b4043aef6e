// Operator commands: `npm run cli -- <command> [options]`; `npm run cli -- help` lists them and
// `npm run cli -- <command> --help` shows one. Each command is a row of COMMANDS: its options are
// parsed strictly (an unknown or malformed option is a usage error: one line, exit 2), `--help`
// answers before the configuration is read or anything is connected, so it can never act, and a
// destructive command only says what it would do unless it is given `--yes`.
import { parseArgs } from 'node:util';
import type { Knex } from 'knex';
import { ConfigError, parseConfig, readEnvironment, type Config } from '../shared/config';
import { createDb, ensureDatabase, migrateDownAll, migrateLatest, migrationStatus, type Db } from '../shared/db';
import { checkDependencies, redactUrl } from '../shared/process';
import { createOrPromoteAdmin } from '../shared/users/admin';
import { createMissingKeys, KeyError } from '../shared/crypto/keys';
import { AppError, StartupError, UsageError } from '../shared/errors';
import { createRedis, keyMaker, waitForRedis } from '../shared/redis';
import { createPermissionCache, type PermissionCache } from '../shared/authz/cache';
import { setRole } from '../shared/users/roles';
import { createServicePrincipal, rotateServiceSecret, setServiceEnabled } from '../shared/users/services';
import { createLocalKms, rewrapAll } from '../shared/crypto/kms';

const CLI = 'npm run cli --';

interface OptionSpec {
  type: 'string' | 'boolean';
  /** Placeholder of a string option's value in the usage line. */
  value?: string;
  required?: boolean;
  doc: string;
}

type Values = Record<string, string | boolean | undefined>;

interface Run {
  config: Config;
  values: Values;
  /** The service's database, opened on first use and closed when the command ends. */
  db: () => Db;
}

interface Command {
  name: string;
  /** The line of `help`. */
  summary: string;
  /** More of what it does, for `<command> --help`. */
  description?: string;
  options: Record<string, OptionSpec>;
  /** Only with `--yes`; without it, this sentence says what would happen and nothing changes. */
  destructive?: (config: Config) => string;
  /** What to check before running: the database (created when missing if `createsDatabase`), Redis. */
  uses: { database: boolean; createsDatabase?: boolean; redis?: boolean };
  run(input: Run): Promise<void>;
}

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const string = (values: Values, name: string) => values[name] as string;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Role changes must reach the api's permission cache at once: the CLI bumps it too. */
async function withPermissionCache<T>(config: Config, db: Knex, work: (permissions: PermissionCache) => Promise<T>): Promise<T> {
  const redis = createRedis(config, 'command', 'cli');
  try {
    await waitForRedis(redis);
    return await work(createPermissionCache(db, redis, keyMaker(config.redis.keyPrefix)));
  } finally {
    redis.disconnect();
  }
}

const ROLE_OPTIONS: Record<string, OptionSpec> = {
  email: { type: 'string', value: 'EMAIL', required: true, doc: "the user's email" },
  role: { type: 'string', value: 'ROLE', required: true, doc: 'viewer, trader, admin or service' },
};

function roleCommand(name: 'assign-role' | 'remove-role', summary: string): Command {
  return {
    name,
    summary,
    description: "The user's permissions change at once on every api process (their cached permissions are invalidated).",
    options: ROLE_OPTIONS,
    uses: { database: true, redis: true },
    async run({ config, values, db }) {
      const [email, role] = [string(values, 'email'), string(values, 'role')];
      const outcome = await withPermissionCache(config, db(), (permissions) =>
        setRole(db(), permissions, { email, role, assign: name === 'assign-role' }),
      );
      say(`${email}: role ${role} ${outcome}`);
    },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A command about one service principal, named by its client id. */
function serviceCommand(name: string, summary: string, act: (db: Db, clientId: string, config: Config) => Promise<void>): Command {
  return {
    name,
    summary,
    options: {
      'client-id': { type: 'string', value: 'CLIENT_ID', required: true, doc: "the service's client id (as create-service printed it)" },
    },
    uses: { database: true },
    async run({ config, values, db }) {
      const clientId = string(values, 'client-id');
      if (!UUID.test(clientId)) throw new UsageError(`--client-id must be a UUID, not ${JSON.stringify(clientId)}`);
      await act(db(), clientId.toLowerCase(), config);
    },
  };
}

const COMMANDS: Command[] = [
  {
    name: 'migrate',
    summary: 'apply pending migrations (creates the database when missing)',
    options: {},
    uses: { database: true, createsDatabase: true },
    async run({ config, db }) {
      const applied = await migrateLatest(db(), config);
      say(applied.length ? `applied ${applied.join(', ')}` : 'already up to date');
    },
  },
  {
    name: 'migrate:down',
    summary: 'roll every migration back: drops every table and all its data (needs --yes)',
    description: 'For development databases: `migrate` builds the schema again, empty.',
    options: {},
    destructive: (config) => `would roll back every migration of ${redactUrl(config.database.url)}, dropping every table and all its data`,
    uses: { database: true },
    async run({ db }) {
      const reverted = await migrateDownAll(db());
      say(`reverted ${reverted.length} migrations`);
    },
  },
  {
    name: 'migrate:status',
    summary: 'list applied and pending migrations',
    options: {},
    uses: { database: true },
    async run({ db }) {
      const { applied, pending } = await migrationStatus(db());
      for (const name of applied) say(`applied  ${name}`);
      for (const name of pending) say(`pending  ${name}`);
    },
  },
  {
    name: 'keys',
    summary: 'create missing development keys (RS256 signing pair, KMS master key)',
    description:
      'Creates the signing pair JWT_KEYS_DIR/<JWT_SIGNING_KEY_ID>.pem and .pub.pem and the master key LOCAL_KMS_KEY_PATH when they are missing (mode 600); existing keys are kept.',
    options: {},
    uses: { database: false },
    run({ config }) {
      for (const file of createMissingKeys(config)) say(`created ${file}`);
      return Promise.resolve();
    },
  },
  {
    name: 'kms:rewrap',
    summary: 're-wrap every stored data key under the current master key, after a rotation (needs --yes)',
    description:
      'With LOCAL_KMS_KEY_PATH naming the new master key and the old ones in LOCAL_KMS_KEYS_DIR (or LOCAL_KMS_PREVIOUS_KEY_PATHS), re-wraps the data key of every stored envelope (TOTP secrets, broker credentials, queued emails, address requests) without decrypting the values. Retire the old key a quarter of an hour later.',
    options: {},
    destructive: (config) =>
      `would re-wrap every stored data key in ${redactUrl(config.database.url)} under the master key ${config.kms.keyPath}, after which the previous keys can be retired`,
    uses: { database: true },
    async run({ config, db }) {
      const counts = await rewrapAll(db(), createLocalKms(config));
      say(`re-wrapped ${counts.rewrapped} envelopes (${counts.unchanged} already under the current key)`);
    },
  },
  {
    name: 'create-admin',
    summary: 'create an admin (password from standard input), or promote an existing user',
    description: 'Applies pending migrations first. A new admin is active and verified; an existing user keeps their password.',
    options: {
      email: { type: 'string', value: 'EMAIL', required: true, doc: "the admin's email" },
      name: { type: 'string', value: 'NAME', doc: "a new admin's name (default: the part of the email before @)" },
      'password-stdin': {
        type: 'boolean',
        doc: "read a new admin's password from standard input, so it never lands in shell history or `ps`",
      },
    },
    uses: { database: true, createsDatabase: true, redis: true },
    async run({ config, values, db }) {
      const email = string(values, 'email');
      await migrateLatest(db(), config);
      const password = values['password-stdin'] ? await readStdin() : undefined;
      const result = await withPermissionCache(config, db(), (permissions) =>
        createOrPromoteAdmin(db(), permissions, config, { email, name: values.name as string | undefined, password }),
      );
      const what = result.created ? 'created admin' : result.promoted ? 'promoted to admin' : 'already an admin';
      say(`${what}: ${email} (user id ${result.userId})`);
    },
  },
  {
    name: 'create-service',
    summary: 'create a service principal; prints its client id and secret once',
    description: 'Applies pending migrations first. The service exchanges both at POST /v1/auth/service-token for access tokens.',
    options: { name: { type: 'string', value: 'NAME', required: true, doc: 'lowercase letters, digits, _ or -, starting with a letter' } },
    uses: { database: true, createsDatabase: true },
    async run({ config, values, db }) {
      await migrateLatest(db(), config);
      const { clientId, clientSecret } = await createServicePrincipal(db(), config.password.bcryptCost, string(values, 'name'));
      say(
        `client_id=${clientId}\nclient_secret=${clientSecret}\n(the secret is shown only now; exchange both at POST /v1/auth/service-token)`,
      );
    },
  },
  serviceCommand(
    'disable-service',
    'disable a service principal: its tokens are refused at once and it gets no new ones',
    async (db, id) => {
      const outcome = await setServiceEnabled(db, id, false);
      say(outcome === 'changed' ? `disabled service ${id}` : `service ${id} was already disabled`);
    },
  ),
  serviceCommand('enable-service', 'enable a disabled service principal again', async (db, id) => {
    const outcome = await setServiceEnabled(db, id, true);
    say(outcome === 'changed' ? `enabled service ${id}` : `service ${id} was already enabled`);
  }),
  serviceCommand(
    'rotate-service-secret',
    'give a service principal a new secret, printed once: tokens issued with the old one are refused at once',
    async (db, id, config) => {
      const clientSecret = await rotateServiceSecret(db, config.password.bcryptCost, id);
      say(`client_id=${id}\nclient_secret=${clientSecret}\n(the secret is shown only now; the old one and its tokens no longer work)`);
    },
  ),
  roleCommand('assign-role', 'give a user a role (viewer, trader, admin, service)'),
  roleCommand('remove-role', 'take a role away from a user'),
];

function generalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 3;
  return [
    `Usage: ${CLI} <command> [options]`,
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    `\`${CLI} <command> --help\` shows a command's options; --help never changes anything.`,
  ].join('\n');
}

/** Every option a command accepts: its own, --help, and --yes when it is destructive. */
function optionsOf(command: Command): Record<string, OptionSpec & { short?: string }> {
  return {
    ...command.options,
    ...(command.destructive && { yes: { type: 'boolean', doc: 'do it (without --yes: say what would happen and change nothing)' } }),
    help: { type: 'boolean', short: 'h', doc: 'show this help and change nothing' },
  };
}

function commandHelp(command: Command): string {
  const options = optionsOf(command);
  const usage = Object.entries(command.options).map(([name, o]) => {
    const flag = o.type === 'string' ? `--${name} ${o.value}` : `--${name}`;
    return o.required ? flag : `[${flag}]`;
  });
  if (command.destructive) usage.push('--yes');
  const label = ([name, o]: [string, OptionSpec & { short?: string }]) =>
    `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value}` : ''}`;
  const width = Math.max(...Object.entries(options).map((entry) => label(entry).length)) + 3;
  return [
    `Usage: ${CLI} ${[command.name, ...usage].join(' ')}`,
    '',
    `${command.summary[0].toUpperCase()}${command.summary.slice(1)}.${command.description ? ` ${command.description}` : ''}`,
    '',
    'Options:',
    ...Object.entries(options).map((entry) => `  ${label(entry).padEnd(width)}${entry[1].doc}${entry[1].required ? ' (required)' : ''}`),
  ].join('\n');
}

/** The first sentence of parseArgs' message ("Unknown option '--x'"): the rest is advice for other programs. */
const firstSentence = (message: string) => message.split(/\.(?:\s|$)|\n/)[0];

function parseOptions(command: Command, args: string[]): Values {
  const options = Object.fromEntries(
    Object.entries(optionsOf(command)).map(([name, o]) => [name, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
  );
  let values: Values;
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    if (!String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS_')) throw err;
    throw new UsageError(firstSentence((err as Error).message));
  }
  for (const [name, o] of Object.entries(command.options))
    if (o.required && !values[name]) throw new UsageError(`--${name} ${o.value} is required`);
  return values;
}

function loadConfig(): Config {
  try {
    return parseConfig(readEnvironment());
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError(`invalid configuration: ${err.problems.join('; ')}`);
    throw err;
  }
}

async function execute(command: Command, args: string[]): Promise<void> {
  // Before anything else: a request for help reads no configuration and connects to nothing.
  if (args.includes('--help') || args.includes('-h')) return say(commandHelp(command));
  const values = parseOptions(command, args);
  const config = loadConfig();
  if (command.destructive && !values.yes) throw new UsageError(`${command.destructive(config)}; run it again with --yes to do it`);
  if (command.uses.database) {
    const problems = await checkDependencies(config, { redis: command.uses.redis ?? false, createsDatabase: command.uses.createsDatabase });
    if (problems.length) throw new StartupError(problems.join('\n'));
    if (command.uses.createsDatabase) await ensureDatabase(config.database.url);
  }
  let db: Db | undefined;
  try {
    await command.run({ config, values, db: () => (db ??= createDb(config)) });
  } finally {
    await db?.destroy();
  }
}

/** The line(s) for an error the service raised on purpose; undefined for a bug, which keeps its stack. */
function explain(err: unknown): string | undefined {
  if (err instanceof AppError) {
    const fields = (err.errors ?? []).map((e) => `${e.field}: ${e.message}`).join('; ');
    return fields ? `${err.message.replace(/\.$/, '')} (${fields})` : err.message;
  }
  if (err instanceof StartupError || err instanceof KeyError) return err.message;
  return undefined;
}

function fail(command: string, err: unknown): never {
  if (err instanceof UsageError) {
    process.stderr.write(`cli: ${command}: ${err.message} (see \`${CLI} ${command} --help\`)\n`);
    process.exit(2);
  }
  const explained = explain(err);
  if (explained !== undefined) for (const line of explained.split('\n')) process.stderr.write(`cli: ${command}: ${line}\n`);
  else process.stderr.write(`cli: ${command} failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  const [name, ...args] = argv;
  if (name === undefined || ['help', '--help', '-h'].includes(name)) {
    const about = COMMANDS.find((c) => c.name === args[0]);
    return say(about ? commandHelp(about) : generalHelp());
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`cli: unknown command "${name}" (see \`${CLI} help\`)\n`);
    process.exit(2);
  }
  await execute(command, args).catch((err: unknown) => fail(name, err));
}

main(process.argv.slice(2)).catch((err: unknown) => fail(process.argv[2] ?? 'help', err));
