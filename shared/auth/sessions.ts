// Sessions and their tokens: starting a session (the end of every sign-in: password, MFA,
// Google), rotating its refresh token, signing out and revoking sessions, and whether a session is
// live. A refresh token is opaque, stored as a SHA-256 hash, and rotated on every use; presenting
// one that was already rotated is reuse, and revokes every session of the user, except within the
// short grace window where the immediate parent of the current token gets the same successor pair
// again (two tabs refreshing at once).
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Context } from '../context';
import { hashOpaqueToken, newOpaqueToken, type AuthMethod } from '../crypto/access-tokens';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { enqueueEmailAfterCommit, writeEmail } from '../email/outbox';
import { NotFoundError, UnauthorizedError } from '../errors';
import { listRoleNames, namesOf, roleNamesQuery } from '../authz/permissions';
import type { RevokeReason, Session, User } from '../models';
import { canSignIn, SIGN_IN_STATUSES } from '../users/status';
import type { Actor } from './actor';
import { cachedLiveness, markRevoked, rememberLive, revokedAmong, type LiveSession } from './session-cache';

/** Where a sign-in comes from, recorded with its session. */
export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
  country: string | null;
  deviceFingerprint: string | null;
}

/** The user fields every token answer carries, and nothing else (the tokens are kept for the grace window). */
const SIGNED_IN_USER_FIELDS = ['id', 'email', 'name', 'email_verified', 'status', 'mfa_enabled'] as const;
export type SignedInUser = Pick<User, (typeof SIGNED_IN_USER_FIELDS)[number]>;

const signedInUser = (user: SignedInUser): SignedInUser =>
  Object.fromEntries(SIGNED_IN_USER_FIELDS.map((field) => [field, user[field]])) as SignedInUser;

/** A session's tokens, as issued at sign-in and at each refresh. JSON-safe (kept for the grace window). */
export interface SessionTokens {
  accessToken: string;
  refreshToken: string;
  /** Seconds the access token lives. */
  expiresIn: number;
  session: {
    id: string;
    /** Whether the refresh cookie should outlive the browser (persistent sessions only). */
    persistent: boolean;
    expiresAt: string;
  };
  user: SignedInUser;
  roles: string[];
}

export type SignInMethod = 'password' | 'google';

const INVALID_REFRESH = 'The refresh token is invalid or expired.';

/** The body's fingerprint when given, else one derived from the user agent. */
export function deviceFingerprintOf(given: string | undefined, userAgent: string | null): string | null {
  if (given) return given;
  return userAgent ? `ua:${crypto.createHash('sha256').update(userAgent).digest('hex').slice(0, 32)}` : null;
}

const originOf = (client: ClientInfo, actorId: string): EventOrigin => ({ actorId, ip: client.ip, userAgent: client.userAgent });

/** How a new session is held and when it ends. */
export interface NewSession {
  persistent: boolean;
  amr: AuthMethod[];
  method: SignInMethod;
  lifetimeSeconds: number;
  /** Its own inactivity limit; the configured one when absent. */
  idleSeconds?: number;
  /** The hash of what holds it: a refresh token (the API) or a cookie token (operators). */
  holder: { refreshTokenHash: string } | { cookieTokenHash: string };
}

type OpenedSession = Pick<Session, 'id' | 'persistent' | 'amr' | 'auth_time' | 'expires_at'>;

/**
 * Opens a session for a user who has just proved who they are, whatever holds it: the row, its
 * holder, `session.created` and `user.login`, and a notice when the device is new, in one
 * transaction; the notice is enqueued after the commit.
 */
