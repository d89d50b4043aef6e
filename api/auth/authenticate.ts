// Who is calling. Bearer access tokens are verified (algorithm, issuer, audience, type, our own
// keys), and their session must still be live (a revocation tombstone in Redis, else PostgreSQL
// or a short-lived hint), so a revoked session stops working at once on every api copy. Operators may also use Basic auth (email and password) for Bull Board,
// whose page and asset requests carry no bearer header.
import crypto from 'node:crypto';
import type { Middleware } from 'koa';
import type { Context } from '../../shared/context';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors';
import { InvalidTokenError } from '../../shared/crypto/access-tokens';
import type { AppState, Principal } from '../http/state';
import type { EffectivePermission } from '../../shared/authz/permissions';
import { whereLive } from './sessions';
import { cachedLiveness, rememberLive } from './session-cache';
import { checkPasswordSignIn, INVALID_CREDENTIALS, loginLimiters, type LoginLimiters } from './service';

const INVALID = 'The access token is missing, invalid or expired.';

/**
 * Whether the token's session is live: Redis answers for revoked sessions at once and for live
 * ones seen in the last minute; PostgreSQL decides the rest. (Suspending or deleting a user
 * revokes their sessions, so the user's status needs no separate cache.)
 */
async function sessionIsLive(ctx: Context, sessionId: string, userId: string): Promise<boolean> {
  const idle = ctx.config.sessions.inactivitySeconds;
  const cached = await cachedLiveness(ctx, sessionId, userId, idle);
  if (cached !== 'unknown') return cached === 'live';
  const session = await whereLive(ctx.db('sessions').join('users', 'users.id', 'sessions.user_id'), idle)
    .where({ 'sessions.id': sessionId, 'sessions.user_id': userId })
    .whereIn('users.status', ['active', 'pending_verification'])
    .first('sessions.id', 'sessions.user_id', 'sessions.expires_at', 'sessions.last_active_at');
  if (!session) return false;
  await rememberLive(ctx, session);
  return true;
}

async function bearerPrincipal(ctx: Context, token: string, withPermissions = false): Promise<Principal> {
  let claims;
  try {
    claims = await ctx.accessTokens.verify(token);
  } catch (err) {
    if (err instanceof InvalidTokenError) throw new UnauthorizedError(INVALID, 'invalid_token');
    throw err;
  }
  // Read at the same time as the session check; used only once the session is known live.
  const permissions = withPermissions ? ctx.permissions.get(claims.sub) : undefined;
  permissions?.catch(() => undefined);
  const live = claims.sid
    ? await sessionIsLive(ctx, claims.sid, claims.sub)
    : await ctx.db('users').where({ id: claims.sub }).whereIn('status', ['active', 'pending_verification']).first('id');
  if (!live) throw new UnauthorizedError(INVALID, 'invalid_token');
  return {
    userId: claims.sub,
    sessionId: claims.sid ?? null,
    roles: claims.roles,
    amr: claims.amr,
    token: claims,
    via: 'bearer',
    permissions,
  };
}

/**
 * Short-lived memory of verified Basic credentials: Bull Board polls, and bcrypt costs ~0.25 s.
 * An entry holds the password hash it was verified against, so a changed password ends it.
 */
const basicCache = new Map<string, { userId: string; passwordHash: string; until: number }>();
const BASIC_CACHE_MS = 60_000;

/** Basic credentials are a password sign-in: the same check and limits as the login endpoint. */
async function basicPrincipal(ctx: Context, encoded: string, ip: string | null, limits: LoginLimiters): Promise<Principal> {
  const fingerprint = crypto.createHash('sha256').update(encoded).digest('hex');
  const cached = basicCache.get(fingerprint);
  if (cached && cached.until > Date.now()) {
    const user = await ctx.db('users').where({ id: cached.userId, status: 'active', password_hash: cached.passwordHash }).first('id');
    if (user) return { userId: user.id, sessionId: null, roles: [], amr: ['pwd'], token: null, via: 'basic' };
    basicCache.delete(fingerprint);
  }
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) throw new UnauthorizedError(INVALID_CREDENTIALS, 'invalid_credentials');
  const user = await checkPasswordSignIn(ctx, decoded.slice(0, colon), decoded.slice(colon + 1), ip, limits);
  // Operators must have confirmed their email.
  if (user.status !== 'active') throw new UnauthorizedError(INVALID_CREDENTIALS, 'invalid_credentials');
  if (basicCache.size > 1000) basicCache.clear();
  basicCache.set(fingerprint, { userId: user.id, passwordHash: user.password_hash!, until: Date.now() + BASIC_CACHE_MS });
  return { userId: user.id, sessionId: null, roles: [], amr: ['pwd'], token: null, via: 'basic' };
}

