// One direct grant per (user, permission): granting again extends or changes that grant instead
// of adding a second row that would survive the revocation of the first.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Keep the latest grant where duplicates exist.
  await knex.raw(`DELETE FROM user_permissions a USING user_permissions b
    WHERE a.user_id = b.user_id AND a.permission_id = b.permission_id AND a.granted_at < b.granted_at`);
  await knex.schema.alterTable('user_permissions', (t) => {
    t.unique(['user_id', 'permission_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('user_permissions', (t) => {
    t.dropUnique(['user_id', 'permission_id']);
  });
}
