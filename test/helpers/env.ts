// Shared facts of the test run: where the real PostgreSQL and Redis are, the migrated template
// database that each test file clones, and the development keys every test app signs with.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
// Set by the global set-up when TEST_REDIS_TOPOLOGY=cluster: the suite then runs on a Redis Cluster
// of its own (`npm run test:cluster`), every app and CLI reaching it through REDIS_CLUSTER_NODES.
export const REDIS_CLUSTER_NODES = process.env.TEST_REDIS_CLUSTER_NODES ?? '';
// The process id of the Jest run (global set-up passes it to the test workers). Databases named
// `us_test_<pid>_…` belong to that process: another run's clean-up leaves them alone while it lives.
export const RUN_PID = Number(process.env.TEST_RUN_PID ?? process.pid);
// One template per test run (global set-up names it), so runs on one machine never collide.
export const TEMPLATE_DB = process.env.TEST_TEMPLATE_DB ?? `us_test_${RUN_PID}_template`;
export const KEYS_DIR = process.env.TEST_KEYS_DIR ?? path.join(os.tmpdir(), `user-service-test-keys-${process.pid}`);
// Apps without SMTP_HOST write their emails as files (EMAIL_DEV_DIR): each app gets a folder in
// here, never the repository's tmp/mail; the global teardown removes it.
export const MAIL_DIR = path.join(os.tmpdir(), `user-service-test-mail-${RUN_PID}`);
export const ROOT = path.resolve(__dirname, '..', '..');

export function databaseUrl(name: string): string {
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The pid in a test database's name (`us_test_<pid>_…`), or null for a name without one. */
export function databaseOwner(name: string): number | null {
  const pid = Number(/^us_test_(\d+)_/.exec(name)?.[1]);
  return pid || null;
}

/** A database this run creates through the product (`npm start`): the global teardown drops it. */
export function runDatabaseName(label: string): string {
  return `us_test_${RUN_PID}_${label}_${crypto.randomBytes(4).toString('hex')}`;
}
