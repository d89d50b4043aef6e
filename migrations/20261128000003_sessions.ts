// Sessions and their refresh tokens. Every token a session ever had stays (hashed) so that
// presenting a rotated one is recognised as reuse, not as an unknown token.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('sessions', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('device_fingerprint');
    t.text('user_agent');
    t.specificType('ip', 'inet');
    t.text('country');
    t.boolean('persistent').notNullable().defaultTo(false);
    // Authentication methods of the sign-in (pwd, mfa, google), carried into every access token.
    t.specificType('amr', 'text[]').notNullable().defaultTo('{}');
    t.timestamp('auth_time', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_active_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // Absolute end; the inactivity end is last_active_at + the configured idle days.
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('revoked_at', { useTz: true });
    t.text('revoked_reason');
  });
  await knex.raw(`ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_check CHECK (
    (revoked_at IS NULL AND revoked_reason IS NULL) OR (revoked_at IS NOT NULL AND revoked_reason IN
    ('logout', 'logout_all', 'revoked_by_user', 'refresh_token_reuse', 'password_reset', 'password_change',
     'account_deleted', 'admin', 'expired')))`);
  await knex.raw('CREATE INDEX sessions_user_active_idx ON sessions (user_id, created_at DESC) WHERE revoked_at IS NULL');

  await knex.schema.createTable('refresh_tokens', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('session_id').notNullable().references('sessions.id').onDelete('CASCADE');
    // SHA-256 of the 256-bit random token: a fast hash is enough for a secret of that entropy.
    t.text('token_hash').notNullable().unique();
    t.uuid('parent_id').references('refresh_tokens.id').onDelete('SET NULL');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('rotated_at', { useTz: true });
    t.index(['session_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('refresh_tokens');
  await knex.schema.dropTable('sessions');
}
