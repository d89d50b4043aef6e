// Rules of multi-factor authentication: TOTP set-up and enabling, backup codes, the second-factor
// check (used by sign-in's challenge too, shared/auth/sign-in.ts), step-up verification tokens,
// and turning MFA off. Every TOTP check goes
// through `verifyTotp` (./totp.ts); every second-factor check (TOTP or backup code) through
// `checkSecondFactor` below. Wrong codes at step-up (verify, enable, regenerate, disable) count per
// session and the fifth ends the session (DESIGN.md, "Step-up lockout"); completing a sign-in
// challenge counts per account (shared/auth/sign-in.ts). Each attempt reserves its count before
// the code is checked and a success gives it back, so parallel guesses get no more verdicts.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import QRCode from 'qrcode';
import type { Context } from '../context';
import { hashOpaqueToken } from '../crypto/access-tokens';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { enqueueEmailAfterCommit, writeEmail } from '../email/outbox';
import { AppError, BadRequestError, ConflictError, ForbiddenError, RateLimitedError, UnauthorizedError } from '../errors';
import { User } from '../models';
import { verifyPassword } from '../users/passwords';
import type { Actor } from '../auth/actor';
import { confirmWithoutPassword, type PasswordlessProof } from '../auth/reauthentication';
import { revokeSessions } from '../auth/sessions';
import { newTotpSecret, totpUri, verifyTotp } from './totp';

export const SETUP_TTL_SECONDS = 15 * 60;
export const VERIFICATION_TTL_SECONDS = 5 * 60;
export const BACKUP_CODE_COUNT = 8;

export const INVALID_CODE = 'The code is incorrect or was already used.';

/** Associated data of the stored secret: a ciphertext copied to another user's row does not decrypt. */
export const mfaSecretContext = (userId: string) => `users.mfa_secret:${userId}`;
const setupKey = (app: Context, userId: string) => app.key('mfa-setup', userId);
const setupContext = (userId: string) => `mfa-setup:${userId}`;
const verificationKey = (app: Context, token: string) => app.key('mfa-verification', hashOpaqueToken(token));

type MfaUser = Pick<User, 'id' | 'mfa_enabled' | 'mfa_secret_encrypted' | 'mfa_last_used_step'>;

// ---------------------------------------------------------------------------------------------
// Backup codes: 12 characters of Crockford's base32 (60 bits), shown as xxxx-xxxx-xxxx, stored as
// SHA-256 hashes. 60 random bits make an unsalted fast hash safe to keep; bcrypt would cost a
// quarter of a second per stored code at every check.

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

