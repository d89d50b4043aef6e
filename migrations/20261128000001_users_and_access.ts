// Users, their sign-in methods, MFA backup codes and trading accounts: the guide's tables.
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('CREATE EXTENSION IF NOT EXISTS citext');

  await knex.schema.createTable('users', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    // citext: one account per address however it is capitalised (unique below).
    t.specificType('email', 'citext').notNullable().unique();
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.timestamp('email_verified_at', { useTz: true });
    // Null for users who only sign in with Google.
    t.text('password_hash');
    t.timestamp('password_changed_at', { useTz: true });
    t.text('name').notNullable();
    t.text('phone');
    t.text('timezone').notNullable().defaultTo('UTC');
    t.text('locale').notNullable().defaultTo('en');
    t.text('avatar_url');
    t.text('status').notNullable().defaultTo('pending_verification');
    t.boolean('mfa_enabled').notNullable().defaultTo(false);
    // Envelope-encrypted TOTP secret, and the last accepted time step (replay protection).
    t.text('mfa_secret_encrypted');
    t.bigInteger('mfa_last_used_step');
    t.timestamp('mfa_enabled_at', { useTz: true });
    t.timestamp('last_login_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('deleted_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE users ADD CONSTRAINT users_status_check
    CHECK (status IN ('pending_verification', 'active', 'suspended', 'deleted'))`);
  await knex.raw(`ALTER TABLE users ADD CONSTRAINT users_mfa_secret_check
    CHECK (NOT mfa_enabled OR mfa_secret_encrypted IS NOT NULL)`);
  await knex.raw(`ALTER TABLE users ADD CONSTRAINT users_name_length_check CHECK (char_length(name) BETWEEN 1 AND 100)`);
  await knex.raw('CREATE INDEX users_created_at_idx ON users (created_at DESC)');

  await knex.schema.createTable('auth_providers', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('provider').notNullable();
    t.text('provider_user_id').notNullable();
    t.specificType('email', 'citext');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used_at', { useTz: true });
    t.unique(['provider', 'provider_user_id']);
    t.unique(['user_id', 'provider']);
  });
  await knex.raw(`ALTER TABLE auth_providers ADD CONSTRAINT auth_providers_provider_check CHECK (provider IN ('google'))`);

  await knex.schema.createTable('mfa_backup_codes', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('code_hash').notNullable();
    t.timestamp('used_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['user_id']);
  });

  await knex.schema.createTable('trading_accounts', (t) => {
    t.uuid('id').primary().defaultTo(knex.raw('gen_random_uuid()'));
    t.uuid('user_id').notNullable().references('users.id').onDelete('CASCADE');
    t.text('broker').notNullable();
    t.text('nickname');
    t.text('status').notNullable().defaultTo('pending_verification');
    // A keyed hash of the api key: enforces "one link per (user, broker, api_key)" without storing it.
    t.text('api_key_fingerprint').notNullable();
    t.text('api_key_masked').notNullable();
    // Envelope-encrypted credentials in use, and the ones a rotation is verifying.
    t.text('credentials_encrypted');
    t.text('pending_credentials_encrypted');
    t.text('broker_user_id');
    t.jsonb('preferences').notNullable().defaultTo('{}');
    t.timestamp('last_verified_at', { useTz: true });
    t.text('last_error');
    t.timestamp('access_token_expires_at', { useTz: true });
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('unlinked_at', { useTz: true });
    t.index(['user_id', 'created_at']);
  });
  await knex.raw(`ALTER TABLE trading_accounts ADD CONSTRAINT trading_accounts_broker_check CHECK (broker IN ('kite'))`);
  await knex.raw(`ALTER TABLE trading_accounts ADD CONSTRAINT trading_accounts_status_check
    CHECK (status IN ('pending_verification', 'verifying', 'active', 'invalid', 'error', 'expired'))`);
  await knex.raw(`CREATE UNIQUE INDEX trading_accounts_user_api_key_idx
    ON trading_accounts (user_id, broker, api_key_fingerprint) WHERE unlinked_at IS NULL`);
  await knex.raw(`CREATE INDEX trading_accounts_status_idx ON trading_accounts (status, updated_at)
    WHERE unlinked_at IS NULL AND status IN ('pending_verification', 'verifying')`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('trading_accounts');
  await knex.schema.dropTable('mfa_backup_codes');
  await knex.schema.dropTable('auth_providers');
  await knex.schema.dropTable('users');
}
