// Test files drop their own databases; `npm start`'s test creates one through the product.
import pg from 'pg';
import { PG_URL } from './helpers/env';

export default async function globalTeardown(): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const left = await client.query(`SELECT datname FROM pg_database WHERE datname LIKE 'us_test_start_%'`);
    for (const { datname } of left.rows) await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
