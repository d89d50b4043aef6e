// Who is calling. Bearer access tokens are verified (algorithm, issuer, audience, type, our own
// keys), and their session must still be live (shared/auth/sessions.ts: a revocation tombstone in
// Redis, else PostgreSQL or a short-lived hint), so a revoked session stops working at once on
// every api copy. Operators may also use Basic auth (email and password) for Bull Board, whose
// page and asset requests carry no bearer header.
import crypto from 'node:crypto';
import type { Middleware } from 'koa';
import compose from 'koa-compose';
import type { Context } from '../../shared/context';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors';
import { InvalidTokenError } from '../../shared/crypto/access-tokens';
import type { EffectivePermission } from '../../shared/authz/permissions';
import { holds } from '../../shared/authz/service';
import { signedInRecently } from '../../shared/auth/actor';
import { isSessionLive } from '../../shared/auth/sessions';
import { isPrincipalLive } from '../../shared/users/services';
import { checkPasswordSignIn, INVALID_CREDENTIALS } from '../../shared/auth/sign-in';
import type { AppState, Principal } from '../http/state';

const INVALID = 'The access token is missing, invalid or expired.';

async function bearerPrincipal(app: Context, token: string, withPermissions = false): Promise<Principal> {
  let claims;
  try {
    claims = await app.accessTokens.verify(token);
  } catch (err) {
    if (err instanceof InvalidTokenError) throw new UnauthorizedError(INVALID, 'invalid_token');
    throw err;
  }
  // Read at the same time as the session check; used only once the session is known live.
  const permissions = withPermissions ? app.permissions.get(claims.sub) : undefined;
  permissions?.catch(() => undefined);
  const live = claims.sid ? await isSessionLive(app, claims.sid, claims.sub) : await isPrincipalLive(app, claims.sub, claims.cv);
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
async function basicPrincipal(app: Context, encoded: string, ip: string | null): Promise<Principal> {
  const basic = (userId: string): Principal => ({ userId, sessionId: null, roles: [], amr: ['pwd'], token: null, via: 'basic' });
  const fingerprint = crypto.createHash('sha256').update(encoded).digest('hex');
  const cached = basicCache.get(fingerprint);
  if (cached && cached.until > Date.now()) {
    const user = await app.db('users').where({ id: cached.userId, status: 'active', password_hash: cached.passwordHash }).first('id');
    if (user) return basic(user.id);
    basicCache.delete(fingerprint);
  }
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) throw new UnauthorizedError(INVALID_CREDENTIALS, 'invalid_credentials');
  const user = await checkPasswordSignIn(app, decoded.slice(0, colon), decoded.slice(colon + 1), ip);
  // Operators must have confirmed their email.
  if (user.status !== 'active') throw new UnauthorizedError(INVALID_CREDENTIALS, 'invalid_credentials');
  if (basicCache.size > 1000) basicCache.clear();
  basicCache.set(fingerprint, { userId: user.id, passwordHash: user.password_hash!, until: Date.now() + BASIC_CACHE_MS });
  return basic(user.id);
}

async function principalOf(
  app: Context,
  header: string,
  basic?: { ip: string | null },
  withPermissions = false,
): Promise<Principal | null> {
  const [scheme, value] = header.split(' ', 2);
  if (!scheme || !value) return null;
  if (scheme.toLowerCase() === 'bearer') return bearerPrincipal(app, value.trim(), withPermissions);
  if (basic && scheme.toLowerCase() === 'basic') return basicPrincipal(app, value.trim(), basic.ip);
  return null;
}

/** The caller's effective permissions: what authentication read, else the permission cache; never the roles claim. */
export function callerPermissions(app: Context, principal: Principal): Promise<EffectivePermission[]> {
  return principal.permissions ?? app.permissions.get(principal.userId);
}

async function requireHolds(app: Context, principal: Principal, permission: string): Promise<void> {
  if (!holds(await callerPermissions(app, principal), permission)) throw new ForbiddenError(`This needs the ${permission} permission.`);
}

/** Requires that the authenticated caller holds `permission`. */
export function requirePermission(app: Context, permission: string): Middleware<AppState> {
  return async (ctx, next) => {
    await requireHolds(app, ctx.state.principal!, permission);
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
 * Requires a person signed in to a live session: profile, password, MFA and sessions belong to
 * people. A service principal (its token has no session) gets 403 and changes nothing.
 */
export function requirePerson(app: Context): Middleware<AppState> {
  const authenticated = requireUser(app);
  const personOnly: Middleware<AppState> = async (ctx, next) => {
    if (!ctx.state.principal!.sessionId) {
      throw new ForbiddenError(
        'This is for people signed in to a session; service principals have no profile, password, MFA or sessions.',
        'person_required',
      );
    }
    await next();
  };
  return compose([authenticated, personOnly]);
}

/**
 * Requires an operator: Basic or Bearer credentials of a user holding `permission`.
 * 401 (with a Basic challenge, so a browser asks) without credentials, 403 for anyone else.
 */
export function requireOperator(app: Context, permission: string): Middleware<AppState> {
  return async (ctx, next) => {
    let principal: Principal | null;
    try {
      principal = await principalOf(app, ctx.get('Authorization'), { ip: ctx.state.origin.ip });
      if (!principal) throw new UnauthorizedError();
    } catch (err) {
      if (err instanceof UnauthorizedError) err.headers['WWW-Authenticate'] = 'Basic realm="operators", charset="UTF-8"';
      throw err;
    }
    await requireHolds(app, principal, permission);
    ctx.state.principal = principal;
    await next();
  };
}

/** Requires a sign-in less than 5 minutes old: a stolen access token alone cannot do this. */
export function requireRecentSignIn(): Middleware<AppState> {
  return async (ctx, next) => {
    if (!signedInRecently(ctx.state.principal!.token?.auth_time)) {
      throw new ForbiddenError('Sign in again (within the last 5 minutes) to do this.', 'reauthentication_required');
    }
    await next();
  };
}