export async function openSession(
  app: Context,
  user: SignedInUser,
  client: ClientInfo,
  options: NewSession,
): Promise<{ session: OpenedSession; roles: string[] }> {
  const { session, newDevice, noticeEmailId, roles } = await app.db.transaction(async (trx) => {
    const seenBefore = await trx('sessions')
      .where({ user_id: user.id })
      .first<{ seen: boolean | null; n: number } | undefined>(
        trx.raw('bool_or(device_fingerprint = ?) AS seen, count(*)::int AS n', [client.deviceFingerprint ?? '']),
      );
    const newDevice = !seenBefore?.seen;
    const [session] = await trx('sessions')
      .insert({
        user_id: user.id,
        device_fingerprint: client.deviceFingerprint,
        user_agent: client.userAgent,
        ip: client.ip,
        country: client.country,
        persistent: options.persistent,
        amr: options.amr,
        expires_at: trx.raw(`now() + make_interval(secs => ?)`, [options.lifetimeSeconds]),
        idle_timeout_seconds: options.idleSeconds ?? null,
        cookie_token_hash: 'cookieTokenHash' in options.holder ? options.holder.cookieTokenHash : null,
      })
      .returning(['id', 'persistent', 'amr', 'auth_time', 'expires_at']);
    if ('refreshTokenHash' in options.holder) {
      await trx('refresh_tokens').insert({ session_id: session.id, token_hash: options.holder.refreshTokenHash });
    }
    await trx('users').where({ id: user.id }).update({ last_login_at: trx.fn.now() });
    const origin = originOf(client, user.id);
    const sessionCreated = { session_id: session.id, persistent: options.persistent };
    await recordEvent(trx, { type: 'session.created', userId: user.id, data: sessionCreated }, origin);
    const login = { session_id: session.id, method: options.method, new_device: newDevice };
    await recordEvent(trx, { type: 'user.login', userId: user.id, data: login }, origin);
    // No notice for a first sign-in ever: every device is new then.
    const noticeEmailId =
      newDevice && (seenBefore?.n ?? 0) > 0
        ? await writeEmail(trx, app.kms, {
            template: 'new_device_login',
            to: user.email,
            userId: user.id,
            params: {
              name: user.name,
              when: new Date().toISOString(),
              ip: client.ip,
              userAgent: client.userAgent,
              country: client.country,
            },
          })
        : null;
    return { session: session, newDevice, noticeEmailId, roles: await listRoleNames(trx, user.id) };
  });
  if (noticeEmailId) await enqueueEmailAfterCommit(app, noticeEmailId);
  app.logger.debug({ sessionId: session.id, newDevice }, 'session started');
  return { session, roles };
}

/** Starts an API session (a refresh token and an access token) and returns its first tokens. */
export async function startSession(
  app: Context,
  user: SignedInUser,
  client: ClientInfo,
  options: { persistent: boolean; amr: AuthMethod[]; method: SignInMethod },
): Promise<SessionTokens> {
  const { sessions } = app.config;
  const refresh = newOpaqueToken();
  const { session, roles } = await openSession(app, user, client, {
    ...options,
    lifetimeSeconds: options.persistent ? sessions.persistentTtlSeconds : sessions.ttlSeconds,
    holder: { refreshTokenHash: refresh.hash },
  });
  return tokensFor(app, user, roles, session, refresh.token);
}

async function tokensFor(
  app: Context,
  user: SignedInUser,
  roles: string[],
  session: Pick<Session, 'id' | 'persistent' | 'amr' | 'auth_time' | 'expires_at'>,
  refreshToken: string,
): Promise<SessionTokens> {
  const accessToken = await app.accessTokens.sign({
    sub: user.id,
    sid: session.id,
    roles,
    amr: session.amr as AuthMethod[],
    authTime: session.auth_time,
  });
  return {
    accessToken,
    refreshToken,
    expiresIn: app.accessTokens.ttlSeconds,
    session: { id: session.id, persistent: session.persistent, expiresAt: new Date(session.expires_at).toISOString() },
    user: signedInUser(user),
    roles,
  };
}

const successorKey = (app: Context, parentHash: string) => app.key('refresh-successor', parentHash);

/**
 * One statement: marks the presented token rotated, stores its successor, touches the session,
 * and reads the user's role names (for the new access token).
 */
async function rotate(
  trx: Knex.Transaction,
  row: { token_id: string; session_id: string; user_id: string },
  successorHash: string,
  ip: string | null,
): Promise<string[]> {
  // Data-modifying CTEs run once and in full, whether or not the query reads them.
  const rows = (await roleNamesQuery(trx, row.user_id)
    .with('rotated', trx.raw('UPDATE refresh_tokens SET rotated_at = now() WHERE id = ?', [row.token_id]))
    .with(
      'successor',
      trx.raw('INSERT INTO refresh_tokens (session_id, token_hash, parent_id) VALUES (?, ?, ?)', [
        row.session_id,
        successorHash,
        row.token_id,
      ]),
    )
    .with(
      'touched',
      trx.raw('UPDATE sessions SET last_active_at = now(), ip = COALESCE(?::inet, ip) WHERE id = ?', [ip, row.session_id]),
    )) as {
    name: string;
  }[];
  return namesOf(rows);
}

/** The presented refresh token's row, locked, with its session and user. */
interface RefreshRow extends SignedInUser {
  token_id: string;
  rotated_at: Date | null;
  session_id: string;
  user_id: string;
  revoked_at: Date | null;
  persistent: boolean;
  amr: string[];
  auth_time: Date;
  expires_at: Date;
  expired: boolean;
  idle: boolean;
  in_grace: boolean;
  /** Whether the token's successor is still the session's current token. */
  parent_of_current: boolean;
}

type Refreshed = { kind: 'rotated' | 'replay'; tokens: SessionTokens } | { kind: 'reuse'; userId: string };

/**
 * Rotates a refresh token. The token's row is locked, so concurrent refreshes with one token
 * queue behind the first: it rotates and leaves the successor tokens (encrypted) in Redis for the
 * grace window; the others find the row rotated and get those same tokens, or, outside the window,
 * are treated as reuse.
 */
