// Session liveness in Redis, so bearer authentication need not ask PostgreSQL on every request.
//
// Revocation writes a tombstone (inside the revoking transaction, before it commits: a Redis that
// cannot be reached aborts the revocation rather than letting it pass unseen), and every request
// reads the tombstone, so a revoked session stops working at once on every api copy; a "live"
// entry filled by a request that raced the revocation can never outvote it. A live entry is a
// hint only: it lasts SESSION_LIVENESS_CACHE_SECONDS, and when it says expired or idle the
// database decides.
import type { Context } from '../context';
import { execAcknowledged, tagged } from '../redis';

type Deps = Pick<Context, 'redis' | 'key' | 'accessTokens'>;

// A session's two keys share its hash tag: one MGET reads both on a Redis Cluster too.
const liveKey = (app: Deps, sessionId: string) => app.key('session-live', tagged(sessionId));
const revokedKey = (app: Deps, sessionId: string) => app.key('session-revoked', tagged(sessionId));

export interface LiveSession {
  id: string;
  user_id: string;
  expires_at: Date;
  last_active_at: Date;
}

/**
 * Tombstones outlive every access token that can carry the session id. With REDIS_WAIT_REPLICAS,
 * a replica holds each tombstone before the revocation commits, so a failover cannot bring a
 * revoked session's "live" entry back.
 */
export async function markRevoked(app: Deps & Pick<Context, 'config'>, sessionIds: string[]): Promise<void> {
  if (!sessionIds.length) return;
  const ttl = app.accessTokens.ttlSeconds + 60;
  // One pipeline per session: its keys share a slot, different sessions' keys may not. The
  // tombstone is written first: alone, it already wins over a live entry.
  await Promise.all(
    sessionIds.map((id) =>
      execAcknowledged(app.redis, app.config.redis, revokedKey(app, id), (pipeline) =>
        pipeline.set(revokedKey(app, id), '1', 'EX', ttl).del(liveKey(app, id)),
      ),
    ),
  );
}

/** Those of `sessionIds` with a tombstone: revoked, whatever a lagging read replica still says. */
export async function revokedAmong(app: Deps, sessionIds: string[]): Promise<Set<string>> {
  // One command each: on a Redis Cluster the tombstones are in different slots.
  const found = await Promise.all(sessionIds.map((id) => app.redis.exists(revokedKey(app, id))));
  return new Set(sessionIds.filter((_, i) => found[i] === 1));
}

/** 'revoked' is final; 'live' came from the database within the last minute; 'unknown' asks it. */
export async function cachedLiveness(
  app: Deps,
  sessionId: string,
  userId: string,
  inactivitySeconds: number,
): Promise<'revoked' | 'live' | 'unknown'> {
  const [live, revoked] = await app.redis.mget(liveKey(app, sessionId), revokedKey(app, sessionId));
  if (revoked) return 'revoked';
  if (!live) return 'unknown';
  const entry = JSON.parse(live) as { u: string; e: number; a: number };
  const now = Date.now();
  if (entry.u !== userId || entry.e <= now || entry.a + inactivitySeconds * 1000 <= now) return 'unknown';
  return 'live';
}

export async function rememberLive(app: Deps & Pick<Context, 'config'>, session: LiveSession): Promise<void> {
  const ttl = app.config.sessions.livenessCacheSeconds;
  if (ttl === 0) return;
  const entry = { u: session.user_id, e: new Date(session.expires_at).getTime(), a: new Date(session.last_active_at).getTime() };
  await app.redis.set(liveKey(app, session.id), JSON.stringify(entry), 'EX', ttl);
}
