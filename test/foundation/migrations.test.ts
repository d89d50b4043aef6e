// The schema: migrations run down to zero and up again, and its constraints keep data honest.
import { knex as knexFactory, type Knex } from 'knex';
import { createTestDatabase, dropTestDatabase } from '../helpers/app';
import { databaseUrl } from '../helpers/env';
import { migrationSettings } from '../../shared/db';
import { listEffectivePermissions } from '../../shared/authz/permissions';
import type { Model } from 'objection';
import * as allModels from '../../shared/models';
import { Role } from '../../shared/models';

let name: string;
let db: Knex;
beforeAll(async () => {
  name = await createTestDatabase();
  db = knexFactory({ client: 'pg', connection: databaseUrl(name), pool: { min: 0, max: 2 } });
});
afterAll(async () => {
  await db.destroy();
  await dropTestDatabase(name);
});

const tables = async () =>
  (await db('pg_tables').where({ schemaname: 'public' }).pluck('tablename')).filter((t: string) => !t.startsWith('knex_')).sort();

test('migrations run down to zero and up again', async () => {
  const before = await tables();
  expect(before).toEqual([
    'address_requests',
    'audit_exports', // Audit trail (issue 15)
    'auth_providers',
    'email_change_tokens',
    'email_messages',
    'email_verification_tokens',
    'events',
    'mfa_backup_codes',
    'permissions',
    'refresh_tokens',
    'role_permissions',
    'roles',
    'sessions',
    'trading_accounts',
    'user_permissions',
    'user_roles',
    'users',
  ]);
  await db.migrate.rollback(migrationSettings(), true);
  expect(await tables()).toEqual([]);
  await db.migrate.latest(migrationSettings());
  expect(await tables()).toEqual(before);
});

test('every table has an Objection model that reads it', async () => {
  const models = (Object.values(allModels) as unknown[]).filter((m): m is typeof Model => typeof m === 'function' && 'tableName' in m);
  expect(models.map((m) => m.tableName).sort()).toEqual(await tables());
  for (const model of models) await expect(model.query(db).limit(1)).resolves.toBeInstanceOf(Array);
  const admin = await Role.query(db).findOne({ name: 'admin' }).withGraphFetched('[inherits.inherits, permissions]');
  expect(admin?.inherits?.name).toBe('trader');
  expect(admin?.inherits?.inherits?.name).toBe('viewer');
});

test('roles are seeded as a hierarchy: admin has all of trader, trader all of viewer', async () => {
  const [{ id }] = await db('users').insert({ email: 'h@example.com', name: 'H' }).returning('id');
  const permissionsOf = async (role: string) => {
    await db('user_roles').where({ user_id: id }).del();
    await db('user_roles').insert({ user_id: id, role_id: (await db('roles').where({ name: role }).first())!.id });
    return new Set((await listEffectivePermissions(db, id)).map((p) => p.name));
  };
  const viewer = await permissionsOf('viewer');
  const trader = await permissionsOf('trader');
  const admin = await permissionsOf('admin');
  expect([...viewer].sort()).toEqual(['alerts:read', 'market_data:read', 'orders:read', 'portfolio:read', 'profile:read', 'profile:write']);
  for (const p of viewer) expect(trader).toContain(p);
  for (const p of trader) expect(admin).toContain(p);
  expect(trader).toContain('orders:write');
  expect(trader).not.toContain('queues:admin');
  expect(admin).toContain('queues:admin');
});

test('emails are unique whatever their case', async () => {
  await db('users').insert({ email: 'Case@Example.com', name: 'A' });
  await expect(db('users').insert({ email: 'case@example.COM', name: 'B' })).rejects.toThrow(/users_email_unique/);
  expect(await db('users').where({ email: 'CASE@EXAMPLE.COM' }).first()).toBeDefined();
});

test('status columns accept only their known values', async () => {
  await expect(db('users').insert({ email: 's@example.com', name: 'S', status: 'banana' as never })).rejects.toThrow(/users_status_check/);
  const [{ id }] = await db('users').insert({ email: 't@example.com', name: 'T' }).returning('id');
  await expect(
    db('trading_accounts').insert({
      user_id: id,
      broker: 'kite',
      status: 'weird' as never,
      api_key_fingerprint: 'f',
      api_key_masked: 'ab***',
    }),
  ).rejects.toThrow(/trading_accounts_status_check/);
  await expect(
    db('trading_accounts').insert({ user_id: id, broker: 'other' as never, api_key_fingerprint: 'f', api_key_masked: 'ab***' }),
  ).rejects.toThrow(/trading_accounts_broker_check/);
  await expect(
    db('sessions').insert({ user_id: id, expires_at: new Date(), revoked_at: new Date(), revoked_reason: 'because' as never }),
  ).rejects.toThrow(/sessions_revoked_reason_check/);
  await expect(db('users').where({ id }).update({ mfa_enabled: true })).rejects.toThrow(/users_mfa_secret_check/);
});

test('foreign keys refuse rows that point nowhere', async () => {
  await expect(db('sessions').insert({ user_id: '00000000-0000-4000-8000-00000000dead', expires_at: new Date() })).rejects.toThrow(
    /foreign key/,
  );
  await expect(db('mfa_backup_codes').insert({ user_id: '00000000-0000-4000-8000-00000000dead', code_hash: 'x' })).rejects.toThrow(
    /foreign key/,
  );
});