function newBackupCode(): string {
  const bytes = crypto.randomBytes(12);
  const chars = [...bytes].map((b) => CROCKFORD[b & 31]).join('');
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8)}`;
}

/** What users type: any case, with or without dashes and spaces, o for 0 and i or l for 1. */
export function normalizeBackupCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '').replace(/o/g, '0').replace(/[il]/g, '1');
}

const hashBackupCode = (code: string) => hashOpaqueToken(normalizeBackupCode(code));

/** Replaces the user's backup codes with a new set and returns it (the only time it is readable). */
async function replaceBackupCodes(trx: Knex.Transaction, userId: string): Promise<string[]> {
  const codes = Array.from({ length: BACKUP_CODE_COUNT }, newBackupCode);
  await trx('mfa_backup_codes').where({ user_id: userId }).del();
  await trx('mfa_backup_codes').insert(codes.map((code) => ({ user_id: userId, code_hash: hashBackupCode(code) })));
  return codes;
}

// ---------------------------------------------------------------------------------------------
// The second factor.

/**
 * Checks a code of a user with MFA: a 6-digit code is TOTP, anything else a backup code, spent by
 * an atomic UPDATE so it works once even under concurrent use. Returns which one matched.
 */
export async function checkSecondFactor(app: Context, db: Knex, user: MfaUser, code: string): Promise<'totp' | 'backup' | null> {
  if (!user.mfa_enabled || !user.mfa_secret_encrypted) return null;
  const trimmed = code.trim();
  if (/^\d{6}$/.test(trimmed)) {
    const secret = app.kms.decrypt(user.mfa_secret_encrypted, mfaSecretContext(user.id));
    const ok = await verifyTotp(db, {
      userId: user.id,
      secret,
      code: trimmed,
      stepSeconds: app.config.mfa.totpStepSeconds,
      lastUsedStep: user.mfa_last_used_step,
    });
    return ok ? 'totp' : null;
  }
  const spent = await db('mfa_backup_codes')
    .where({ user_id: user.id, code_hash: hashBackupCode(trimmed) })
    .whereNull('used_at')
    .update({ used_at: db.fn.now() })
    .returning('id');
  return spent.length ? 'backup' : null;
}

/**
 * Runs a step-up `attempt` (a code, or a password and a code) with one wrong-attempt count of the
 * actor's session reserved, given back when it succeeds. The last allowed wrong attempt revokes
 * the session (DESIGN.md, "Step-up lockout"): whoever holds a stolen access token loses it, and
 * the owner's sign-in, which counts per account, is never locked by it.
 */
async function countingWrongCodes<T>(app: Context, actor: Actor, origin: EventOrigin, attempt: () => Promise<T>): Promise<T> {
  const sessionId = actor.sessionId;
  if (!sessionId) throw new ForbiddenError('Step-up verification needs a signed-in session.', 'session_required');
  const limiter = app.limits.stepUpPerSession;
  let consumed: number;
  try {
    consumed = (await limiter.hit(sessionId)).consumedPoints;
  } catch (err) {
    if (err instanceof RateLimitedError) throw await endSession(app, actor, origin);
    throw err;
  }
  try {
    const result = await attempt();
    await limiter.refund(sessionId);
    return result;
  } catch (err) {
    const wrong = err instanceof AppError && (err.status === 400 || err.status === 401);
    if (!wrong) await limiter.refund(sessionId);
    if (wrong && consumed >= limiter.points) throw await endSession(app, actor, origin);
    throw err;
  }
}

/** Revokes the actor's session after too many wrong codes; returns the error that says so. */
async function endSession(app: Context, actor: Actor, origin: EventOrigin): Promise<UnauthorizedError> {
  await app.db.transaction((trx) =>
    revokeSessions(app, trx, { userId: actor.userId, sessionIds: [actor.sessionId!], reason: 'mfa_failures', origin }),
  );
  return new UnauthorizedError('Too many wrong codes: this session is signed out. Sign in again.', 'session_revoked');
}

async function findUser(app: Context, userId: string): Promise<User> {
  const user = await User.query(app.db).findById(userId);
  if (!user) throw new UnauthorizedError();
  return user;
}

// ---------------------------------------------------------------------------------------------
// Set-up and enabling.

export async function setupTotp(
  app: Context,
  userId: string,
): Promise<{ secret: string; otpauthUri: string; qrCode: string; expiresIn: number }> {
  const user = await findUser(app, userId);
  if (user.mfa_enabled)
    throw new ConflictError('MFA is already enabled; disable it before setting up a new secret.', 'mfa_already_enabled');
  const secret = newTotpSecret();
  const uri = totpUri(secret, { issuer: app.config.appName, account: user.email, stepSeconds: app.config.mfa.totpStepSeconds });
  // A new set-up replaces any pending one: only the latest QR code can be confirmed.
  await app.redis.set(setupKey(app, userId), app.kms.encrypt(secret, setupContext(userId)), 'EX', SETUP_TTL_SECONDS);
  return { secret, otpauthUri: uri, qrCode: await QRCode.toDataURL(uri), expiresIn: SETUP_TTL_SECONDS };
}

export async function enableTotp(app: Context, actor: Actor, code: string, origin: EventOrigin): Promise<string[]> {
  const { userId } = actor;
  const user = await findUser(app, userId);
  if (user.mfa_enabled) throw new ConflictError('MFA is already enabled.', 'mfa_already_enabled');
  const pending = await app.redis.get(setupKey(app, userId));
  if (!pending)
    throw new BadRequestError('no_pending_setup', 'No set-up is waiting (it lasts 15 minutes); start again with POST /v1/mfa/totp/setup.');
  const secret = app.kms.decrypt(pending, setupContext(userId));
  const enable = () =>
    app.db.transaction(async (trx) => {
      // In the transaction: a refused enable (409) does not spend the code's time step.
      const ok = await verifyTotp(trx, {
        userId,
        secret,
        code,
        stepSeconds: app.config.mfa.totpStepSeconds,
        lastUsedStep: user.mfa_last_used_step,
      });
      if (!ok)
        throw new BadRequestError(
          'invalid_code',
          'The code does not match the secret being set up; check the device clock and try the current code.',
        );
      const enabled = await trx('users')
        .where({ id: userId, mfa_enabled: false })
        .update({
          mfa_enabled: true,
          mfa_secret_encrypted: app.kms.encrypt(secret, mfaSecretContext(userId)),
          mfa_enabled_at: trx.fn.now(),
          updated_at: trx.fn.now(),
        });
      if (!enabled) throw new ConflictError('MFA is already enabled.', 'mfa_already_enabled');
      const codes = await replaceBackupCodes(trx, userId);
      await recordEvent(trx, { type: 'mfa.enabled', userId, data: {} }, origin);
      const emailId = await writeEmail(trx, app.kms, { template: 'mfa_enabled', to: user.email, userId, params: { name: user.name } });
      return { codes, emailId };
    });
  const { codes, emailId } = await countingWrongCodes(app, actor, origin, enable);
  await app.redis.del(setupKey(app, userId));
  await enqueueEmailAfterCommit(app, emailId);
  return codes;
}

// ---------------------------------------------------------------------------------------------
// Step-up.

interface StoredVerification {
  userId: string;
  sessionId: string;
}

/** Proves a fresh second factor within a session: a token reusable for 5 minutes in that session only. */
export async function stepUp(
  app: Context,
  actor: Actor,
  code: string,
  origin: EventOrigin,
): Promise<{ verificationToken: string; expiresIn: number }> {
  const user = await findUser(app, actor.userId);
  if (!user.mfa_enabled) throw new ConflictError('MFA is not enabled for this account; set it up first.', 'mfa_not_enabled');
  await countingWrongCodes(app, actor, origin, async () => {
    if (!(await checkSecondFactor(app, app.db, user, code))) throw new UnauthorizedError(INVALID_CODE, 'invalid_code');
  });
  const token = crypto.randomBytes(32).toString('base64url');
  const value: StoredVerification = { userId: user.id, sessionId: actor.sessionId! };
  await app.redis.set(verificationKey(app, token), JSON.stringify(value), 'EX', VERIFICATION_TTL_SECONDS);
  return { verificationToken: token, expiresIn: VERIFICATION_TTL_SECONDS };
}

/** Whether `token` is a live verification token of this user and this session. */
export async function checkVerificationToken(app: Context, actor: Actor, token: string | undefined | null): Promise<boolean> {
  if (!token || !actor.sessionId || token.length > 512) return false;
  const stored = await app.redis.get(verificationKey(app, token));
  if (!stored) return false;
  const value = JSON.parse(stored) as StoredVerification;
  return value.userId === actor.userId && value.sessionId === actor.sessionId;
}

/**
 * Throws 403 `verification_required` unless `token` is a live step-up token of the actor's session
 * (POST /v1/mfa/totp/verify). `act` names what needs it, for the message.
 */
export async function assertVerificationToken(app: Context, actor: Actor, token: string | undefined, act = 'This'): Promise<void> {
  if (await checkVerificationToken(app, actor, token)) return;
  throw new ForbiddenError(
    token
      ? 'The verification token is invalid, expired or from another session; verify again with POST /v1/mfa/totp/verify.'
      : `${act} needs a recent MFA verification: send the token of POST /v1/mfa/totp/verify in X-Verification-Token.`,
    'verification_required',
  );
}

// ---------------------------------------------------------------------------------------------
// Turning off, and new backup codes.

export async function disableTotp(
  app: Context,
  actor: Actor,
  input: { password?: string; code: string } & PasswordlessProof,
  origin: EventOrigin,
): Promise<void> {
  const { userId } = actor;
  const user = await findUser(app, userId);
  if (!user.mfa_enabled) throw new ConflictError('MFA is not enabled.', 'mfa_not_enabled');
  // Without a password (Google only), a fresh sign-in or a step-up token stands in for it.
  if (!user.password_hash) await confirmWithoutPassword(app, actor, input, 'turn MFA off');
  const emailId = await countingWrongCodes(app, actor, origin, async () => {
    // A wrong password counts like a wrong code: this endpoint must not become a password oracle.
    if (user.password_hash && !(input.password && (await verifyPassword(input.password, user.password_hash)))) {
      throw new UnauthorizedError('The password is incorrect.', 'invalid_credentials');
    }
    return app.db.transaction(async (trx) => {
      if (!(await checkSecondFactor(app, trx, user, input.code))) throw new UnauthorizedError(INVALID_CODE, 'invalid_code');
      const disabled = await trx('users').where({ id: userId, mfa_enabled: true }).update({
        mfa_enabled: false,
        mfa_secret_encrypted: null,
        mfa_enabled_at: null,
        mfa_last_used_step: null,
        updated_at: trx.fn.now(),
      });
      if (!disabled) throw new ConflictError('MFA is not enabled.', 'mfa_not_enabled');
      await trx('mfa_backup_codes').where({ user_id: userId }).del();
      await recordEvent(trx, { type: 'mfa.disabled', userId, data: {} }, origin);
      return writeEmail(trx, app.kms, { template: 'mfa_disabled', to: user.email, userId, params: { name: user.name } });
    });
  });
  await enqueueEmailAfterCommit(app, emailId);
}

export async function regenerateBackupCodes(app: Context, actor: Actor, code: string, origin: EventOrigin): Promise<string[]> {
  const { userId } = actor;
  const user = await findUser(app, userId);
  if (!user.mfa_enabled) throw new ConflictError('MFA is not enabled.', 'mfa_not_enabled');
  const codes = await countingWrongCodes(app, actor, origin, () =>
    app.db.transaction(async (trx) => {
      if (!(await checkSecondFactor(app, trx, user, code))) throw new UnauthorizedError(INVALID_CODE, 'invalid_code');
      return replaceBackupCodes(trx, userId);
    }),
  );
  return codes;
}
