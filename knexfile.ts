// For the knex CLI (`npx knex --knexfile dist/knexfile.js migrate:latest`); the service itself
// migrates through `npm run cli -- migrate` and `npm start`, which read the same configuration and
// also rename migrations recorded with a file extension by older versions (the knex CLI does not).
import type { Knex } from 'knex';
import { parseConfig, readEnvironment } from './shared/config';
import { migrationSettings } from './shared/db';

const config = parseConfig(readEnvironment());

const knexConfig: Knex.Config = {
  client: 'pg',
  connection: config.database.url,
  pool: { min: 0, max: config.database.poolMax },
  migrations: migrationSettings(),
};

export default knexConfig;
