// Sessions and their tokens: starting a session (the end of every sign-in: password, MFA,
// Google), rotating its refresh token, and revoking sessions. A refresh token is opaque, stored
// as a SHA-256 hash, and rotated on every use; presenting one that was already rotated is reuse,
// and revokes every session of the user, except within the short grace window where the same
// successor pair is handed out again (two tabs refreshing at once).
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Context } from '../../shared/context';
import { hashOpaqueToken, newOpaqueToken, type AuthMethod } from '../../shared/crypto/access-tokens';
import { recordEvent, type EventOrigin } from '../../shared/events/outbox';
import { writeEmail } from '../../shared/email/outbox';
import { enqueueEmail } from '../../shared/queues';
import { UnauthorizedError } from '../../shared/errors';
import { listRoleNames, namesOf, roleNamesQuery } from '../../shared/authz/permissions';
import type { RevokeReason, User } from '../../shared/models';
import type { Limiter } from '../http/rate-limit';
import { markRevoked } from './session-cache';

export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
  country: string | null;
  deviceFingerprint: string | null;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: 'Bearer';
  expires_in: number;
  session_id: string;
  /** Whether the refresh cookie should outlive the browser (persistent sessions only). */
  persistent: boolean;
  refresh_expires_at: string;
  user: PublicUser;
}

export interface PublicUser {
  id: string;
  email: string;
  name: string;
  email_verified: boolean;
  status: string;
  mfa_enabled: boolean;
  roles: string[];
}

const INVALID_REFRESH = 'The refresh token is invalid or expired.';

export function publicUser(
  user: Pick<User, 'id' | 'email' | 'name' | 'email_verified' | 'status' | 'mfa_enabled'>,
  roles: string[],
): PublicUser {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    email_verified: user.email_verified,
    status: user.status,
    mfa_enabled: user.mfa_enabled,
    roles,
  };
}

/** The body's fingerprint when given, else one derived from the user agent. */
export function deviceFingerprintOf(given: string | undefined, userAgent: string | null): string | null {
  if (given) return given;
  return userAgent ? `ua:${crypto.createHash('sha256').update(userAgent).digest('hex').slice(0, 32)}` : null;
}

const originOf = (client: ClientInfo, actorId: string): EventOrigin => ({ actorId, ip: client.ip, userAgent: client.userAgent });

/** Starts a session for a user who has just proved who they are, and returns its first token pair. */
export async function startSession(
  app: Context,
  user: User,
  client: ClientInfo,
  options: { persistent: boolean; amr: AuthMethod[]; method: 'password' | 'google' },
): Promise<TokenPair> {
  const { sessions } = app.config;
  const lifetime = options.persistent ? sessions.persistentTtlSeconds : sessions.ttlSeconds;
  const refresh = newOpaqueToken();
  const { session, newDevice, noticeEmailId, roles } = await app.db.transaction(async (trx) => {
    const seenBefore = await trx('sessions')
      .where({ user_id: user.id })
      .select(trx.raw('bool_or(device_fingerprint = ?) AS seen, count(*)::int AS n', [client.deviceFingerprint ?? '']));
    const newDevice = !seenBefore[0]?.seen;
    const [session] = await trx('sessions')
      .insert({
        user_id: user.id,
        device_fingerprint: client.deviceFingerprint,
        user_agent: client.userAgent,
        ip: client.ip,
        country: client.country,
        persistent: options.persistent,
        amr: options.amr,
        expires_at: trx.raw(`now() + make_interval(secs => ?)`, [lifetime]),
      })
      .returning('*');
    await trx('refresh_tokens').insert({ session_id: session.id, token_hash: refresh.hash });
    await trx('users').where({ id: user.id }).update({ last_login_at: trx.fn.now() });
    const origin = originOf(client, user.id);
    await recordEvent(
      trx,
      { type: 'session.created', userId: user.id, data: { session_id: session.id, persistent: options.persistent } },
      origin,
    );
    await recordEvent(
      trx,
      { type: 'user.login', userId: user.id, data: { session_id: session.id, method: options.method, new_device: newDevice } },
      origin,
    );
    // No notice for a first sign-in ever: every device is new then.
    const noticeEmailId =
      newDevice && seenBefore[0]?.n > 0
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
    return { session, newDevice, noticeEmailId, roles: await listRoleNames(trx, user.id) };
  });
  if (noticeEmailId) await enqueueAfterCommit(app, noticeEmailId);
  app.logger.debug({ sessionId: session.id, newDevice }, 'session started');
  return pairFor(app, user, roles, session, refresh.token);
}

