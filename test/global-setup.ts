// Once per test run: migrate a template database (through the real CLI), and create the keys the
// test apps share. Each test file then clones the template in milliseconds.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { isAlive, startRedisCluster, type OwnRedisCluster } from './helpers/processes';
import { databaseOwner, databaseUrl, KEYS_DIR, PG_URL, ROOT, RUN_PID, TEMPLATE_DB } from './helpers/env';

export default async function globalSetup(): Promise<void> {
  // Test workers inherit the environment: they all clone this run's template and name the
  // databases they create through the product after this process.
  process.env.TEST_RUN_PID = String(RUN_PID);
  if (process.env.TEST_REDIS_TOPOLOGY === 'cluster') {
    // Closed by the global teardown (and killed at exit whatever happens).
    const cluster = await startRedisCluster();
    (globalThis as { redisCluster?: OwnRedisCluster }).redisCluster = cluster;
    process.env.TEST_REDIS_CLUSTER_NODES = cluster.nodes.join(',');
    process.env.TEST_REDIS_URL = `redis://${cluster.nodes[0]}/0`;
  }
  process.env.TEST_TEMPLATE_DB = TEMPLATE_DB;
  process.env.TEST_KEYS_DIR = KEYS_DIR;
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    // Leftovers of runs that were killed before their teardown: never those of a live process
    // (another run may be going on), nor a name without its owner's pid (whose owner we cannot
    // know to be gone).
    const stale = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'us_test_%'`);
    for (const { datname } of stale.rows) {
      const pid = databaseOwner(datname);
      if (!pid || isAlive(pid)) continue;
      await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
    }
  } finally {
    await client.end();
  }
  fs.rmSync(KEYS_DIR, { recursive: true, force: true });
  const env = {
    ...process.env,
    DATABASE_URL: databaseUrl(TEMPLATE_DB),
    JWT_KEYS_DIR: path.join(KEYS_DIR, 'jwt'),
    LOCAL_KMS_KEY_PATH: path.join(KEYS_DIR, 'master.key'),
    ENVIRONMENT: 'development',
  };
  const cli = ['--import', 'tsx', path.join(ROOT, 'scripts', 'cli.ts')];
  execFileSync(process.execPath, [...cli, 'migrate'], { env, cwd: ROOT, stdio: 'pipe' });
  execFileSync(process.execPath, [...cli, 'keys'], { env, cwd: ROOT, stdio: 'pipe' });
}
