// Requests about an email address that must not tell whether it has an account (a password reset
// link, the verification email again; DESIGN.md, "Same work for every address"): the request path
// writes one of these rows and enqueues its job, whatever the address; the worker looks the
// address up. A row per request, so a Redis loss delays the email but loses none; the address is
// envelope-encrypted (bound to the row), and the row is deleted once handled (a request whose job
// used every attempt stays, failed, for inspection).
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('address_requests', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.text('kind').notNullable();
    t.text('address_encrypted').notNullable();
    t.specificType('ip', 'inet');
    t.text('user_agent');
    t.text('status').notNullable().defaultTo('pending');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE address_requests ADD CONSTRAINT address_requests_kind_check
    CHECK (kind IN ('password_reset', 'verification_resend'))`);
  await knex.raw(`ALTER TABLE address_requests ADD CONSTRAINT address_requests_status_check
    CHECK (status IN ('pending', 'failed'))`);
  await knex.raw(`CREATE INDEX address_requests_pending_idx ON address_requests (created_at) WHERE status = 'pending'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('address_requests');
}