async function principalOf(
  ctx: Context,
  header: string,
  basic?: { ip: string | null; limits: LoginLimiters },
  withPermissions = false,
): Promise<Principal | null> {
  const [scheme, value] = header.split(' ', 2);
  if (!scheme || !value) return null;
  if (scheme.toLowerCase() === 'bearer') return bearerPrincipal(ctx, value.trim(), withPermissions);
  if (basic && scheme.toLowerCase() === 'basic') return basicPrincipal(ctx, value.trim(), basic.ip, basic.limits);
  return null;
}

/** The caller's effective permissions: what authentication read, else the permission cache; never the roles claim. */
export function callerPermissions(app: Context, principal: Principal): Promise<EffectivePermission[]> {
  return principal.permissions ?? app.permissions.get(principal.userId);
}

export async function callerHolds(app: Context, principal: Principal, permission: string): Promise<boolean> {
  return (await callerPermissions(app, principal)).some((p) => p.name === permission);
}

/** Requires that the authenticated caller holds `permission`. */
export function requirePermission(app: Context, permission: string): Middleware<AppState> {
  return async (ctx, next) => {
    if (!(await callerHolds(app, ctx.state.principal!, permission))) throw new ForbiddenError(`This needs the ${permission} permission.`);
    await next();
  };
}

/**
 * Requires a valid access token whose session is live. Routes that check the caller's own
 * permissions ask for them here (`withPermissions`), to read them with the session.
 */
export function requireUser(app: Context, options: { withPermissions?: boolean } = {}): Middleware<AppState> {
  return async (ctx, next) => {
    const principal = await principalOf(app, ctx.get('Authorization'), undefined, options.withPermissions);
    if (!principal) throw new UnauthorizedError();
    ctx.state.principal = principal;
    await next();
  };
}

/**
 * Requires an operator: Basic or Bearer credentials of a user holding `permission`.
 * 401 (with a Basic challenge, so a browser asks) without credentials, 403 for anyone else.
 */
export function requireOperator(app: Context, permission: string): Middleware<AppState> {
  const limits = loginLimiters(app);
  return async (ctx, next) => {
    let principal: Principal | null;
    try {
      principal = await principalOf(app, ctx.get('Authorization'), { ip: ctx.state.origin.ip, limits });
      if (!principal) throw new UnauthorizedError();
    } catch (err) {
      if (err instanceof UnauthorizedError) err.headers['WWW-Authenticate'] = 'Basic realm="operators", charset="UTF-8"';
      throw err;
    }
    if (!(await callerHolds(app, principal, permission))) throw new ForbiddenError(`This needs the ${permission} permission.`);
    ctx.state.principal = principal;
    await next();
  };
}

/** Sensitive acts that cannot ask for a password accept a sign-in at most this old ("sudo mode"). */
export const RECENT_SIGN_IN_SECONDS = 300;

export function signedInRecently(principal: Principal): boolean {
  return Date.now() / 1000 - (principal.token?.auth_time ?? 0) <= RECENT_SIGN_IN_SECONDS;
}

/** Requires a sign-in less than 5 minutes old: a stolen access token alone cannot do this. */
export function requireRecentSignIn(): Middleware<AppState> {
  return async (ctx, next) => {
    if (!signedInRecently(ctx.state.principal!))
      throw new ForbiddenError('Sign in again (within the last 5 minutes) to do this.', 'reauthentication_required');
    await next();
  };
}
