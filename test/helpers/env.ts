// Shared facts of the test run: where the real PostgreSQL and Redis are, the migrated template
// database that each test file clones, and the development keys every test app signs with.
import os from 'node:os';
import path from 'node:path';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const TEMPLATE_DB = 'user_service_test_template';
export const KEYS_DIR = path.join(os.tmpdir(), 'user-service-test-keys');
export const ROOT = path.resolve(__dirname, '..', '..');

export function databaseUrl(name: string): string {
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}
