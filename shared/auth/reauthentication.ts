// How a user without a password (Google only) confirms a sensitive act that would otherwise ask
// for it (DESIGN.md, "Step-up"): a step-up token of this session, or a sign-in less than 5
// minutes old. One rule for every such act: deleting the account, turning MFA off, changing the
// email address.
import type { Context } from '../context';
import { ForbiddenError } from '../errors';
import { checkVerificationToken } from '../mfa/service';
import { signedInRecently, type Actor } from './actor';

/** What the caller brought instead of a password. */
export interface PasswordlessProof {
  /** The `X-Verification-Token` of POST /v1/mfa/totp/verify, bound to the actor's session. */
  verificationToken?: string;
  /** `auth_time` of the actor's access token (seconds since the epoch): when the session signed in. */
  authTime?: number | null;
}

/** Throws 403 `reauthentication_required` unless the proof holds; `act` completes "…to <act>." */
export async function confirmWithoutPassword(app: Context, actor: Actor, proof: PasswordlessProof, act: string): Promise<void> {
  if (signedInRecently(proof.authTime)) return;
  if (await checkVerificationToken(app, actor, proof.verificationToken)) return;
  throw new ForbiddenError(
    `Confirm with an X-Verification-Token (POST /v1/mfa/totp/verify), or sign in again (within the last 5 minutes), to ${act}.`,
    'reauthentication_required',
  );
}