export async function refreshSession(app: Context, presented: string, client: ClientInfo): Promise<SessionTokens> {
  const hash = hashOpaqueToken(presented);
  const graceSeconds = app.config.refreshReuseIntervalSeconds;
  const outcome = await app.db.transaction(async (trx): Promise<Refreshed> => {
    const row = await trx('refresh_tokens as rt')
      .join('sessions as s', 's.id', 'rt.session_id')
      .join('users as u', 'u.id', 's.user_id')
      .where('rt.token_hash', hash)
      .forUpdate('rt')
      .first<RefreshRow | undefined>(
        'rt.id as token_id',
        'rt.rotated_at',
        's.id as session_id',
        's.user_id',
        's.revoked_at',
        's.persistent',
        's.amr',
        's.auth_time',
        's.expires_at',
        trx.raw('s.expires_at <= now() AS expired'),
        trx.raw('s.last_active_at <= now() - make_interval(secs => ?) AS idle', [app.config.sessions.inactivitySeconds]),
        trx.raw('rt.rotated_at > now() - make_interval(secs => ?) AS in_grace', [graceSeconds]),
        trx.raw(
          'NOT EXISTS (SELECT 1 FROM refresh_tokens child WHERE child.parent_id = rt.id AND child.rotated_at IS NOT NULL) AS parent_of_current',
        ),
        'u.id',
        'u.email',
        'u.name',
        'u.email_verified',
        'u.status',
        'u.mfa_enabled',
      );
    if (!row) throw new UnauthorizedError(INVALID_REFRESH, 'invalid_refresh_token');
    if (row.rotated_at) {
      // Only the immediate parent of the current token (two tabs at once); an older one is a copy.
      if (graceSeconds > 0 && row.in_grace && row.parent_of_current && !row.revoked_at) {
        const cached = await app.redis.get(successorKey(app, hash));
        if (cached) return { kind: 'replay', tokens: JSON.parse(app.kms.decrypt(cached, successorKey(app, hash))) as SessionTokens };
      }
      // A rotated token presented again: someone holds a copy. End every session of the user.
      await revokeSessions(app, trx, {
        userId: row.user_id,
        reason: 'refresh_token_reuse',
        origin: { ip: client.ip, userAgent: client.userAgent },
      });
      return { kind: 'reuse', userId: row.user_id };
    }
    if (row.revoked_at || row.expired || row.idle || !canSignIn(row.status)) {
      throw new UnauthorizedError(INVALID_REFRESH, 'invalid_refresh_token');
    }
    const next = newOpaqueToken();
    // The rate limit (Redis) and the rotation (PostgreSQL) at once: over the limit, the
    // transaction rolls back. The row lock is held for as few round trips as possible.
    const [, roles] = await Promise.all([app.limits.refreshPerSession.hit(row.session_id), rotate(trx, row, next.hash, client.ip)]);
    const session = { id: row.session_id, persistent: row.persistent, amr: row.amr, auth_time: row.auth_time, expires_at: row.expires_at };
    const tokens = await tokensFor(app, row, roles, session, next.token);
    // Before the commit releases the row lock, so every waiting request finds it.
    if (graceSeconds > 0) {
      const sealed = app.kms.encrypt(JSON.stringify(tokens), successorKey(app, hash));
      await app.redis.set(successorKey(app, hash), sealed, 'EX', graceSeconds);
    }
    return { kind: 'rotated', tokens };
  });
  if (outcome.kind === 'reuse') {
    app.logger.warn({ userId: outcome.userId }, 'refresh token reuse: every session of the user revoked');
    throw new UnauthorizedError(INVALID_REFRESH, 'invalid_refresh_token');
  }
  return outcome.tokens;
}

/** Revokes live sessions (one, some, or all of a user's), with one session.revoked event each. */
export async function revokeSessions(
  app: Pick<Context, 'redis' | 'key' | 'accessTokens' | 'config'>,
  trx: Knex.Transaction,
  target: { userId: string; sessionIds?: string[]; reason: RevokeReason; origin?: EventOrigin },
): Promise<string[]> {
  const query = trx('sessions').where({ user_id: target.userId }).whereNull('revoked_at');
  if (target.sessionIds) query.whereIn('id', target.sessionIds);
  const revoked = await query.update({ revoked_at: trx.fn.now(), revoked_reason: target.reason }).returning('id');
  const ids = revoked.map((r) => r.id);
  // Before the commit: every api copy refuses these sessions' access tokens from now on.
  await markRevoked(app, ids);
  for (const id of ids) {
    await recordEvent(
      trx,
      { type: 'session.revoked', userId: target.userId, data: { session_id: id, reason: target.reason } },
      target.origin,
    );
  }
  return ids;
}

