// The permission cache: each user's effective permissions in Redis, shared by every api copy.
//
// Invalidation bumps a per-user version after the change commits; readers cache under the
// version they read before computing, so a computation that raced with a change lands under a
// version nobody reads any more. A cached entry lives no longer than its earliest grant expiry,
// and expired grants are filtered on every read anyway, so an expired grant never counts.
import type { Knex } from 'knex';
import { tagged, type Redis } from '../redis';
import { listEffectivePermissions, type EffectivePermission } from './permissions';

const MAX_TTL_SECONDS = 300;

// KEYS[1] the version, KEYS[2] the prefix of the entries: both declared and in the user's hash
// slot, as a Redis Cluster requires of a script.
const READ_CURRENT = `local v = redis.call('GET', KEYS[1]) or '0'
return {v, redis.call('GET', KEYS[2] .. v)}`;

export interface PermissionCache {
  get(userId: string): Promise<EffectivePermission[]>;
  has(userId: string, permission: string): Promise<boolean>;
  invalidate(userId: string): Promise<void>;
  /**
   * Runs a change of the user's permissions: invalidates inside the transaction (so a Redis that
   * cannot be reached aborts the change instead of leaving a stale cache) and again after the
   * commit (so a check that raced the change does not keep its stale answer).
   */
  changing<T>(db: Knex, change: (trx: Knex.Transaction) => Promise<T>, userIdOf: (result: T) => string): Promise<T>;
}

interface Cached {
  name: string;
  source: string;
  grant_id: string | null;
  expires_at: string | null;
}

type WithReadCommand = Redis & { readPermissions(versionKey: string, entryPrefix: string): Promise<[string, string | null]> };

export function createPermissionCache(db: Knex, redis: Redis, key: (...parts: string[]) => string): PermissionCache {
  // EVALSHA after the first call: the script is not resent with every check.
  const reader = redis as WithReadCommand;
  if (typeof reader.readPermissions !== 'function') redis.defineCommand('readPermissions', { numberOfKeys: 2, lua: READ_CURRENT });
  // A user's keys share the user's hash tag.
  const versionKey = (userId: string) => key('perm-version', tagged(userId));
  const entryKey = (userId: string, version: string) => key('perm', tagged(userId), version);
  const live = (list: Cached[]): EffectivePermission[] => {
    const now = Date.now();
    return list
      .filter((p) => !p.expires_at || Date.parse(p.expires_at) > now)
      .map((p) => ({ ...p, expires_at: p.expires_at ? new Date(p.expires_at) : null }));
  };

  async function get(userId: string): Promise<EffectivePermission[]> {
    // The version and the entry under it in one round trip.
    const [version, hit] = await reader.readPermissions(versionKey(userId), entryKey(userId, ''));
    if (hit) return live(JSON.parse(hit) as Cached[]);
    const fresh = await listEffectivePermissions(db, userId);
    const list: Cached[] = fresh.map((p) => ({ ...p, expires_at: p.expires_at ? new Date(p.expires_at).toISOString() : null }));
    const nextExpiry = Math.min(...list.filter((p) => p.expires_at).map((p) => Date.parse(p.expires_at!)));
    const ttl = Math.max(
      1,
      Math.min(MAX_TTL_SECONDS, Number.isFinite(nextExpiry) ? Math.floor((nextExpiry - Date.now()) / 1000) : MAX_TTL_SECONDS),
    );
    await redis.set(entryKey(userId, version), JSON.stringify(list), 'EX', ttl);
    return live(list);
  }

  async function invalidate(userId: string): Promise<void> {
    // The version outlives every entry (5 minutes at most), so letting it lapse is safe.
    await redis.multi().incr(versionKey(userId)).expire(versionKey(userId), 86400).exec();
  }

  return {
    get,
    async has(userId, permission) {
      return (await get(userId)).some((p) => p.name === permission);
    },
    invalidate,
    async changing(database, change, userIdOf) {
      const result = await database.transaction(async (trx) => {
        const value = await change(trx);
        await invalidate(userIdOf(value));
        return value;
      });
      await invalidate(userIdOf(result)).catch(() => undefined);
      return result;
    },
  };
}
