// Sessions may end because of wrong step-up codes (DESIGN.md, "Step-up lockout"): the fifth wrong
// code at a step-up endpoint revokes that session, with its own reason.
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
];

async function allowReasons(knex: Knex, reasons: string[]): Promise<void> {
  // DDL takes no bound parameters: the list is the constants above.
  const list = reasons.map((reason) => `'${reason}'`).join(', ');
  await knex.raw('ALTER TABLE sessions DROP CONSTRAINT sessions_revoked_reason_check');
  await knex.raw(`ALTER TABLE sessions ADD CONSTRAINT sessions_revoked_reason_check CHECK (
    (revoked_at IS NULL AND revoked_reason IS NULL) OR (revoked_at IS NOT NULL AND revoked_reason IN (${list})))`);
}

export async function up(knex: Knex): Promise<void> {
  await allowReasons(knex, [...REASONS, 'mfa_failures']);
}

export async function down(knex: Knex): Promise<void> {
  // The old list has no name for it; an administrative end is the closest.
  await knex('sessions').where({ revoked_reason: 'mfa_failures' }).update({ revoked_reason: 'admin' });
  await allowReasons(knex, REASONS);
}
