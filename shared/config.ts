// The one place that reads the environment. Every variable is declared once below, with its type,
// default and meaning; the same table validates the environment at start-up (every problem listed
// at once), and documents itself in .env.example and the README (a test keeps them in step).
import Ajv from 'ajv';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import dotenv from 'dotenv';
import { QUEUE_NAMES, type QueueName } from './queues/names';

type Kind = 'string' | 'integer' | 'number' | 'boolean' | 'url' | 'list';

interface VariableSpec {
  kind: Kind;
  default?: string;
  doc: string;
  group: string;
  enum?: readonly string[];
  minimum?: number;
  maximum?: number;
  /** Declared by the product guide but without effect in this service; documented as such. */
  unused?: boolean;
}

const v = (group: string, kind: Kind, def: string | undefined, doc: string, extra: Partial<VariableSpec> = {}): VariableSpec => ({
  group,
  kind,
  default: def,
  doc,
  ...extra,
});

export const VARIABLES = {
  // Application
  APP_NAME: v('Application', 'string', 'user_service', 'Service name, used in logs, emails and the TOTP issuer.'),
  VERSION: v('Application', 'string', '1.0.0', 'Version reported by /health and the OpenAPI document.'),
  ENVIRONMENT: v(
    'Application',
    'string',
    'development',
    '`development` creates missing keys at start; `staging` and `production` refuse to start without them.',
    { enum: ['development', 'staging', 'production'] },
  ),
  DEBUG: v('Application', 'boolean', 'false', 'Forces the log level to `debug`. Never exposes internals in responses.'),
  HOST: v('Application', 'string', '0.0.0.0', 'Interface the api listens on.'),
  PORT: v('Application', 'integer', '8001', 'Port the api listens on.', { minimum: 0, maximum: 65535 }),
  PUBLIC_BASE_URL: v(
    'Application',
    'url',
    '',
    'Public URL of this api, used in the OpenAPI document (where Swagger UI\'s "Try it out" sends requests). Empty: `http://localhost:<PORT>`, or `http://<HOST>:<PORT>` when HOST is a specific address rather than a wildcard (`0.0.0.0`, `::`). Set it when clients reach the api through a proxy or another name.',
  ),
  EMAIL_LINK_BASE_URL: v(
    'Application',
    'url',
    'http://localhost:3000',
    'Base URL of the web app that emailed links (verify email, reset password) point to. Never taken from the Host header.',
  ),
  TRUST_PROXY: v('Application', 'boolean', 'false', 'Take the client IP from `X-Forwarded-For` (set only behind a proxy you control).'),
  TRUST_PROXY_HOPS: v(
    'Application',
    'integer',
    '1',
    'How many proxies of yours append to `X-Forwarded-For`; the client IP is the entry they saw, never one the client wrote itself.',
    { minimum: 1, maximum: 10 },
  ),
  CLIENT_COUNTRY_HEADER: v(
    'Application',
    'string',
    '',
    'Trusted header carrying the client country set by your edge (for example `CF-IPCountry`); empty: none.',
  ),
  VALIDATE_RESPONSES: v(
    'Application',
    'string',
    'auto',
    'Check every answer against the schema its route declares and log an error on a mismatch: `on`, `off`, or `auto` (on in development).',
    { enum: ['auto', 'on', 'off'] },
  ),
  METRICS_PORT: v(
    'Application',
    'string',
    '',
    'Port of a second listener that serves only `/metrics` (on `HOST`), kept off the public network like a management port. Empty: `/metrics` is on the api in development and not served at all elsewhere.',
  ),
  BODY_LIMIT_KB: v('Application', 'integer', '64', 'Largest accepted JSON body, in KiB (413 beyond).', { minimum: 1 }),
  SHUTDOWN_TIMEOUT_SECONDS: v(
    'Application',
    'integer',
    '25',
    'Time given to in-flight requests and jobs at shutdown before the process is forced to exit.',
    { minimum: 1 },
  ),

  // Database
  DATABASE_URL: v(
    'Database',
    'url',
    'postgresql://postgres@127.0.0.1:5432/user_service',
    'PostgreSQL connection URL. `npm start` creates the database when it does not exist.',
  ),
  DATABASE_POOL_SIZE: v(
    'Database',
    'integer',
    '20',
    'Connections each process may open (opened on demand, none kept while idle); see DATABASE_MAX_OVERFLOW.',
    { minimum: 1 },
  ),
  DATABASE_MAX_OVERFLOW: v(
    'Database',
    'integer',
    '10',
    "Extra connections a process may open under load: a process's pool maximum is size + overflow.",
    { minimum: 0 },
  ),
  DATABASE_POOL_TIMEOUT: v('Database', 'integer', '30', 'Seconds to wait for a free connection before answering 503.', { minimum: 1 }),
  DATABASE_PROCESSES: v(
    'Database',
    'integer',
    '2',
    'How many api and worker processes share the database (2: what `npm start` runs). Only for the start-up check of the connection budget: processes × pool maximum ≤ max_connections − reserved (docs/scaling.md).',
    { minimum: 1 },
  ),
  DATABASE_RESERVED_CONNECTIONS: v(
    'Database',
    'integer',
    '5',
    "Connections the budget leaves to others (psql, migrations, monitoring), beyond PostgreSQL's superuser_reserved_connections.",
    { minimum: 0 },
  ),
  DATABASE_STATEMENT_TIMEOUT_SECONDS: v(
    'Database',
    'integer',
    '15',
    "A statement running longer is cancelled (503). Set by `migrate` as the role's default in the database (ALTER ROLE … IN DATABASE), so it holds through PgBouncer too; 0: no limit.",
    { minimum: 0 },
  ),

  DATABASE_REPLICA_URL: v(
    'Database',
    'url',
    '',
    "A streaming replica (hot standby) for the reads that tolerate lag: public profiles, the session list, the reconcilers' scans of pending rows; never a write or a read-then-write. Empty: every read goes to DATABASE_URL. When the replica cannot be reached, those reads go to the primary (docs/scaling.md).",
  ),
  DATABASE_REPLICA_POOL_SIZE: v(
    'Database',
    'integer',
    '10',
    "Connections each process may open to DATABASE_REPLICA_URL (on demand, none kept while idle); they count in the replica's budget: processes × this ≤ its max_connections − reserved.",
    { minimum: 1 },
  ),

  // Redis
  REDIS_URL: v(
    'Redis',
    'url',
    'redis://127.0.0.1:6379/0',
    'Redis connection URL (queues, rate limits, caches, short-lived tokens, the event stream).',
  ),
  REDIS_POOL_SIZE: v('Redis', 'integer', '50', 'No effect: ioredis multiplexes commands over one connection per role.', {
    unused: true,
    minimum: 1,
  }),
  REDIS_SENTINELS: v(
    'Redis',
    'list',
    '',
    'Sentinels as host:port, comma-separated: Redis is then the primary they name (REDIS_SENTINEL_MASTER), followed across failovers. REDIS_URL still gives the password and database index.',
  ),
  REDIS_SENTINEL_MASTER: v('Redis', 'string', 'mymaster', 'Name of the primary that REDIS_SENTINELS monitor.'),
  REDIS_CLUSTER_NODES: v(
    'Redis',
    'list',
    '',
    'Redis Cluster nodes as host:port, comma-separated (some of them suffice). REDIS_URL still gives the password; a cluster has database 0 only. See docs/scaling.md.',
  ),
  REDIS_WAIT_REPLICAS: v(
    'Redis',
    'integer',
    '0',
    "Replicas that must hold a revocation tombstone or an event's publication before it counts as done (Redis WAIT), so a failover cannot lose them; 0 waits for none. Set 1 with replicas (Sentinel, Cluster).",
    { minimum: 0 },
  ),
  REDIS_WAIT_TIMEOUT_MS: v(
    'Redis',
    'integer',
    '500',
    'How long to wait for those replicas; fewer in time fails the change (503, or the relay retries).',
    { minimum: 1 },
  ),
  REDIS_KEY_PREFIX: v('Redis', 'string', 'user_service:', 'Prefix of every Redis key this service writes (not the stream or BullMQ).'),
  REDIS_COMMAND_TIMEOUT_MS: v('Redis', 'integer', '2000', 'A Redis command that takes longer fails (the api answers 503).', { minimum: 1 }),
  REDIS_SESSION_TTL_DAYS: v(
    'Sessions',
    'number',
    '90',
    "Absolute lifetime of a persistent (`remember_me`) session, in days (fractions allowed). Sessions live in PostgreSQL; the name is the guide's.",
  ),
  REDIS_SESSION_INACTIVITY_DAYS: v('Sessions', 'number', '14', 'A session unused for this many days ends (fractions allowed).'),
  SESSION_LIVENESS_CACHE_SECONDS: v(
    'Sessions',
    'integer',
    '60',
    'How long a session seen live in PostgreSQL is trusted from Redis by bearer authentication; revocations through the service are refused at once regardless; 0 asks PostgreSQL on every request.',
    { minimum: 0, maximum: 600 },
  ),
  SESSION_TTL_HOURS: v(
    'Sessions',
    'number',
    '24',
    'Absolute lifetime of a session without `remember_me`, in hours; its cookie has no Max-Age.',
  ),

  // JWT
  JWT_SIGNING_KEY_ID: v(
    'JWT',
    'string',
    'key-001',
    '`kid` of the key that signs new tokens: `<JWT_KEYS_DIR>/<kid>.pem` (private) and `<kid>.pub.pem` (public).',
  ),
  JWT_KEYS_DIR: v(
    'JWT',
    'string',
    'keys/jwt',
    'Directory of signing keys. Every `*.pub.pem` in it is published in the JWKS, so keys can rotate.',
  ),
  JWT_KEYS_RELOAD_SECONDS: v(
    'JWT',
    'integer',
    '30',
    'How often each process (api and worker) re-reads JWT_KEYS_DIR and the KMS master keys (also on SIGHUP), so a key added on every machine is accepted everywhere before any copy signs or seals with it; 0 reads them at start only.',
    { minimum: 0 },
  ),
  JWT_ACCESS_TOKEN_TTL_MINUTES: v('JWT', 'integer', '15', 'Lifetime of access tokens.', { minimum: 1, maximum: 60 }),
  JWT_REFRESH_TOKEN_TTL_DAYS: v(
    'JWT',
    'integer',
    '90',
    'Absolute lifetime of refresh tokens of persistent sessions; with REDIS_SESSION_TTL_DAYS, the shorter wins.',
    { minimum: 1 },
  ),
  JWT_ALGORITHM: v('JWT', 'string', 'RS256', 'Signing algorithm; only RS256 is accepted.', { enum: ['RS256'] }),
  JWT_ISSUER: v('JWT', 'string', 'user_service', '`iss` of issued tokens.'),
  JWT_AUDIENCE: v('JWT', 'string', 'trading_platform', '`aud` of issued tokens.'),

  // KMS
  KMS_PROVIDER: v(
    'KMS',
    'string',
    'local',
    'Key management provider. Only `local` (a master key file) is built; `aws` and `vault` are refused at start-up.',
    { enum: ['local'] },
  ),
  KMS_MASTER_KEY_ID: v(
    'KMS',
    'string',
    '',
    "No effect with the local provider: each envelope records its master key's SHA-256 fingerprint, so old keys are found by their content after a rotation.",
    { unused: true },
  ),
  LOCAL_KMS_KEY_PATH: v(
    'KMS',
    'string',
    'keys/master.key',
    'Current master key: 32 bytes as 64 hex characters. Re-read like the keys folder, so replacing the file (atomically: write another, then rename) switches sealing without a restart.',
  ),
  LOCAL_KMS_PREVIOUS_KEY_PATHS: v(
    'KMS',
    'list',
    '',
    'Comma-separated older master keys, kept to decrypt envelopes written before a rotation.',
  ),
  LOCAL_KMS_KEYS_DIR: v(
    'KMS',
    'string',
    'keys/kms',
    'Folder of master keys that decrypt but never seal: every `*.key` in it, re-read like JWT_KEYS_DIR, so a rotation publishes a key by copying a file (a missing folder holds none; empty: no folder).',
  ),

  // OAuth
  GOOGLE_OAUTH_CLIENT_ID: v('OAuth', 'string', '', 'Google OAuth client id.'),
  GOOGLE_OAUTH_CLIENT_SECRET: v('OAuth', 'string', '', 'Google OAuth client secret.'),
  GOOGLE_OAUTH_REDIRECT_URI: v(
    'OAuth',
    'list',
    'http://localhost:8001/v1/auth/oauth/google/callback',
    'Redirect URIs registered with Google, comma-separated; the first is used when a client names none, and a client may name only these.',
  ),
  GOOGLE_OAUTH_ISSUER: v(
    'OAuth',
    'url',
    'https://accounts.google.com',
    'OpenID Connect issuer whose discovery document gives the endpoints (a local provider in tests).',
  ),
  OAUTH_SUCCESS_REDIRECT_URL: v(
    'OAuth',
    'url',
    '',
    'Where the browser callback (GET) redirects after sign-in, with the refresh cookie set (or `#mfa_token=…` when MFA is next); empty: it answers JSON.',
  ),
  OAUTH_FAILURE_REDIRECT_URL: v(
    'OAuth',
    'url',
    '',
    'Where the browser callback redirects on failure, with `?error=<code>`; empty: it answers problem+json.',
  ),
  GOOGLE_OAUTH_TIMEOUT_SECONDS: v(
    'OAuth',
    'integer',
    '10',
    'Timeout of one call to the provider (discovery, keys, code exchange); beyond it: 503.',
    { minimum: 1 },
  ),

  // Email
  SMTP_HOST: v(
    'Email',
    'string',
    '',
    'SMTP server. Empty (development only; refused in staging and production): each email is written as an `.eml` file under EMAIL_DEV_DIR instead of being sent.',
  ),
  SMTP_PORT: v('Email', 'integer', '587', 'SMTP port (465 means implicit TLS).', { minimum: 1, maximum: 65535 }),
  SMTP_USERNAME: v('Email', 'string', '', 'SMTP user; empty: no authentication.'),
  SMTP_PASSWORD: v('Email', 'string', '', 'SMTP password.'),
  SMTP_FROM: v('Email', 'string', 'noreply@example.com', 'Sender address of every email.'),
  SMTP_TLS: v('Email', 'boolean', 'true', 'Require TLS (STARTTLS, or implicit TLS on port 465).'),
  EMAIL_DEV_DIR: v(
    'Email',
    'string',
    'tmp/mail',
    'Development without SMTP_HOST: folder (created when missing, git-ignored by default) where each email is written as `<time>-<email id>.eml`, to open in any mail client. The log names the file, never its content.',
  ),

  // Rate limiting
  RATELIMIT_LOGIN_ATTEMPTS: v(
    'Rate limiting',
    'integer',
    '5',
    'Failed logins allowed per (email, IP) in the window; a success clears the pair.',
    { minimum: 1 },
  ),
  RATELIMIT_LOGIN_WINDOW_MINUTES: v('Rate limiting', 'number', '15', 'Window of the login limits (fractions allowed).'),
  RATELIMIT_LOGIN_IP_ATTEMPTS: v(
    'Rate limiting',
    'integer',
    '100',
    'Failed logins allowed per IP across all emails in the window (stops password spraying).',
    { minimum: 1 },
  ),
  RATELIMIT_LOGIN_EMAIL_ATTEMPTS: v(
    'Rate limiting',
    'integer',
    '25',
    'Failed logins allowed per email across all IPs in the window (stops distributed guessing).',
    { minimum: 1 },
  ),
  RATELIMIT_REGISTER_ATTEMPTS: v('Rate limiting', 'integer', '5', 'Registrations allowed per IP in the window.', { minimum: 1 }),
  RATELIMIT_REGISTER_WINDOW_HOURS: v('Rate limiting', 'number', '1', 'Window of the registration limit (fractions allowed).'),
  RATELIMIT_REFRESH_ATTEMPTS: v('Rate limiting', 'integer', '10', 'Refreshes allowed per session in the window.', { minimum: 1 }),
  RATELIMIT_REFRESH_WINDOW_MINUTES: v('Rate limiting', 'number', '1', 'Window of the refresh limit (fractions allowed).'),
  RATELIMIT_PASSWORD_RESET_ATTEMPTS: v('Rate limiting', 'integer', '5', 'Reset requests allowed per IP and per account in the window.', {
    minimum: 1,
  }),
  RATELIMIT_PASSWORD_RESET_WINDOW_HOURS: v('Rate limiting', 'number', '1', 'Window of the password-reset limit (fractions allowed).'),
  RATELIMIT_EMAIL_ATTEMPTS: v(
    'Rate limiting',
    'integer',
    '3',
    'Emails the email-sending endpoints (verification resend) send to one address in the window.',
    { minimum: 1 },
  ),
  RATELIMIT_EMAIL_IP_ATTEMPTS: v(
    'Rate limiting',
    'integer',
    '20',
    'Requests to the email-sending endpoints allowed per IP in the window.',
    { minimum: 1 },
  ),
  RATELIMIT_EMAIL_WINDOW_MINUTES: v('Rate limiting', 'number', '60', 'Window of the email-sending limits (fractions allowed).'),
  // Google sign-in (issue 13)
  RATELIMIT_OAUTH_ATTEMPTS: v(
    'Rate limiting',
    'integer',
    '30',
    'Google sign-in starts, and callbacks, per IP per window (each counted apart).',
    { minimum: 1 },
  ),
  RATELIMIT_OAUTH_WINDOW_MINUTES: v('Rate limiting', 'number', '10', 'Window of the Google sign-in limits (fractions allowed).'),

  // Security
  PASSWORD_MIN_LENGTH: v('Security', 'integer', '12', 'Shortest password, in Unicode code points.', { minimum: 8, maximum: 64 }),
  PASSWORD_REQUIRE_CHARACTER_CLASSES: v(
    'Security',
    'boolean',
    'true',
    'Require upper, lower, digit and special characters; `false` follows NIST SP 800-63B (length and breached-list checks only).',
  ),
  PASSWORD_BCRYPT_COST: v(
    'Security',
    'integer',
    '12',
    'bcrypt cost; hashes below it are upgraded at the next login. At least 10 outside development.',
    { minimum: 4, maximum: 15 },
  ),
  BCRYPT_MAX_CONCURRENCY: v(
    'Security',
    'integer',
    '2',
    'bcrypt hashes run at once per process; keep it below UV_THREADPOOL_SIZE so token checks never wait behind hashes (about one per core).',
    { minimum: 1, maximum: 64 },
  ),
  BCRYPT_MAX_QUEUE: v('Security', 'integer', '64', 'Sign-ins waiting for a bcrypt slot per process before the api answers 503.', {
    minimum: 0,
  }),
  PASSWORD_RESET_TOKEN_TTL_MINUTES: v('Security', 'number', '30', 'Lifetime of a password-reset token (fractions allowed).'),
  MFA_TOTP_WINDOW_SECONDS: v('Security', 'integer', '30', 'TOTP time step.', { minimum: 15, maximum: 120 }),
  REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: v(
    'Security',
    'integer',
    '10',
    'Grace window in which presenting a just-rotated refresh token returns the same successor pair; 0 turns it off.',
    { minimum: 0, maximum: 60 },
  ),
  SESSION_COOKIE_NAME: v('Security', 'string', '__Secure-refresh_token', 'Name of the refresh-token cookie.'),
  SESSION_COOKIE_SECURE: v('Security', 'boolean', 'true', 'Mark the cookie Secure.'),
  SESSION_COOKIE_HTTPONLY: v('Security', 'boolean', 'true', 'Mark the cookie HttpOnly.'),
  SESSION_COOKIE_SAMESITE: v('Security', 'string', 'strict', 'SameSite attribute of the cookie.', { enum: ['strict', 'lax', 'none'] }),

  // CORS
  CORS_ALLOWED_ORIGINS: v(
    'CORS',
    'list',
    'http://localhost:3000,http://localhost:5173',
    'Comma-separated origins allowed to call the api from a browser.',
  ),
  CORS_ALLOW_CREDENTIALS: v('CORS', 'boolean', 'true', 'Allow cookies on cross-origin requests from those origins.'),

  // Logging
  LOG_LEVEL: v('Logging', 'string', 'info', 'trace, debug, info, warn (or warning), error, fatal or silent; case-insensitive.', {
    enum: ['trace', 'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'critical', 'silent'],
  }),
  LOG_FORMAT: v('Logging', 'string', 'json', '`json` (one object a line) or `text` (pretty, for a terminal).', { enum: ['json', 'text'] }),
  SENTRY_DSN: v(
    'Logging',
    'string',
    '',
    'No effect: error reporting to Sentry is not built; a non-empty value is logged as ignored at start-up.',
    { unused: true },
  ),

  // Feature flags
  FEATURE_GOOGLE_OAUTH: v('Features', 'boolean', 'true', 'Offer Google sign-in.'),
  FEATURE_MFA_TOTP: v('Features', 'boolean', 'true', 'Offer TOTP set-up (users who have MFA can always sign in and turn it off).'),
  FEATURE_SHARED_ACCOUNTS: v('Features', 'boolean', 'true', 'No effect yet: reserved for trading accounts shared between users.', {
    unused: true,
  }),

  // External APIs
  KITE_API_BASE_URL: v('Kite', 'url', 'https://api.kite.trade', 'Kite Connect API base URL (a local fake in tests).'),
  KITE_API_TIMEOUT_SECONDS: v('Kite', 'integer', '10', 'Timeout of one Kite call.', { minimum: 1 }),
  KITE_API_MAX_RETRIES: v('Kite', 'integer', '3', 'Attempts of a Kite job before the account goes to `error`.', { minimum: 1 }),

  // Service discovery
  TICKER_SERVICE_URL: v(
    'Service discovery',
    'string',
    'http://ticker_service:8002',
    'No effect: this service calls no other platform service; they learn from its events.',
    { unused: true },
  ),
  ALERT_SERVICE_URL: v('Service discovery', 'string', 'http://alert_service:8003', 'No effect (see TICKER_SERVICE_URL).', { unused: true }),
  BACKEND_SERVICE_URL: v('Service discovery', 'string', 'http://backend:8000', 'No effect (see TICKER_SERVICE_URL).', { unused: true }),

  // Queues and workers
  BULLMQ_PREFIX: v('Queues', 'string', 'bull', 'Redis prefix of BullMQ keys.'),
  WORKER_QUEUES: v('Queues', 'list', '', 'Queues a worker process runs (email, kite, audit-export, events); empty: all.'),
  WORKER_CONCURRENCY_EMAIL: v('Queues', 'integer', '5', 'Email jobs run at once by one worker process.', { minimum: 1 }),
  WORKER_CONCURRENCY_KITE: v('Queues', 'integer', '5', 'Kite jobs run at once by one worker process.', { minimum: 1 }),
  WORKER_CONCURRENCY_AUDIT_EXPORT: v('Queues', 'integer', '2', 'Audit export jobs run at once by one worker process.', { minimum: 1 }),
  WORKER_CONCURRENCY_EVENTS: v('Queues', 'integer', '1', 'Event relay jobs run at once by one worker process.', { minimum: 1 }),
  JOB_ATTEMPTS: v('Queues', 'integer', '8', 'Attempts of a job before it stays in the failed set.', { minimum: 1 }),
  JOB_BACKOFF_MS: v('Queues', 'integer', '2000', 'First retry delay; doubles each attempt, with jitter.', { minimum: 1 }),
  RECONCILE_INTERVAL_SECONDS: v(
    'Queues',
    'integer',
    '60',
    'How often workers re-enqueue work that PostgreSQL says is pending but has no job (after a Redis loss).',
    { minimum: 1 },
  ),
  RECONCILE_AFTER_SECONDS: v(
    'Queues',
    'integer',
    '60',
    'Age after which a pending row (email, address request, Kite round, export) with no job counts as having lost it; younger rows are probably still being enqueued. Longer than the slowest enqueue after a commit.',
    { minimum: 1 },
  ),
  // Audit trail (issue 15): how soon the job of a killed worker (an export, say) runs elsewhere.
  JOB_LOCK_MS: v(
    'Queues',
    'integer',
    '30000',
    "How long a worker's claim on a running job lasts unless renewed; a job whose worker died (SIGKILL, a lost machine) runs again elsewhere within about twice this.",
    { minimum: 1000 },
  ),

  // Events
  EVENTS_STREAM_NAME: v('Events', 'string', 'user_service:events', 'Redis Stream that domain events are published to.'),
  EVENTS_STREAM_MAXLEN: v('Events', 'integer', '1000000', 'Approximate cap of the stream (XADD MAXLEN ~).', { minimum: 1000 }),
  EVENTS_RELAY_INTERVAL_MS: v('Events', 'integer', '1000', 'How often the relay publishes new events from the outbox.', { minimum: 50 }),
  EVENTS_RELAY_BATCH_SIZE: v('Events', 'integer', '500', 'Events published per relay transaction.', { minimum: 1 }),

  // Operations
  BULL_BOARD_ENABLED: v('Operations', 'boolean', 'true', 'Serve Bull Board at /admin/queues (admins only).'),

  // Trading accounts on Kite Connect (issue 14)
  KITE_LOGIN_URL: v(
    'Trading accounts',
    'url',
    'https://kite.zerodha.com/connect/login',
    "Kite's login page, where a trader gets a request token.",
  ),
  KITE_API_REQUESTS_PER_SECOND: v(
    'Trading accounts',
    'integer',
    '10',
    "Kite calls per second per API key (Kite counts per key); a job over its key's budget waits, other keys go on.",
    { minimum: 1 },
  ),
  KITE_API_RETRY_BACKOFF_MS: v(
    'Trading accounts',
    'integer',
    '500',
    'First delay between attempts of one Kite call; doubles each attempt.',
    {
      minimum: 1,
    },
  ),
  KITE_EXPIRY_SCHEDULE: v(
    'Trading accounts',
    'string',
    '1 6 * * *',
    'Cron pattern, in Asia/Kolkata time, of the job that marks accounts whose access token ended (06:00 IST) as expired.',
  ),
  KITE_JOB_LOCK_SECONDS: v(
    'Trading accounts',
    'integer',
    '30',
    "How long a Kite job stays locked to its worker without a heartbeat: a killed worker's job runs again after this.",
    { minimum: 1 },
  ),
} satisfies Record<string, VariableSpec>;

export type VariableName = keyof typeof VARIABLES;

export interface Config {
  appName: string;
  version: string;
  environment: 'development' | 'staging' | 'production';
  debug: boolean;
  host: string;
  port: number;
  publicBaseUrl: string;
  emailLinkBaseUrl: string;
  trustProxy: boolean;
  trustProxyHops: number;
  clientCountryHeader: string;
  bodyLimitKb: number;
  validateResponses: boolean;
  /** The metrics listener's port; null: no such listener. */
  metricsPort: number | null;
  shutdownTimeoutMs: number;
  database: {
    url: string;
    poolMin: number;
    poolMax: number;
    acquireTimeoutMs: number;
    processes: number;
    reservedConnections: number;
    statementTimeoutSeconds: number;
    /** The read replica for reads that tolerate lag; null: none, those reads go to the primary. */
    replica: { url: string; poolMax: number } | null;
  };
  redis: {
    url: string;
    topology: RedisTopology;
    keyPrefix: string;
    commandTimeoutMs: number;
    /** Replicas that must acknowledge security state and publications (WAIT), and for how long. */
    waitReplicas: number;
    waitTimeoutMs: number;
  };
  sessions: { persistentTtlSeconds: number; ttlSeconds: number; inactivitySeconds: number; livenessCacheSeconds: number };
  jwt: { signingKeyId: string; keysDir: string; keysReloadMs: number; accessTtlSeconds: number; issuer: string; audience: string };
  /** `keysDir`: absent means no folder of decrypt-only keys. */
  kms: { provider: 'local'; keyPath: string; previousKeyPaths: string[]; keysDir?: string };
  google: {
    clientId: string;
    clientSecret: string;
    /** The allowed redirect URIs; the first is the default. */
    redirectUris: string[];
    issuer: string;
    successRedirectUrl: string;
    failureRedirectUrl: string;
    timeoutMs: number;
  };
  smtp: { host: string; port: number; username: string; password: string; from: string; tls: boolean; devDir: string };
  rateLimits: {
    login: { attempts: number; ipAttempts: number; emailAttempts: number; windowSeconds: number };
    register: { attempts: number; windowSeconds: number };
    refresh: { attempts: number; windowSeconds: number };
    passwordReset: { attempts: number; windowSeconds: number };
    email: { attempts: number; ipAttempts: number; windowSeconds: number };
    oauth: { attempts: number; windowSeconds: number };
  };
  password: {
    minLength: number;
    requireCharacterClasses: boolean;
    bcryptCost: number;
    bcryptMaxConcurrency: number;
    bcryptMaxQueue: number;
    resetTokenTtlSeconds: number;
  };
  mfa: { totpStepSeconds: number };
  refreshReuseIntervalSeconds: number;
  cookie: { name: string; secure: boolean; httpOnly: boolean; sameSite: 'strict' | 'lax' | 'none' };
  cors: { allowedOrigins: string[]; allowCredentials: boolean };
  log: { level: string; format: 'json' | 'text' };
  features: { googleOAuth: boolean; mfaTotp: boolean; sharedAccounts: boolean };
  kite: { baseUrl: string; timeoutMs: number; maxRetries: number };
  queues: {
    prefix: string;
    workerQueues: string[];
    concurrency: Record<QueueName, number>;
    attempts: number;
    backoffMs: number;
    reconcileIntervalMs: number;
    reconcileAfterSeconds: number;
    // Audit trail (issue 15)
    lockMs: number;
  };
  events: { streamName: string; streamMaxLen: number; relayIntervalMs: number; relayBatchSize: number };
  bullBoardEnabled: boolean;
  /** Values of the guide's variables that have no effect here but were set; reported at start-up. */
  ignoredSettings: string[];
  // Trading accounts on Kite Connect (issue 14)
  tradingAccounts: { loginUrl: string; requestsPerSecond: number; retryBackoffMs: number; expirySchedule: string; jobLockMs: number };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

function jsonSchemaFor(spec: VariableSpec): Record<string, unknown> {
  switch (spec.kind) {
    case 'number':
      return { type: 'number', exclusiveMinimum: 0, ...(spec.maximum !== undefined && { maximum: spec.maximum }) };
    case 'integer':
      return {
        type: 'integer',
        ...(spec.minimum !== undefined && { minimum: spec.minimum }),
        ...(spec.maximum !== undefined && { maximum: spec.maximum }),
      };
    case 'boolean':
      return { type: 'boolean' };
    case 'url':
      // A URL whose default is empty is optional: its value is derived when unset.
      return { type: 'string', pattern: `${spec.default === '' ? '^$|' : ''}^[a-zA-Z][a-zA-Z0-9+.-]*://.+` };
    default:
      return { type: 'string', ...(spec.enum && { enum: spec.enum }) };
  }
}

const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true });
const validateRaw = ajv.compile({
  type: 'object',
  properties: Object.fromEntries(Object.entries(VARIABLES).map(([name, spec]) => [name, jsonSchemaFor(spec)])),
});

