// What the Kite flows need beyond the original table: the broker's user name, a counter of
// verification rounds (each round has its own job id, and a round finishes only if no newer one
// started), when the current request token was first sent to Kite (a retry that finds it spent
// goes to `error`, not `invalid`), and an index for the expiry job.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('trading_accounts', (t) => {
    t.text('broker_user_name');
    t.integer('verification_round').notNullable().defaultTo(0);
    t.timestamp('token_exchange_started_at', { useTz: true });
  });
  await knex.raw(`CREATE INDEX trading_accounts_expiry_idx ON trading_accounts (access_token_expires_at)
    WHERE unlinked_at IS NULL AND status = 'active'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS trading_accounts_expiry_idx');
  await knex.schema.alterTable('trading_accounts', (t) => {
    t.dropColumn('broker_user_name');
    t.dropColumn('verification_round');
    t.dropColumn('token_exchange_started_at');
  });
}
