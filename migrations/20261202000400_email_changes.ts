// Account lifecycle (admin API and email change): links that confirm a new email address, stored
// hashed and single-use like email verification tokens (in PostgreSQL, beside the email row that
// carries them), and a session revocation reason for the sessions an email change ends.
import type { Knex } from 'knex';

const REASONS = [
  'logout',
  'logout_all',
  'revoked_by_user',
  'refresh_token_reuse',
  'password_reset',
  'password_change',
  'account_deleted',
  'admin',
  'expired',
  'mfa_failures',
];

async function allowReasons(knex: Knex, reasons: string[]): Promise<void> {
  // DDL takes no bound parameters: the list is the constants above.
  const list = reasons.map((reason) => `'${reason}'`).join(', ');
  await knex.raw('ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_check');
  await knex.raw(`ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_check CHECK (
    (revoked_at IS NULL AND revoked_reason IS NULL) OR (revoked_at IS NOT NULL AND revoked_reason IN (${list})))`);
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('email_change_tokens', (t) => {
    t.text('token_hash').primary();
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.specificType('new_email', 'citext').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('expires_at', { useTz: true }).notNullable();
    t.timestamp('used_at', { useTz: true });
    t.index(['user_id']);
  });
  await allowReasons(knex, [...REASONS, 'email_change']);
  // The admin search pages newest first by (created_at, id).
  await knex.raw('CREATE INDEX users_created_at_id_idx ON users (created_at DESC, id DESC)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX users_created_at_id_idx');
  await knex('sessions').where({ revoked_reason: 'email_change' }).update({ revoked_reason: 'password_change' });
  await allowReasons(knex, REASONS);
  await knex.schema.dropTable('email_change_tokens');
}
