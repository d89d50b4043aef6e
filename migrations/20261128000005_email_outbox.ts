// Emails to send, one row each, written in the transaction that causes them. The job carries only
// the row id; the parameters (which may hold a one-time token) are envelope-encrypted, so a lost
// Redis delays an email but never loses it, and no secret sits in a queue.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('email_messages', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').references('users.id').onDelete('SET NULL');
    t.text('template').notNullable();
    t.text('to_address');
    t.text('params_encrypted').notNullable();
    t.text('status').notNullable().defaultTo('pending');
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('sent_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE email_messages ADD CONSTRAINT email_messages_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'cancelled'))`);
  await knex.raw(`CREATE INDEX email_messages_pending_idx ON email_messages (created_at) WHERE status = 'pending'`);
  await knex.raw('CREATE INDEX email_messages_user_idx ON email_messages (user_id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('email_messages');
}
