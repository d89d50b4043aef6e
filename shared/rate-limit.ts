// Rate limits in Redis (rate-limiter-flexible), so they hold across any number of api copies, and
// the catalogue of every limit the service applies. A limit that trips answers 429 problem+json
// with Retry-After and the RateLimit-* headers; a Redis that cannot be reached answers 503
// (never "let everyone through").
import crypto from 'node:crypto';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { scanKeys, unlinkKeys, type Redis } from './redis';
import type { Config } from './config';
import { RateLimitedError, UnavailableError } from './errors';

/** What a limit counts: one value (an IP, a user id, an address) or several (an address and an IP). */
export type LimitKey = string | string[];

export interface Limiter {
  readonly points: number;
  readonly windowSeconds: number;
  /** Counts one hit; throws RateLimitedError when that goes over the limit. */
  hit(key: LimitKey): Promise<RateLimiterRes>;
  reset(key: LimitKey): Promise<void>;
  /** Gives back one hit (a reservation that turned out not to count). */
  refund(key: LimitKey): Promise<void>;
  /** Clears every count whose key starts with `first` (all pairs of one address: an admin's unlock). */
  resetStartingWith(first: string): Promise<void>;
}

export function rateLimitHeaders(res: RateLimiterRes, points: number): Record<string, string> {
  return {
    'RateLimit-Limit': String(points),
    'RateLimit-Remaining': String(Math.max(0, res.remainingPoints)),
    'RateLimit-Reset': String(Math.max(1, Math.ceil(res.msBeforeNext / 1000))),
  };
}

function tooMany(res: RateLimiterRes, points: number): RateLimitedError {
  return new RateLimitedError(res.msBeforeNext / 1000, rateLimitHeaders(res, points));
}

/**
 * Redis key names never hold the values counted (addresses, IPs): each part is a keyed hash, so
 * a dump of Redis tells nothing, and the parts stay apart, so every pair of one address can still
 * be found by its first part.
 */
export function keyHasher(secret: Buffer | (() => Buffer)): (key: LimitKey) => string {
  const secretNow = typeof secret === 'function' ? secret : () => secret;
  const hash = (part: string) => crypto.createHmac('sha256', secretNow()).update(part).digest('hex').slice(0, 32);
  return (key) => [key].flat().map(hash).join(':');
}

export function createLimiter(
  redis: Redis,
  keyPrefix: string,
  points: number,
  windowSeconds: number,
  hashKey: (key: LimitKey) => string,
): Limiter {
  const limiter = new RateLimiterRedis({ storeClient: redis, keyPrefix, points, duration: windowSeconds, rejectIfRedisNotReady: true });
  const failure = (err: unknown) => (err instanceof RateLimiterRes ? tooMany(err, points) : new UnavailableError(undefined, err));
  return {
    points,
    windowSeconds,
    async hit(key) {
      try {
        return await limiter.consume(hashKey(key));
      } catch (err) {
        throw failure(err);
      }
    },
    async reset(key) {
      try {
        await limiter.delete(hashKey(key));
      } catch (err) {
        throw failure(err);
      }
    },
    async refund(key) {
      try {
        await limiter.reward(hashKey(key), 1);
      } catch (err) {
        throw failure(err);
      }
    },
    async resetStartingWith(first) {
      // Each part's hash has one length, so the pattern matches that key alone and its pairs.
      const pattern = `${keyPrefix}:${hashKey(first)}*`;
      try {
        // A rare admin act: a scan of every primary (the keys of one address may sit in any slot).
        await unlinkKeys(redis, await scanKeys(redis, pattern));
      } catch (err) {
        throw new UnavailableError(undefined, err);
      }
    },
  };
}

/** Wrong MFA codes per account (DESIGN.md, "Login throttling"). */
export const MFA_MAX_WRONG_CODES = 5;
export const MFA_WRONG_CODE_WINDOW_SECONDS = 15 * 60;

