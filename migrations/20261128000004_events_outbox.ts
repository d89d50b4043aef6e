// The append-only events table: the audit trail and the transactional outbox in one. A trigger
// refuses deletes and any update other than the relay marking a row published.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('events', (t) => {
    t.uuid('id').primary();
    // Commit order is not id order; the relay picks unpublished rows, this only orders them.
    t.bigIncrements('seq', { primaryKey: false });
    t.text('type').notNullable();
    // No foreign keys: the trail outlives what it describes.
    t.uuid('user_id');
    t.uuid('actor_id');
    t.specificType('ip', 'inet');
    t.text('user_agent');
    t.jsonb('data').notNullable().defaultTo('{}');
    t.timestamp('occurred_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('published_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (type ~ '^[a-z_]+(\\.[a-z_]+)+$')`);
  await knex.raw('CREATE INDEX events_unpublished_idx ON events (seq) WHERE published_at IS NULL');
  await knex.raw('CREATE INDEX events_user_occurred_idx ON events (user_id, occurred_at DESC)');
  await knex.raw('CREATE INDEX events_user_type_occurred_idx ON events (user_id, type, occurred_at DESC)');

  await knex.raw(`
    CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'events are append-only';
      END IF;
      IF (to_jsonb(NEW) - 'published_at') IS DISTINCT FROM (to_jsonb(OLD) - 'published_at')
         OR (OLD.published_at IS NOT NULL AND NEW.published_at IS DISTINCT FROM OLD.published_at) THEN
        RAISE EXCEPTION 'events are append-only: only published_at may be set, once';
      END IF;
      RETURN NEW;
    END $$`);
  await knex.raw(`CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only()`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('events');
  await knex.raw('DROP FUNCTION IF EXISTS events_append_only()');
}
