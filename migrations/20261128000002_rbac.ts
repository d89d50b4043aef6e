// Roles, permissions and grants, seeded with the hierarchy admin ⊃ trader ⊃ viewer and the
// permission catalogue of DESIGN.md (the README lists it).
import type { Knex } from 'knex';

export const PERMISSIONS: Record<string, string> = {
  'profile:read': 'Read your own profile',
  'profile:write': 'Change your own profile',
  'market_data:read': 'Read market data',
  'orders:read': 'Read your orders',
  'portfolio:read': 'Read your portfolio',
  'alerts:read': 'Read your alerts',
  'orders:write': 'Place, change and cancel orders',
  'alerts:write': 'Create and change alerts',
  'trading_accounts:read': 'Read your linked trading accounts',
  'trading_accounts:write': 'Link, change and unlink trading accounts',
  'users:read': 'Read any user',
  'users:admin': 'Manage any user (roles, status)',
  'permissions:admin': 'Grant and revoke permissions',
  'audit:read_any': "Read any user's audit trail",
  'queues:admin': 'Operate the job queues (Bull Board)',
};

// Each role lists only what it adds to the role it inherits from.
export const ROLES = [
  {
    name: 'viewer',
    inherits: null,
    description: 'Reads market data and their own account',
    adds: ['profile:read', 'profile:write', 'market_data:read', 'orders:read', 'portfolio:read', 'alerts:read'],
  },
  {
    name: 'trader',
    inherits: 'viewer',
    description: 'Trades through linked broker accounts',
    adds: ['orders:write', 'alerts:write', 'trading_accounts:read', 'trading_accounts:write'],
  },
  {
    name: 'admin',
    inherits: 'trader',
    description: 'Operates the service',
    adds: ['users:read', 'users:admin', 'permissions:admin', 'audit:read_any', 'queues:admin'],
  },
];

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('roles', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('name').notNullable().unique();
    t.text('description').notNullable().defaultTo('');
    t.uuid('inherits_role_id').references('roles.id').onDelete('RESTRICT');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE roles ADD CONSTRAINT roles_name_check CHECK (name ~ '^[a-z][a-z0-9_]*$')`);

  await knex.schema.createTable('permissions', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('name').notNullable().unique();
    t.text('description').notNullable().defaultTo('');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE permissions ADD CONSTRAINT permissions_name_check CHECK (name ~ '^[a-z_]+(:[a-z_]+)+$')`);

  await knex.schema.createTable('role_permissions', (t) => {
    t.uuid('role_id').notNullable().references('roles.id').onDelete('CASCADE');
    t.uuid('permission_id').notNullable().references('permissions.id').onDelete('CASCADE');
    t.primary(['role_id', 'permission_id']);
  });

  await knex.schema.createTable('user_roles', (t) => {
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.uuid('role_id').notNullable().references('roles.id').onDelete('RESTRICT');
    t.uuid('granted_by').references('users.id').onDelete('SET NULL');
    t.timestamp('granted_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['user_id', 'role_id']);
  });

  await knex.schema.createTable('user_permissions', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.uuid('permission_id').notNullable().references('permissions.id').onDelete('RESTRICT');
    t.uuid('granted_by').references('users.id').onDelete('SET NULL');
    t.timestamp('granted_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true });
    t.index(['user_id']);
  });
  await knex.raw(`ALTER TABLE user_permissions ADD CONSTRAINT user_permissions_expiry_check
    CHECK (expires_at IS NULL OR expires_at > granted_at)`);

  const permissionRows = await knex('permissions')
    .insert(Object.entries(PERMISSIONS).map(([name, description]) => ({ name, description })))
    .returning(['id', 'name']);
  const permissionId = new Map(permissionRows.map((p: { id: string; name: string }) => [p.name, p.id]));
  const roleId = new Map<string, string>();
  for (const role of ROLES) {
    const [row] = await knex('roles')
      .insert({ name: role.name, description: role.description, inherits_role_id: role.inherits ? roleId.get(role.inherits) : null })
      .returning(['id']);
    roleId.set(role.name, row.id);
    await knex('role_permissions').insert(role.adds.map((p) => ({ role_id: row.id, permission_id: permissionId.get(p) })));
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('user_permissions');
  await knex.schema.dropTable('user_roles');
  await knex.schema.dropTable('role_permissions');
  await knex.schema.dropTable('permissions');
  await knex.schema.dropTable('roles');
}
