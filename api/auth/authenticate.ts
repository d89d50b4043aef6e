// Who is calling. Bearer access tokens are verified (algorithm, issuer, audience, type, our own
// keys), and their session must still be live (shared/auth/sessions.ts: a revocation tombstone in
// Redis, else PostgreSQL or a short-lived hint), so a revoked session stops working at once on
// every api copy. (Operators reach Bull Board with a session cookie instead: api/admin/.)
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
    permissions,
  };
}

async function principalOf(app: Context, header: string, withPermissions = false): Promise<Principal | null> {
  const [scheme, value] = header.split(' ', 2);
  if (!scheme || !value || scheme.toLowerCase() !== 'bearer') return null;
  return bearerPrincipal(app, value.trim(), withPermissions);
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
    const principal = await principalOf(app, ctx.get('Authorization'), options.withPermissions);
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

/** Requires a sign-in less than 5 minutes old: a stolen access token alone cannot do this. */
export function requireRecentSignIn(): Middleware<AppState> {
  return async (ctx, next) => {
    if (!signedInRecently(ctx.state.principal!.token?.auth_time)) {
      throw new ForbiddenError('Sign in again (within the last 5 minutes) to do this.', 'reauthentication_required');
    }
    await next();
  };
}
