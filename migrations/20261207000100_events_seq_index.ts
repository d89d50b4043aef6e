// The relay puts the newest published events back on the stream after Redis lost its data
// (shared/events/relay.ts): it walks them in seq order, a batch at a time, which without this index
// is a scan of the whole table per batch. seq only grows, so each insert adds at the index's right
// edge. Built CONCURRENTLY, outside a transaction, so a large table keeps taking events meanwhile.
import type { Knex } from 'knex';

export const config = { transaction: false };

export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE INDEX CONCURRENTLY IF NOT EXISTS events_seq_idx ON events (seq)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX CONCURRENTLY IF EXISTS events_seq_idx');
}
