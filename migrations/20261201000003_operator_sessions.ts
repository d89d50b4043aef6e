// Operators' sessions (the Bull Board sign-in; DESIGN.md, "Operators' access to Bull Board") are
// sessions like any other, held by a cookie instead of refresh tokens and ending sooner when idle:
// the cookie's token is stored hashed on the session, and a session may carry its own idle limit.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('sessions', (t) => {
    t.text('cookie_token_hash').unique();
    t.integer('idle_timeout_seconds');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('sessions', (t) => {
    t.dropColumn('cookie_token_hash');
    t.dropColumn('idle_timeout_seconds');
  });
}