/** Audit exports a user may request per hour (issue 15). */
export const AUDIT_EXPORTS_PER_HOUR = 10;

/**
 * Every limit, built once per process from the configuration. Keys of one limit are shared by
 * every flow that counts against it (the login endpoint and operators' sign-in, say).
 */
export interface Limits {
  /** Failed password sign-ins per (email, IP), per IP and per email. */
  login: { pair: Limiter; ip: Limiter; email: Limiter };
  registerPerIp: Limiter;
  refreshPerSession: Limiter;
  /** Verification emails per address, and requests for them per IP. */
  verificationEmail: { address: Limiter; ip: Limiter };
  passwordReset: { address: Limiter; ip: Limiter };
  serviceTokenPerIp: Limiter;
  /** Wrong MFA codes completing sign-in challenges, per account. */
  mfaPerAccount: Limiter;
  /** Wrong codes (or passwords) at step-up endpoints, per session: the last one ends the session. */
  stepUpPerSession: Limiter;
  /** Wrong passwords of signed-in users (change password, delete account) per user. */
  passwordCheckPerUser: Limiter;
  // Google sign-in (issue 13)
  /** Google sign-in starts, and callbacks, per IP. */
  oauth: { startPerIp: Limiter; callbackPerIp: Limiter };
  // Audit trail (issue 15)
  /** Audit exports requested per user: each one reads up to 10,000 events and keeps a file for a day. */
  auditExportPerUser: Limiter;
}

export function createLimits(
  config: Pick<Config, 'rateLimits'>,
  redis: Redis,
  key: (...parts: string[]) => string,
  /** A function when the key can change while the process runs (a master key reloaded). */
  secret: Buffer | (() => Buffer),
): Limits {
  const { login, register, refresh, email, passwordReset, oauth } = config.rateLimits;
  const hashKey = keyHasher(secret);
  const limiter = (name: string, points: number, windowSeconds: number) =>
    createLimiter(redis, key('rl', name), points, windowSeconds, hashKey);
  return {
    login: {
      pair: limiter('login-pair', login.attempts, login.windowSeconds),
      ip: limiter('login-ip', login.ipAttempts, login.windowSeconds),
      email: limiter('login-email', login.emailAttempts, login.windowSeconds),
    },
    registerPerIp: limiter('register-ip', register.attempts, register.windowSeconds),
    refreshPerSession: limiter('refresh-session', refresh.attempts, refresh.windowSeconds),
    verificationEmail: {
      address: limiter('email-address', email.attempts, email.windowSeconds),
      ip: limiter('email-ip', email.ipAttempts, email.windowSeconds),
    },
    // Keyed by the address asked for, known or not, so the limit itself tells nothing about accounts.
    passwordReset: {
      address: limiter('password-reset-email', passwordReset.attempts, passwordReset.windowSeconds),
      ip: limiter('password-reset-ip', passwordReset.attempts, passwordReset.windowSeconds),
    },
    // Per IP, not per client: client ids are not secret, and a 256-bit secret needs no lockout
    // that anyone could trigger against a service.
    serviceTokenPerIp: limiter('service-token-ip', login.ipAttempts, login.windowSeconds),
    mfaPerAccount: limiter('mfa-account', MFA_MAX_WRONG_CODES, MFA_WRONG_CODE_WINDOW_SECONDS),
    stepUpPerSession: limiter('step-up-session', MFA_MAX_WRONG_CODES, MFA_WRONG_CODE_WINDOW_SECONDS),
    passwordCheckPerUser: limiter('password-check-user', login.attempts, login.windowSeconds),
    // Google sign-in (issue 13)
    oauth: {
      startPerIp: limiter('oauth-start-ip', oauth.attempts, oauth.windowSeconds),
      callbackPerIp: limiter('oauth-callback-ip', oauth.attempts, oauth.windowSeconds),
    },
    // Audit trail (issue 15)
    auditExportPerUser: limiter('audit-export-user', AUDIT_EXPORTS_PER_HOUR, 3600),
  };
}
