// Step-up for sensitive operations (revealing or rotating trading credentials): a route adds
// `requireVerificationToken(app)` after `requireUser(app)`, and the caller sends the token of
// POST /v1/mfa/totp/verify in `X-Verification-Token`. The token is bound to the user and the
// session it was issued in, and may be reused within its 5 minutes.
import type { Middleware } from 'koa';
import type { Context } from '../../shared/context';
import { ForbiddenError } from '../../shared/errors';
import { checkVerificationToken } from '../../shared/mfa/service';
import type { PasswordlessProof } from '../../shared/auth/reauthentication';
import { actorOf, type AppState } from '../http/state';

export const VERIFICATION_HEADER = 'X-Verification-Token';

/** What a request brings instead of a password, for accounts without one (shared/auth/reauthentication.ts). */
export function passwordlessProof(ctx: { get(name: string): string; state: AppState }): PasswordlessProof {
  return { verificationToken: ctx.get(VERIFICATION_HEADER) || undefined, authTime: ctx.state.principal?.token?.auth_time };
}

export function requireVerificationToken(app: Context): Middleware<AppState> {
  return async (ctx, next) => {
    const token = ctx.get(VERIFICATION_HEADER);
    if (!(await checkVerificationToken(app, actorOf(ctx.state), token))) {
      throw new ForbiddenError(
        token
          ? 'The verification token is invalid, expired or from another session; verify again with POST /v1/mfa/totp/verify.'
          : `This needs a recent MFA verification: send the token of POST /v1/mfa/totp/verify in ${VERIFICATION_HEADER}.`,
        'verification_required',
      );
    }
    await next();
  };
}
