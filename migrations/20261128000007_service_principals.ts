// Other platform services as principals: users of kind `service` holding role `service`, whose
// permissions let them check any user's permissions and read trading credentials. Admins may
// check any user's permissions too.
import type { Knex } from 'knex';

const NEW_PERMISSIONS = {
  'authz:check_any': "Check any user's permissions",
  'trading_accounts:credentials:read': "Read any user's trading account credentials (trading services)",
};

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.text('kind').notNullable().defaultTo('person');
  });
  await knex.raw(`ALTER TABLE users ADD CONSTRAINT users_kind_check CHECK (kind IN ('person', 'service'))`);
  const rows = await knex('permissions')
    .insert(Object.entries(NEW_PERMISSIONS).map(([name, description]) => ({ name, description })))
    .returning(['id', 'name']);
  const id = (name: string) => rows.find((r) => r.name === name)!.id;
  const [service] = (await knex('roles').insert({ name: 'service', description: 'Another platform service' }).returning('id')) as [
    { id: string },
  ];
  await knex('role_permissions').insert([
    { role_id: service.id, permission_id: id('authz:check_any') },
    { role_id: service.id, permission_id: id('trading_accounts:credentials:read') },
  ]);
  const admin = (await knex('roles').where({ name: 'admin' }).first('id'))!;
  await knex('role_permissions').insert({ role_id: admin.id, permission_id: id('authz:check_any') });
}

export async function down(knex: Knex): Promise<void> {
  const service = await knex('roles').where({ name: 'service' }).first('id');
  if (service) {
    await knex('user_roles').where({ role_id: service.id }).del();
    await knex('roles').where({ id: service.id }).del();
  }
  await knex('permissions').whereIn('name', Object.keys(NEW_PERMISSIONS)).del();
  await knex.raw('ALTER TABLE users DROP CONSTRAINT users_kind_check');
  await knex.schema.alterTable('users', (t) => {
    t.dropColumn('kind');
  });
}
