// Operator commands: `npm run cli -- <command> [options]`. Run `npm run cli -- help` for the list.
import { parseArgs } from 'node:util';
import { loadConfigOrExit, type Config } from '../shared/config';
import { createDb, ensureDatabase, migrateDownAll, migrateLatest, migrationStatus } from '../shared/db';
import { exitUnlessDependencies } from '../shared/process';
import { createOrPromoteAdmin } from '../shared/users/admin';
import { createMissingKeys } from '../shared/crypto/keys';
import { AppError } from '../shared/errors';
import { createRedis, keyMaker, waitForRedis } from '../shared/redis';
import { createPermissionCache, type PermissionCache } from '../shared/authz/cache';
import type { Knex } from 'knex';
import { setRole } from '../shared/users/roles';
import { createServicePrincipal } from '../shared/users/services';
import { createLocalKms, rewrapAll } from '../shared/crypto/kms';

const HELP = `Commands:
  migrate                      apply pending migrations (creates the database when missing)
  migrate:down                 roll every migration back (drops all tables)
  migrate:status               list applied and pending migrations
  keys                         create missing development keys (RS256 signing pair, KMS master key)
  kms:rewrap                   re-wrap every stored envelope under the current master key (after a rotation)
  create-admin --email E [--name N] [--password-stdin]
                               create an admin (password read from stdin), or promote an existing user
  create-service --name N      create a service principal; prints its client id and secret once
  assign-role --email E --role R   give a user a role (viewer, trader, admin, service)
  remove-role --email E --role R   take a role away`;

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

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (!command || command === 'help' || command === '--help') {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const config = loadConfigOrExit();
  if (command === 'keys') {
    for (const file of createMissingKeys(config)) process.stdout.write(`created ${file}\n`);
    return;
  }
  await exitUnlessDependencies(config, { createsDatabase: true });
  await ensureDatabase(config.database.url);
  const db = createDb(config);
  try {
    switch (command) {
      case 'migrate': {
        const applied = await migrateLatest(db);
        process.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'already up to date\n');
        break;
      }
      case 'migrate:down': {
        const reverted = await migrateDownAll(db);
        process.stdout.write(`reverted ${reverted.length} migrations\n`);
        break;
      }
      case 'migrate:status': {
        const { applied, pending } = await migrationStatus(db);
        for (const name of applied) process.stdout.write(`applied  ${name}\n`);
        for (const name of pending) process.stdout.write(`pending  ${name}\n`);
        break;
      }
      case 'create-admin': {
        const { values } = parseArgs({
          args: rest,
          options: { email: { type: 'string' }, name: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
        });
        if (!values.email) throw new AppError(400, 'usage', 'Usage', 'create-admin needs --email');
        await migrateLatest(db);
        const password = values['password-stdin'] ? await readStdin() : undefined;
        const result = await withPermissionCache(config, db, (permissions) =>
          createOrPromoteAdmin(db, permissions, config, { email: values.email!, name: values.name, password }),
        );
        const what = result.created ? 'created admin' : result.promoted ? 'promoted to admin' : 'already an admin';
        process.stdout.write(`${what}: ${values.email} (user id ${result.userId})\n`);
        break;
      }
      case 'kms:rewrap': {
        const counts = await rewrapAll(db, createLocalKms(config));
        process.stdout.write(`re-wrapped ${counts.rewrapped} envelopes (${counts.unchanged} already under the current key)\n`);
        break;
      }
      case 'create-service': {
        const { values } = parseArgs({ args: rest, options: { name: { type: 'string' } } });
        if (!values.name) throw new AppError(400, 'usage', 'Usage', 'create-service needs --name');
        await migrateLatest(db);
        const { clientId, clientSecret } = await createServicePrincipal(db, config.password.bcryptCost, values.name);
        process.stdout.write(
          `client_id=${clientId}\nclient_secret=${clientSecret}\n(the secret is shown only now; exchange both at POST /v1/auth/service-token)\n`,
        );
        break;
      }
      case 'assign-role':
      case 'remove-role': {
        const { values } = parseArgs({ args: rest, options: { email: { type: 'string' }, role: { type: 'string' } } });
        if (!values.email || !values.role) throw new AppError(400, 'usage', 'Usage', `${command} needs --email and --role`);
        const outcome = await withPermissionCache(config, db, (permissions) =>
          setRole(db, permissions, { email: values.email!, role: values.role!, assign: command === 'assign-role' }),
        );
        process.stdout.write(`${values.email}: role ${values.role} ${outcome}\n`);
        break;
      }
      default:
        process.stderr.write(`unknown command "${command}"\n${HELP}\n`);
        process.exitCode = 2;
    }
  } finally {
    await db.destroy();
  }
}

main().catch((err) => {
  if (err instanceof AppError) {
    const fields = err.errors?.map((e) => `\n  ${e.field}: ${e.message}`).join('') ?? '';
    process.stderr.write(`${err.message}${fields}\n`);
  } else {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
  }
  process.exit(1);
});
