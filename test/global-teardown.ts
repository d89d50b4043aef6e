// Test files drop their own databases; this drops the run's template and the one `npm start`'s
// test created through the product.
import pg from 'pg';
import fs from 'node:fs';
import { KEYS_DIR, PG_URL, TEMPLATE_DB } from './helpers/env';

export default async function globalTeardown(): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const left = await client.query(`SELECT datname FROM pg_database WHERE datname LIKE 'us_test_start_%' OR datname = $1`, [TEMPLATE_DB]);
    for (const { datname } of left.rows) await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
  fs.rmSync(KEYS_DIR, { recursive: true, force: true });
}