/** Signs out the actor's session, or every session of the actor. */
export async function signOut(app: Context, actor: Actor, allDevices: boolean, origin: EventOrigin): Promise<void> {
  await app.db.transaction(async (trx) => {
    await revokeSessions(app, trx, {
      userId: actor.userId,
      ...(!allDevices && { sessionIds: actor.sessionId ? [actor.sessionId] : [] }),
      reason: allDevices ? 'logout_all' : 'logout',
      origin,
    });
    const data = { session_id: actor.sessionId, all_devices: allDevices };
    await recordEvent(trx, { type: 'user.logout', userId: actor.userId, data }, origin);
  });
}

/** Revokes one live session of the actor's; 404 when there is none such. */
export async function revokeOwnSession(app: Context, actor: Actor, sessionId: string, origin: EventOrigin): Promise<void> {
  const revoked = await app.db.transaction((trx) =>
    revokeSessions(app, trx, { userId: actor.userId, sessionIds: [sessionId], reason: 'revoked_by_user', origin }),
  );
  if (!revoked.length) throw new NotFoundError('No such session.');
}

/** Narrows a query on `sessions` (or an alias) to live ones: not revoked, not expired, not idle. */
export function whereLive<Q extends Knex.QueryBuilder>(query: Q, inactivitySeconds: number, table = 'sessions'): Q {
  return query
    .whereNull(`${table}.revoked_at`)
    .whereRaw(`${table}.expires_at > now()`)
    .whereRaw(`${table}.last_active_at > now() - make_interval(secs => COALESCE(${table}.idle_timeout_seconds, ?))`, [
      inactivitySeconds,
    ]) as Q;
}

/**
 * Whether a session is live, for bearer authentication: Redis answers for revoked sessions at once
 * and for live ones seen in the last minute; PostgreSQL decides the rest. (Suspending or deleting a
 * user revokes their sessions, so the user's status needs no separate cache.)
 */
export async function isSessionLive(app: Context, sessionId: string, userId: string): Promise<boolean> {
  const idle = app.config.sessions.inactivitySeconds;
  const cached = await cachedLiveness(app, sessionId, userId, idle);
  if (cached !== 'unknown') return cached === 'live';
  const session = await whereLive(app.db('sessions').join('users', 'users.id', 'sessions.user_id'), idle)
    .where('sessions.id', sessionId)
    .where('sessions.user_id', userId)
    .whereIn('users.status', SIGN_IN_STATUSES)
    .first<LiveSession | undefined>('sessions.id', 'sessions.user_id', 'sessions.expires_at', 'sessions.last_active_at');
  if (!session) return false;
  await rememberLive(app, session);
  return true;
}

/** A live session, with the end that comes first (absolute expiry or inactivity). */
export interface LiveSessionRow extends Pick<
  Session,
  'id' | 'device_fingerprint' | 'user_agent' | 'ip' | 'country' | 'persistent' | 'created_at' | 'last_active_at'
> {
  ends_at: Date;
}

const liveSessions = (db: Knex, idle: number) =>
  whereLive(db('sessions'), idle)
    .orderBy('created_at', 'desc')
    .select<LiveSessionRow[]>(
      'id',
      'device_fingerprint',
      'user_agent',
      'ip',
      'country',
      'persistent',
      'created_at',
      'last_active_at',
      db.raw('LEAST(expires_at, last_active_at + make_interval(secs => COALESCE(idle_timeout_seconds, ?))) AS ends_at', [idle]),
    );

/**
 * The user's live sessions, newest first, from the read replica when there is one. Two things a
 * user would notice are repaired from what is known for certain. The caller's own session is live
 * (authentication has just checked it): when the replica has not replayed it yet (right after
 * sign-in) it is read from the primary, so the list never lacks the session asking for it. And a
 * session revoked moments ago (its tombstone is in Redis before the revocation commits) is left
 * out while the replica still shows it, so "revoke, then list" does not bring it back. What lag can
 * still cost: a session started moments ago on another device appears once the replica has it.
 */
export async function listSessions(app: Context, userId: string, currentSessionId: string | null): Promise<LiveSessionRow[]> {
  const idle = app.config.sessions.inactivitySeconds;
  const listed = await app.readReplica(async (db) => liveSessions(db, idle).where({ user_id: userId }));
  if (app.dbReplica === app.db) return listed;
  const revoked = await revokedAmong(
    app,
    listed.map((s) => s.id),
  );
  const sessions = listed.filter((s) => !revoked.has(s.id));
  if (!currentSessionId || sessions.some((s) => s.id === currentSessionId)) return sessions;
  const current = await liveSessions(app.db, idle).where({ id: currentSessionId, user_id: userId });
  return [...sessions, ...current].sort((a, b) => b.created_at.getTime() - a.created_at.getTime());
}
