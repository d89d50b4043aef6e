// The audit trail's reads and exports. A user's page is one ordered index range scan however many
// rows the table holds: events about the user by (user_id, occurred_at, seq), and events the user
// caused about someone else by a partial index on actor_id (small: most events are the user's own),
// merged in order. seq breaks ties between events of one transaction, which share occurred_at.
// Exports are rows (owner, filters, status, counts, truncated flag, expiry); their bodies live in
// Redis for 24 hours.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX events_user_page_idx ON events (user_id, occurred_at, seq)');
  await knex.raw('CREATE INDEX events_actor_page_idx ON events (actor_id, occurred_at, seq) WHERE actor_id IS DISTINCT FROM user_id');
  // Superseded by events_user_page_idx, which has the tie-breaker keyset paging needs.
  await knex.raw('DROP INDEX IF EXISTS events_user_occurred_idx');

  await knex.schema.createTable('audit_exports', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('format').notNullable();
    t.specificType('event_types', 'text[]');
    t.timestamp('from_at', { useTz: true });
    t.timestamp('to_at', { useTz: true });
    t.text('status').notNullable().defaultTo('pending');
    t.integer('event_count');
    t.boolean('truncated').notNullable().defaultTo(false);
    t.text('last_error');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('completed_at', { useTz: true });
    t.timestamp('expires_at', { useTz: true }).notNullable();
  });
  await knex.raw(`ALTER TABLE audit_exports ADD CONSTRAINT audit_exports_format_check CHECK (format IN ('json', 'csv'))`);
  await knex.raw(`ALTER TABLE audit_exports ADD CONSTRAINT audit_exports_status_check CHECK (status IN ('pending', 'ready', 'failed'))`);
  await knex.raw(`CREATE INDEX audit_exports_pending_idx ON audit_exports (created_at) WHERE status = 'pending'`);
  await knex.raw('CREATE INDEX audit_exports_expires_idx ON audit_exports (expires_at)');
  await knex.raw('CREATE INDEX audit_exports_user_idx ON audit_exports (user_id, created_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_exports');
  await knex.raw('CREATE INDEX events_user_occurred_idx ON events (user_id, occurred_at DESC)');
  await knex.raw('DROP INDEX events_actor_page_idx');
  await knex.raw('DROP INDEX events_user_page_idx');
}
