// Operators' sessions: what the Bull Board sign-in (/admin/login) opens (DESIGN.md, "Operators'
// access to Bull Board"). They are sessions like any other (listed, revocable, ended by a password
// change, a reset or refresh-token reuse), held by an HttpOnly cookie scoped to /admin instead of
// refresh tokens: 8 hours at most, 30 idle minutes. Every request of the dashboard checks the
// session in PostgreSQL, and the operator's permission and second factor with it.
import type { Context } from '../context';
import { hashOpaqueToken, newOpaqueToken, type AuthMethod } from '../crypto/access-tokens';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { holds } from '../authz/service';
import { SIGN_IN_STATUSES } from '../users/status';
import { openSession, revokeSessions, whereLive, type ClientInfo, type SignedInUser } from './sessions';
import type { Actor } from './actor';

/** What an operator needs: the dashboard, its pages, its API. */
export const OPERATOR_PERMISSION = 'queues:admin';
export const OPERATOR_SESSION_SECONDS = 8 * 3600;
export const OPERATOR_IDLE_SECONDS = 30 * 60;
/** Activity is recorded at most this often: the dashboard polls every few seconds. */
const TOUCH_EVERY_SECONDS = 60;

export interface OperatorSession {
  /** The cookie's value: shown to the browser, stored only as a hash. */
  cookieToken: string;
  expiresAt: Date;
}

/** Whether the operator's sign-in satisfies the console's second-factor rule in this environment. */
export const operatorMfaSatisfied = (app: Pick<Context, 'config'>, amr: readonly string[]): boolean =>
  app.config.environment === 'development' || amr.includes('mfa');

export async function holdsOperatorPermission(app: Context, userId: string): Promise<boolean> {
  return holds(await app.permissions.get(userId), OPERATOR_PERMISSION);
}

export async function startOperatorSession(
  app: Context,
  user: SignedInUser,
  client: ClientInfo,
  amr: AuthMethod[],
): Promise<OperatorSession> {
  const cookie = newOpaqueToken();
  const { session } = await openSession(app, user, client, {
    persistent: false,
    amr,
    method: 'password',
    lifetimeSeconds: OPERATOR_SESSION_SECONDS,
    idleSeconds: OPERATOR_IDLE_SECONDS,
    holder: { cookieTokenHash: cookie.hash },
  });
  return { cookieToken: cookie.token, expiresAt: new Date(session.expires_at) };
}

/**
 * The operator behind a cookie, when its session is live, its user may sign in and still holds
 * the permission, and the sign-in had the second factor the environment asks for; null otherwise.
 */
export async function operatorFromCookie(app: Context, cookieToken: string): Promise<Actor | null> {
  if (cookieToken.length > 512) return null;
  const session = await whereLive(app.db('sessions').join('users', 'users.id', 'sessions.user_id'), app.config.sessions.inactivitySeconds)
    .where('sessions.cookie_token_hash', hashOpaqueToken(cookieToken))
    .whereIn('users.status', SIGN_IN_STATUSES)
    .first<{ id: string; user_id: string; amr: string[]; stale: boolean } | undefined>(
      'sessions.id',
      'sessions.user_id',
      'sessions.amr',
      app.db.raw('sessions.last_active_at < now() - make_interval(secs => ?) AS stale', [TOUCH_EVERY_SECONDS]),
    );
  if (!session || !operatorMfaSatisfied(app, session.amr) || !(await holdsOperatorPermission(app, session.user_id))) return null;
  if (session.stale) await app.db('sessions').where({ id: session.id }).update({ last_active_at: app.db.fn.now() });
  return { userId: session.user_id, sessionId: session.id };
}

/** Signs the operator out: the session behind the cookie ends (a cookie that is no session does nothing). */
export async function endOperatorSession(app: Context, cookieToken: string, origin: EventOrigin): Promise<void> {
  const session = await app
    .db('sessions')
    .where({ cookie_token_hash: hashOpaqueToken(cookieToken) })
    .first('id', 'user_id');
  if (!session) return;
  await app.db.transaction(async (trx) => {
    const revoked = await revokeSessions(app, trx, { userId: session.user_id, sessionIds: [session.id], reason: 'logout', origin });
    // A session that had already ended (signed out elsewhere, expired) is not signed out twice.
    if (!revoked.length) return;
    const data = { session_id: session.id, all_devices: false };
    await recordEvent(trx, { type: 'user.logout', userId: session.user_id, data }, { ...origin, actorId: session.user_id });
  });
}

/** What an operator did through the dashboard, recorded with the operator as actor. */
export async function recordQueueAction(
  app: Context,
  operator: Actor,
  action: { queue: string; action: string; jobId: string | null },
  origin: EventOrigin,
): Promise<void> {
  await app.db.transaction((trx) =>
    recordEvent(
      trx,
      { type: 'queue.action', userId: operator.userId, data: { queue: action.queue, action: action.action, job_id: action.jobId } },
      { ...origin, actorId: operator.userId },
    ),
  );
}
