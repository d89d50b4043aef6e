// Step-up for sensitive operations (revealing or rotating trading credentials): a route adds
// `requireVerificationToken(app)` after `requireUser(app)`, and the caller sends the token of
// POST /v1/mfa/totp/verify in `X-Verification-Token`. The token is bound to the user and the
// session it was issued in, and may be reused within its 5 minutes.
import type { Middleware } from 'koa';
import type { Context } from '../../shared/context';
import { assertVerificationToken } from '../../shared/mfa/service';
import type { PasswordlessProof } from '../../shared/auth/reauthentication';
import { actorOf, type AppState } from '../http/state';

export const VERIFICATION_HEADER = 'X-Verification-Token';

/** What a request brings instead of a password, for accounts without one (shared/auth/reauthentication.ts). */
export function passwordlessProof(ctx: { get(name: string): string; state: AppState }): PasswordlessProof {
  return { verificationToken: ctx.get(VERIFICATION_HEADER) || undefined, authTime: ctx.state.principal?.token?.auth_time };
}

export function requireVerificationToken(app: Context): Middleware<AppState> {
  return async (ctx, next) => {
    await assertVerificationToken(app, actorOf(ctx.state), ctx.get(VERIFICATION_HEADER) || undefined);
    await next();
  };
}
