// Test files drop their own databases; this drops the run's template and the one `npm start`'s
// test created through the product (both named after this process), never another run's, and
// removes the run's keys and the emails its apps wrote as files.
import pg from 'pg';
import fs from 'node:fs';
import { databaseOwner, KEYS_DIR, MAIL_DIR, PG_URL, RUN_PID, TEMPLATE_DB } from './helpers/env';
import type { OwnRedisCluster } from './helpers/processes';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { redisCluster?: OwnRedisCluster }).redisCluster?.close();
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const left = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'us_test_%'`);
    for (const { datname } of left.rows)
      if (datname === TEMPLATE_DB || databaseOwner(datname) === RUN_PID)
        await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
  fs.rmSync(KEYS_DIR, { recursive: true, force: true });
  fs.rmSync(MAIL_DIR, { recursive: true, force: true });
}
