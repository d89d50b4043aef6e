// Configuration: the guide's defaults, every bad variable named at once, exit 1 at start-up.
import { spawnSync } from 'node:child_process';
import { ConfigError, parseConfig, VARIABLES } from '../../shared/config';
import { ROOT } from '../helpers/env';

test('with nothing set, the defaults of the guide and the Foundation issue apply', () => {
  const config = parseConfig({});
  expect(config.port).toBe(8001);
  expect(config.database.url).toBe('postgresql://postgres@127.0.0.1:5432/user_service');
  expect(config.redis.url).toBe('redis://127.0.0.1:6379/0');
  expect(config.jwt).toMatchObject({
    signingKeyId: 'key-001',
    accessTtlSeconds: 900,
    issuer: 'user_service',
    audience: 'trading_platform',
  });
  expect(config.password).toMatchObject({ minLength: 12, bcryptCost: 12, requireCharacterClasses: true, resetTokenTtlSeconds: 1800 });
  expect(config.rateLimits.login).toMatchObject({ attempts: 5, windowSeconds: 900 });
  expect(config.cookie).toEqual({ name: '__Secure-refresh_token', secure: true, httpOnly: true, sameSite: 'strict' });
  expect(config.cors.allowedOrigins).toEqual(['http://localhost:3000', 'http://localhost:5173']);
  expect(config.events.streamName).toBe('user_service:events');
  expect(config.refreshReuseIntervalSeconds).toBe(10);
  expect(config.smtp.host).toBe('');
});

test('every bad variable is named, all at once', () => {
  let error: ConfigError | undefined;
  try {
    parseConfig({ PORT: 'eighty', PASSWORD_BCRYPT_COST: '40', JWT_ALGORITHM: 'HS256', SMTP_TLS: 'maybe', WORKER_QUEUES: 'email,nope' });
  } catch (err) {
    error = err as ConfigError;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const text = error!.problems.join('\n');
  for (const name of ['PORT', 'PASSWORD_BCRYPT_COST', 'JWT_ALGORITHM', 'SMTP_TLS']) expect(text).toMatch(new RegExp(`^${name}: `, 'm'));
});

test('values are parsed as documented: case-insensitive levels, lists, booleans', () => {
  const config = parseConfig({
    LOG_LEVEL: 'WARNING',
    CORS_ALLOWED_ORIGINS: ' https://a.example , https://b.example ',
    DEBUG: 'FALSE',
    WORKER_QUEUES: 'email,events',
    SESSION_COOKIE_SAMESITE: 'Lax',
  });
  expect(config.log.level).toBe('warn');
  expect(config.cors.allowedOrigins).toEqual(['https://a.example', 'https://b.example']);
  expect(config.queues.workerQueues).toEqual(['email', 'events']);
  expect(config.cookie.sameSite).toBe('lax');
  expect(parseConfig({ LOG_LEVEL: 'INFO', DEBUG: 'true' }).log.level).toBe('debug');
});

test('PUBLIC_BASE_URL follows HOST and PORT unless it is set', () => {
  const base = (env: Record<string, string>) => parseConfig(env).publicBaseUrl;
  expect(base({})).toBe('http://localhost:8001');
  expect(base({ PORT: '9100' })).toBe('http://localhost:9100');
  expect(base({ HOST: '::', PORT: '9100' })).toBe('http://localhost:9100');
  expect(base({ HOST: '127.0.0.1', PORT: '9100' })).toBe('http://127.0.0.1:9100');
  expect(base({ HOST: 'api.internal', PORT: '9100' })).toBe('http://api.internal:9100');
  expect(base({ HOST: '::1', PORT: '9100' })).toBe('http://[::1]:9100');
  expect(base({ PUBLIC_BASE_URL: '', PORT: '9100' })).toBe('http://localhost:9100');
  expect(base({ PUBLIC_BASE_URL: 'https://id.example.com/', PORT: '9100' })).toBe('https://id.example.com');
  expect(() => parseConfig({ PUBLIC_BASE_URL: 'id.example.com' })).toThrow(/PUBLIC_BASE_URL: must match/);
});

test('the read replica is off unless DATABASE_REPLICA_URL is set, and then has its own pool size', () => {
  expect(parseConfig({}).database.replica).toBeNull();
  const url = 'postgresql://postgres@replica.internal:5432/user_service';
  expect(parseConfig({ DATABASE_REPLICA_URL: url }).database.replica).toEqual({ url, poolMax: 10 });
  expect(parseConfig({ DATABASE_REPLICA_URL: url, DATABASE_REPLICA_POOL_SIZE: '4' }).database.replica).toEqual({ url, poolMax: 4 });
  expect(() => parseConfig({ DATABASE_REPLICA_URL: 'replica.internal' })).toThrow(/DATABASE_REPLICA_URL/);
  expect(() => parseConfig({ DATABASE_REPLICA_POOL_SIZE: '0' })).toThrow(/DATABASE_REPLICA_POOL_SIZE/);
});

test('production refuses unsafe settings', () => {
  expect(() => parseConfig({ ENVIRONMENT: 'production', PASSWORD_BCRYPT_COST: '4' })).toThrow(
    /PASSWORD_BCRYPT_COST: must be at least 10[\s\S]*SMTP_HOST: is required/,
  );
  expect(() => parseConfig({ KMS_PROVIDER: 'aws' })).toThrow(/KMS_PROVIDER: "aws" is not built/);
  expect(() => parseConfig({ ENVIRONMENT: 'production', SMTP_HOST: 'smtp.example.com' })).not.toThrow();
});

test('settings of the guide that have no effect here are reported, not silently ignored', () => {
  expect(parseConfig({ SENTRY_DSN: 'https://key@sentry.example/1', REDIS_POOL_SIZE: '10' }).ignoredSettings.sort()).toEqual([
    'REDIS_POOL_SIZE',
    'SENTRY_DSN',
  ]);
  expect(Object.values(VARIABLES).filter((v) => 'unused' in v && v.unused).length).toBeGreaterThan(0);
});

test.each([
  ['api', 'api/server.ts'],
  ['worker', 'workers/worker.ts'],
])('the %s process exits 1 naming a bad variable', (_name, entry) => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH, PORT: 'not-a-port', RATELIMIT_LOGIN_ATTEMPTS: '0' },
  });
  expect(result.status).toBe(1);
  expect(result.stderr).toMatch(/^ {2}- PORT: must be integer$/m);
  expect(result.stderr).toMatch(/^ {2}- RATELIMIT_LOGIN_ATTEMPTS: must be >= 1$/m);
});