/** Enqueues a committed email; a queue outage leaves it to the reconciler rather than failing the request. */
export async function enqueueAfterCommit(app: Context, emailId: string): Promise<void> {
  await enqueueEmail(app.queues, emailId).catch((err: Error) =>
    app.logger.warn({ emailId, error: err.message }, 'email left for the reconciler'),
  );
}

async function pairFor(
  app: Context,
  user: Pick<User, 'id' | 'email' | 'name' | 'email_verified' | 'status' | 'mfa_enabled'>,
  roles: string[],
  session: { id: string; persistent: boolean; amr: string[]; auth_time: Date; expires_at: Date },
  refreshToken: string,
): Promise<TokenPair> {
  const accessToken = await app.accessTokens.sign({
    sub: user.id,
    sid: session.id,
    roles,
    amr: session.amr as AuthMethod[],
    authTime: session.auth_time,
  });
  return {
    access_token: accessToken,
    refresh_token: refreshToken,
    token_type: 'Bearer',
    expires_in: app.accessTokens.ttlSeconds,
    session_id: session.id,
    persistent: session.persistent,
    refresh_expires_at: new Date(session.expires_at).toISOString(),
    user: publicUser(user, roles),
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
  const rows = await roleNamesQuery(trx, row.user_id)
    .with('rotated', trx.raw('UPDATE refresh_tokens SET rotated_at = now() WHERE id = ?', [row.token_id]))
    .with(
      'successor',
      trx.raw('INSERT INTO refresh_tokens (session_id, token_hash, parent_id) VALUES (?, ?, ?)', [
        row.session_id,
        successorHash,
        row.token_id,
      ]),
    )
    .with('touched', trx.raw('UPDATE sessions SET last_active_at = now(), ip = COALESCE(?::inet, ip) WHERE id = ?', [ip, row.session_id]));
  return namesOf(rows);
}

/**
 * Rotates a refresh token. The token's row is locked, so concurrent refreshes with one token
 * queue behind the first: it rotates and leaves the successor pair (encrypted) in Redis for the
 * grace window; the others find the row rotated and get that same pair, or, outside the window,
 * are treated as reuse.
 */
export async function refreshSession(app: Context, presented: string, client: ClientInfo, limiter: Limiter): Promise<TokenPair> {
  const hash = hashOpaqueToken(presented);
  const graceSeconds = app.config.refreshReuseIntervalSeconds;
  const outcome = await app.db.transaction(async (trx) => {
    const row = await trx('refresh_tokens as rt')
      .join('sessions as s', 's.id', 'rt.session_id')
      .join('users as u', 'u.id', 's.user_id')
      .where('rt.token_hash', hash)
      .forUpdate('rt')
      .first(
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
        'u.email',
        'u.name',
        'u.email_verified',
        'u.status',
        'u.mfa_enabled',
      );
    if (!row) throw new UnauthorizedError(INVALID_REFRESH, 'invalid_refresh_token');
    if (row.rotated_at) {
      if (graceSeconds > 0 && row.in_grace && !row.revoked_at) {
        const cached = await app.redis.get(successorKey(app, hash));
        if (cached) return { kind: 'replay' as const, pair: JSON.parse(app.kms.decrypt(cached, successorKey(app, hash))) as TokenPair };
      }
      // A rotated token presented again: someone holds a copy. End every session of the user.
      await revokeSessions(app, trx, {
        userId: row.user_id,
        reason: 'refresh_token_reuse',
        origin: { ip: client.ip, userAgent: client.userAgent },
      });
      return { kind: 'reuse' as const, userId: row.user_id as string };
    }
    if (row.revoked_at || row.expired || row.idle || !['active', 'pending_verification'].includes(row.status)) {
      throw new UnauthorizedError(INVALID_REFRESH, 'invalid_refresh_token');
    }
    const next = newOpaqueToken();
    // The rate limit (Redis) and the rotation (PostgreSQL) at once: over the limit, the
    // transaction rolls back. The row lock is held for as few round trips as possible.
    const [, roles] = await Promise.all([limiter.hit(row.session_id), rotate(trx, row, next.hash, client.ip)]);
    const user = {
      id: row.user_id,
      email: row.email,
      name: row.name,
      email_verified: row.email_verified,
      status: row.status,
      mfa_enabled: row.mfa_enabled,
    };
    const session = { id: row.session_id, persistent: row.persistent, amr: row.amr, auth_time: row.auth_time, expires_at: row.expires_at };
    const pair = await pairFor(app, user, roles, session, next.token);
    // Before the commit releases the row lock, so every waiting request finds it.
    if (graceSeconds > 0) {
      await app.redis.set(successorKey(app, hash), app.kms.encrypt(JSON.stringify(pair), successorKey(app, hash)), 'EX', graceSeconds);
    }
    return { kind: 'rotated' as const, pair };
  });
  if (outcome.kind === 'reuse') {
    app.logger.warn({ userId: outcome.userId }, 'refresh token reuse: every session of the user revoked');
    throw new UnauthorizedError(INVALID_REFRESH, 'invalid_refresh_token');
  }
  return outcome.pair;
}

/** Revokes live sessions (one, some, or all of a user's), with one session.revoked event each. */
export async function revokeSessions(
  app: Pick<Context, 'redis' | 'key' | 'accessTokens'>,
  trx: Knex.Transaction,
  target: { userId: string; sessionIds?: string[]; reason: RevokeReason; origin?: EventOrigin },
): Promise<string[]> {
  const query = trx('sessions').where({ user_id: target.userId }).whereNull('revoked_at');
  if (target.sessionIds) query.whereIn('id', target.sessionIds);
  const revoked: { id: string }[] = await query.update({ revoked_at: trx.fn.now(), revoked_reason: target.reason }).returning('id');
  // Before the commit: every api copy refuses these sessions' access tokens from now on.
  await markRevoked(
    app,
    revoked.map((r) => r.id),
  );
  for (const { id } of revoked) {
    await recordEvent(
      trx,
      { type: 'session.revoked', userId: target.userId, data: { session_id: id, reason: target.reason } },
      target.origin,
    );
  }
  return revoked.map((r) => r.id);
}

/** Narrows a query on `sessions` (or an alias) to live ones: not revoked, not expired, not idle. */
export function whereLive(query: Knex.QueryBuilder, inactivitySeconds: number, table = 'sessions'): Knex.QueryBuilder {
  return query
    .whereNull(`${table}.revoked_at`)
    .whereRaw(`${table}.expires_at > now()`)
    .whereRaw(`${table}.last_active_at > now() - make_interval(secs => ?)`, [inactivitySeconds]);
}

export interface SessionView {
  id: string;
  device_fingerprint: string | null;
  user_agent: string | null;
  ip: string | null;
  country: string | null;
  persistent: boolean;
  created_at: string;
  last_active_at: string;
  expires_at: string;
  current: boolean;
}

/** The user's live sessions, newest first; `expires_at` is whichever end comes first. */
export async function listSessions(app: Context, userId: string, currentSessionId: string | null): Promise<SessionView[]> {
  const idle = app.config.sessions.inactivitySeconds;
  const rows = await whereLive(app.db('sessions').where({ user_id: userId }), idle)
    .orderBy('created_at', 'desc')
    .select('*', app.db.raw('LEAST(expires_at, last_active_at + make_interval(secs => ?)) AS ends_at', [idle]));
  return rows.map((s: Record<string, any>) => ({
    id: s.id,
    device_fingerprint: s.device_fingerprint,
    user_agent: s.user_agent,
    ip: s.ip,
    country: s.country,
    persistent: s.persistent,
    created_at: s.created_at.toISOString(),
    last_active_at: s.last_active_at.toISOString(),
    expires_at: s.ends_at.toISOString(),
    current: s.id === currentSessionId,
  }));
}
