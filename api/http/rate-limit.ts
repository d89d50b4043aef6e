// Rate limits in Redis (rate-limiter-flexible), so they hold across any number of api copies.
// A limit that trips answers 429 problem+json with Retry-After and the RateLimit-* headers; a
// Redis that cannot be reached answers 503 (never "let everyone through").
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import { RateLimitedError, UnavailableError } from '../../shared/errors';

export interface Limiter {
  readonly points: number;
  readonly windowSeconds: number;
  /** Counts one hit; throws RateLimitedError when that goes over the limit. */
  hit(key: string): Promise<RateLimiterRes>;
  reset(key: string): Promise<void>;
  /** Gives back one hit (a reservation that turned out not to count). */
  refund(key: string): Promise<void>;
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

export function createLimiter(redis: Redis, keyPrefix: string, points: number, windowSeconds: number): Limiter {
  const limiter = new RateLimiterRedis({ storeClient: redis, keyPrefix, points, duration: windowSeconds, rejectIfRedisNotReady: true });
  const failure = (err: unknown) => (err instanceof RateLimiterRes ? tooMany(err, points) : new UnavailableError(undefined, err));
  return {
    points,
    windowSeconds,
    async hit(key) {
      try {
        return await limiter.consume(key);
      } catch (err) {
        throw failure(err);
      }
    },
    async reset(key) {
      try {
        await limiter.delete(key);
      } catch (err) {
        throw failure(err);
      }
    },
    async refund(key) {
      try {
        await limiter.reward(key, 1);
      } catch (err) {
        throw failure(err);
      }
    },
  };
}
