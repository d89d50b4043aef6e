// Shared facts of the test run: where the real PostgreSQL and Redis are, the migrated template
// database that each test file clones, and the development keys every test app signs with.
import os from 'node:os';
import path from 'node:path';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
// One template per test run (global set-up names it), so runs on one machine never collide.
export const TEMPLATE_DB = process.env.TEST_TEMPLATE_DB ?? `us_test_${process.pid}_template`;
export const KEYS_DIR = process.env.TEST_KEYS_DIR ?? path.join(os.tmpdir(), `user-service-test-keys-${process.pid}`);
export const ROOT = path.resolve(__dirname, '..', '..');

export function databaseUrl(name: string): string {
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}