function describeAjvError(err: { instancePath: string; message?: string; params: Record<string, unknown> }): string {
  const name = err.instancePath.replace(/^\//, '');
  const allowed = Array.isArray(err.params.allowedValues) ? ` (${(err.params.allowedValues as string[]).join(', ')})` : '';
  return `${name}: ${err.message}${allowed}`;
}

/** Windows are whole seconds, at least one (rate-limiter-flexible's unit). */
const seconds = (value: number): number => Math.max(1, Math.round(value));

const splitList = (value: string): string[] =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** Where clients reach the api when PUBLIC_BASE_URL is unset: the address it listens on. */
function listeningUrl(host: string, port: number): string {
  const wildcard = ['', '0.0.0.0', '::', '[::]'].includes(host);
  const name = wildcard ? 'localhost' : net.isIPv6(host) ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/** Reads `.env` (when present) into a copy of the environment; existing variables win, as with dotenv. */
export function readEnvironment(env: NodeJS.ProcessEnv = process.env, envFile = path.resolve('.env')): Record<string, string | undefined> {
  const merged: Record<string, string | undefined> = {};
  if (fs.existsSync(envFile)) Object.assign(merged, dotenv.parse(fs.readFileSync(envFile)));
  return Object.assign(merged, env);
}

export interface RedisNode {
  host: string;
  port: number;
}

/** One Redis at REDIS_URL, a primary found through Sentinel, or a Redis Cluster. */
export type RedisTopology =
  { kind: 'single' } | { kind: 'sentinel'; sentinels: RedisNode[]; masterName: string } | { kind: 'cluster'; nodes: RedisNode[] };

/** `host:port` entries of a list variable; a bad one is a problem naming the variable. */
function redisNodes(name: string, value: string, problems: string[]): RedisNode[] {
  return splitList(value).flatMap((entry) => {
    const match = /^(.+):(\d{1,5})$/.exec(entry);
    if (match && Number(match[2]) <= 65535) return [{ host: match[1].replace(/^\[(.*)\]$/, '$1'), port: Number(match[2]) }];
    problems.push(`${name}: "${entry}" is not host:port`);
    return [];
  });
}

function redisTopology(
  source: { sentinels: string; masterName: string; clusterNodes: string; url: string; bullPrefix: string },
  problems: string[],
): RedisTopology {
  const sentinels = redisNodes('REDIS_SENTINELS', source.sentinels, problems);
  const nodes = redisNodes('REDIS_CLUSTER_NODES', source.clusterNodes, problems);
  if (sentinels.length && nodes.length) problems.push('REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one of them, not both');
  if (nodes.length) {
    const db = new URL(source.url).pathname.replace(/^\//, '');
    if (db && db !== '0') problems.push(`REDIS_URL: a Redis Cluster has database 0 only, not ${db}`);
    // Each queue gets its own hash tag (shared/queues); a tag in the prefix would put every queue in one slot.
    if (/[{}]/.test(source.bullPrefix))
      problems.push('BULLMQ_PREFIX: no { or } with a Redis Cluster: each queue is given its own hash tag');
    return { kind: 'cluster', nodes };
  }
  if (sentinels.length) return { kind: 'sentinel', sentinels, masterName: source.masterName };
  return { kind: 'single' };
}

/** Parses and validates; throws ConfigError listing every bad variable. Pure: takes the variables it reads. */
export function parseConfig(source: Record<string, string | undefined>): Config {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(VARIABLES) as [VariableName, VariableSpec][]) {
    let value = source[name];
    if (value === undefined || (value === '' && spec.kind !== 'string' && spec.kind !== 'list')) value = spec.default;
    if (value === undefined) {
      problems.push(`${name}: is required`);
      continue;
    }
    if (['LOG_LEVEL', 'ENVIRONMENT', 'LOG_FORMAT', 'SESSION_COOKIE_SAMESITE', 'VALIDATE_RESPONSES'].includes(name))
      value = value.toLowerCase();
    if (spec.kind === 'boolean') value = value.toLowerCase();
    values[name] = value;
  }
  if (!validateRaw(values)) problems.push(...(validateRaw.errors ?? []).map(describeAjvError));
  if (source.KMS_PROVIDER && ['aws', 'vault'].includes(source.KMS_PROVIDER.toLowerCase())) {
    problems.push(`KMS_PROVIDER: "${source.KMS_PROVIDER}" is not built in this service; use "local"`);
  }
  if (problems.length) throw new ConfigError(dedupe(problems));

  const raw = values as unknown as Record<VariableName, never>;
  const str = (n: VariableName) => raw[n] as unknown as string;
  const num = (n: VariableName) => raw[n] as unknown as number;
  const bool = (n: VariableName) => raw[n] as unknown as boolean;

  const workerQueues = splitList(str('WORKER_QUEUES'));
  for (const q of workerQueues)
    if (!(QUEUE_NAMES as readonly string[]).includes(q)) problems.push(`WORKER_QUEUES: unknown queue "${q}" (${QUEUE_NAMES.join(', ')})`);
  const environment = str('ENVIRONMENT') as Config['environment'];
  if (environment !== 'development') {
    if (num('PASSWORD_BCRYPT_COST') < 10) problems.push('PASSWORD_BCRYPT_COST: must be at least 10 outside development');
    if (!str('SMTP_HOST')) problems.push('SMTP_HOST: is required outside development (emails would not be sent)');
    if (!bool('SESSION_COOKIE_SECURE')) problems.push('SESSION_COOKIE_SECURE: must be true outside development');
  }
  const redirectUris = splitList(str('GOOGLE_OAUTH_REDIRECT_URI'));
  for (const uri of redirectUris) if (!URL.canParse(uri)) problems.push(`GOOGLE_OAUTH_REDIRECT_URI: "${uri}" is not a URL`);
  const metricsPort = str('METRICS_PORT') === '' ? null : Number(str('METRICS_PORT'));
  if (metricsPort !== null && !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort <= 65535)) {
    problems.push('METRICS_PORT: must be a port number (0 to 65535) or empty');
  }
  if (str('SESSION_COOKIE_NAME').startsWith('__Secure-') && !bool('SESSION_COOKIE_SECURE')) {
    problems.push('SESSION_COOKIE_NAME: a __Secure- cookie needs SESSION_COOKIE_SECURE=true (browsers drop it otherwise)');
  }
  const redisTopologyFound = redisTopology(
    {
      sentinels: str('REDIS_SENTINELS'),
      masterName: str('REDIS_SENTINEL_MASTER'),
      clusterNodes: str('REDIS_CLUSTER_NODES'),
      url: str('REDIS_URL'),
      bullPrefix: str('BULLMQ_PREFIX'),
    },
    problems,
  );
  if (problems.length) throw new ConfigError(problems);

  const level = str('LOG_LEVEL');
  const logLevel = bool('DEBUG') ? 'debug' : level === 'warning' ? 'warn' : level === 'critical' ? 'fatal' : level;
  const ignoredSettings = (Object.entries(VARIABLES) as [VariableName, VariableSpec][])
    .filter(([name, spec]) => spec.unused && source[name] !== undefined && source[name] !== '' && source[name] !== spec.default)
    .map(([name]) => name);
  const poolSize = num('DATABASE_POOL_SIZE');

  return {
    appName: str('APP_NAME'),
    version: str('VERSION'),
    environment,
    debug: bool('DEBUG'),
    host: str('HOST'),
    port: num('PORT'),
    publicBaseUrl: (str('PUBLIC_BASE_URL') || listeningUrl(str('HOST'), num('PORT'))).replace(/\/$/, ''),
    emailLinkBaseUrl: str('EMAIL_LINK_BASE_URL').replace(/\/$/, ''),
    trustProxy: bool('TRUST_PROXY'),
    trustProxyHops: num('TRUST_PROXY_HOPS'),
    clientCountryHeader: str('CLIENT_COUNTRY_HEADER').toLowerCase(),
    bodyLimitKb: num('BODY_LIMIT_KB'),
    metricsPort,
    validateResponses: str('VALIDATE_RESPONSES') === 'on' || (str('VALIDATE_RESPONSES') === 'auto' && environment === 'development'),
    shutdownTimeoutMs: num('SHUTDOWN_TIMEOUT_SECONDS') * 1000,
    database: {
      url: str('DATABASE_URL'),
      poolMin: 0,
      poolMax: poolSize + num('DATABASE_MAX_OVERFLOW'),
      acquireTimeoutMs: num('DATABASE_POOL_TIMEOUT') * 1000,
      processes: num('DATABASE_PROCESSES'),
      reservedConnections: num('DATABASE_RESERVED_CONNECTIONS'),
      statementTimeoutSeconds: num('DATABASE_STATEMENT_TIMEOUT_SECONDS'),
      replica: str('DATABASE_REPLICA_URL') ? { url: str('DATABASE_REPLICA_URL'), poolMax: num('DATABASE_REPLICA_POOL_SIZE') } : null,
    },
    redis: {
      url: str('REDIS_URL'),
      topology: redisTopologyFound,
      keyPrefix: str('REDIS_KEY_PREFIX'),
      commandTimeoutMs: num('REDIS_COMMAND_TIMEOUT_MS'),
      waitReplicas: num('REDIS_WAIT_REPLICAS'),
      waitTimeoutMs: num('REDIS_WAIT_TIMEOUT_MS'),
    },
    sessions: {
      // The guide names the persistent lifetime twice (session and refresh token): the shorter wins.
      persistentTtlSeconds: Math.round(Math.min(num('REDIS_SESSION_TTL_DAYS'), num('JWT_REFRESH_TOKEN_TTL_DAYS')) * 86400),
      ttlSeconds: Math.round(num('SESSION_TTL_HOURS') * 3600),
      inactivitySeconds: Math.round(num('REDIS_SESSION_INACTIVITY_DAYS') * 86400),
      livenessCacheSeconds: num('SESSION_LIVENESS_CACHE_SECONDS'),
    },
    jwt: {
      signingKeyId: str('JWT_SIGNING_KEY_ID'),
      keysDir: path.resolve(str('JWT_KEYS_DIR')),
      keysReloadMs: num('JWT_KEYS_RELOAD_SECONDS') * 1000,
      accessTtlSeconds: num('JWT_ACCESS_TOKEN_TTL_MINUTES') * 60,
      issuer: str('JWT_ISSUER'),
      audience: str('JWT_AUDIENCE'),
    },
    kms: {
      provider: 'local',
      keyPath: path.resolve(str('LOCAL_KMS_KEY_PATH')),
      previousKeyPaths: splitList(str('LOCAL_KMS_PREVIOUS_KEY_PATHS')).map((p) => path.resolve(p)),
      keysDir: str('LOCAL_KMS_KEYS_DIR') ? path.resolve(str('LOCAL_KMS_KEYS_DIR')) : undefined,
    },
    google: {
      clientId: str('GOOGLE_OAUTH_CLIENT_ID'),
      clientSecret: str('GOOGLE_OAUTH_CLIENT_SECRET'),
      redirectUris,
      issuer: str('GOOGLE_OAUTH_ISSUER').replace(/\/$/, ''),
      successRedirectUrl: str('OAUTH_SUCCESS_REDIRECT_URL'),
      failureRedirectUrl: str('OAUTH_FAILURE_REDIRECT_URL'),
      timeoutMs: num('GOOGLE_OAUTH_TIMEOUT_SECONDS') * 1000,
    },
    smtp: {
      host: str('SMTP_HOST'),
      port: num('SMTP_PORT'),
      username: str('SMTP_USERNAME'),
      password: str('SMTP_PASSWORD'),
      from: str('SMTP_FROM'),
      tls: bool('SMTP_TLS'),
      devDir: path.resolve(str('EMAIL_DEV_DIR')),
    },
    rateLimits: {
      login: {
        attempts: num('RATELIMIT_LOGIN_ATTEMPTS'),
        ipAttempts: num('RATELIMIT_LOGIN_IP_ATTEMPTS'),
        emailAttempts: num('RATELIMIT_LOGIN_EMAIL_ATTEMPTS'),
        windowSeconds: seconds(num('RATELIMIT_LOGIN_WINDOW_MINUTES') * 60),
      },
      register: { attempts: num('RATELIMIT_REGISTER_ATTEMPTS'), windowSeconds: seconds(num('RATELIMIT_REGISTER_WINDOW_HOURS') * 3600) },
      refresh: { attempts: num('RATELIMIT_REFRESH_ATTEMPTS'), windowSeconds: seconds(num('RATELIMIT_REFRESH_WINDOW_MINUTES') * 60) },
      passwordReset: {
        attempts: num('RATELIMIT_PASSWORD_RESET_ATTEMPTS'),
        windowSeconds: seconds(num('RATELIMIT_PASSWORD_RESET_WINDOW_HOURS') * 3600),
      },
      email: {
        attempts: num('RATELIMIT_EMAIL_ATTEMPTS'),
        ipAttempts: num('RATELIMIT_EMAIL_IP_ATTEMPTS'),
        windowSeconds: seconds(num('RATELIMIT_EMAIL_WINDOW_MINUTES') * 60),
      },
      oauth: { attempts: num('RATELIMIT_OAUTH_ATTEMPTS'), windowSeconds: seconds(num('RATELIMIT_OAUTH_WINDOW_MINUTES') * 60) },
    },
    password: {
      minLength: num('PASSWORD_MIN_LENGTH'),
      requireCharacterClasses: bool('PASSWORD_REQUIRE_CHARACTER_CLASSES'),
      bcryptCost: num('PASSWORD_BCRYPT_COST'),
      bcryptMaxConcurrency: num('BCRYPT_MAX_CONCURRENCY'),
      bcryptMaxQueue: num('BCRYPT_MAX_QUEUE'),
      resetTokenTtlSeconds: seconds(num('PASSWORD_RESET_TOKEN_TTL_MINUTES') * 60),
    },
    mfa: { totpStepSeconds: num('MFA_TOTP_WINDOW_SECONDS') },
    refreshReuseIntervalSeconds: num('REFRESH_TOKEN_REUSE_INTERVAL_SECONDS'),
    cookie: {
      name: str('SESSION_COOKIE_NAME'),
      secure: bool('SESSION_COOKIE_SECURE'),
      httpOnly: bool('SESSION_COOKIE_HTTPONLY'),
      sameSite: str('SESSION_COOKIE_SAMESITE') as Config['cookie']['sameSite'],
    },
    cors: { allowedOrigins: splitList(str('CORS_ALLOWED_ORIGINS')), allowCredentials: bool('CORS_ALLOW_CREDENTIALS') },
    log: { level: logLevel, format: str('LOG_FORMAT') as Config['log']['format'] },
    features: {
      googleOAuth: bool('FEATURE_GOOGLE_OAUTH'),
      mfaTotp: bool('FEATURE_MFA_TOTP'),
      sharedAccounts: bool('FEATURE_SHARED_ACCOUNTS'),
    },
    kite: {
      baseUrl: str('KITE_API_BASE_URL').replace(/\/$/, ''),
      timeoutMs: num('KITE_API_TIMEOUT_SECONDS') * 1000,
      maxRetries: num('KITE_API_MAX_RETRIES'),
    },
    queues: {
      prefix: str('BULLMQ_PREFIX'),
      workerQueues,
      concurrency: {
        email: num('WORKER_CONCURRENCY_EMAIL'),
        kite: num('WORKER_CONCURRENCY_KITE'),
        'audit-export': num('WORKER_CONCURRENCY_AUDIT_EXPORT'),
        events: num('WORKER_CONCURRENCY_EVENTS'),
      },
      attempts: num('JOB_ATTEMPTS'),
      backoffMs: num('JOB_BACKOFF_MS'),
      reconcileIntervalMs: num('RECONCILE_INTERVAL_SECONDS') * 1000,
      reconcileAfterSeconds: num('RECONCILE_AFTER_SECONDS'),
      // Audit trail (issue 15)
      lockMs: num('JOB_LOCK_MS'),
    },
    events: {
      streamName: str('EVENTS_STREAM_NAME'),
      streamMaxLen: num('EVENTS_STREAM_MAXLEN'),
      relayIntervalMs: num('EVENTS_RELAY_INTERVAL_MS'),
      relayBatchSize: num('EVENTS_RELAY_BATCH_SIZE'),
    },
    bullBoardEnabled: bool('BULL_BOARD_ENABLED'),
    ignoredSettings,
    // Trading accounts on Kite Connect (issue 14)
    tradingAccounts: {
      loginUrl: str('KITE_LOGIN_URL'),
      requestsPerSecond: num('KITE_API_REQUESTS_PER_SECOND'),
      retryBackoffMs: num('KITE_API_RETRY_BACKOFF_MS'),
      expirySchedule: str('KITE_EXPIRY_SCHEDULE'),
      jobLockMs: num('KITE_JOB_LOCK_SECONDS') * 1000,
    },
  };
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}

/** For process entry points: reads the environment and exits 1, naming each bad variable, when it is wrong. */
export function loadConfigOrExit(): Config {
  try {
    return parseConfig(readEnvironment());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
}
