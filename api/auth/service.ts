// Registration, email verification and password sign-in.
import crypto from 'node:crypto';
import type { Context } from '../../shared/context';
import { hashOpaqueToken, newOpaqueToken } from '../../shared/crypto/access-tokens';
import { recordEvent } from '../../shared/events/outbox';
import { writeEmail } from '../../shared/email/outbox';
import { BadRequestError, ConflictError, UnauthorizedError, ValidationError } from '../../shared/errors';
import { User } from '../../shared/models';
import { listRoleNames } from '../../shared/authz/permissions';
import { assertPasswordPolicy } from '../../shared/users/password-policy';
import { costOf, dummyHash, hashPassword, verifyPassword } from '../../shared/users/passwords';
import { createLimiter, type Limiter } from '../http/rate-limit';
import { enqueueAfterCommit, startSession, type ClientInfo, type TokenPair } from './sessions';

const VERIFICATION_TTL_HOURS = 24;
const MFA_CHALLENGE_TTL_SECONDS = 300;
const DEFAULT_ROLE = 'trader';

/** One body for every failed sign-in, so it never tells which part was wrong. */
export const INVALID_CREDENTIALS = 'The email or password is incorrect.';

export interface Registration {
  email: string;
  password: string;
  name: string;
  phone?: string;
  timezone?: string;
  locale?: string;
}

export async function register(
  app: Context,
  input: Registration,
  client: ClientInfo,
): Promise<{ user_id: string; email: string; status: 'pending_verification' }> {
  const email = input.email.trim();
  const name = input.name.trim();
  if (!name) throw new ValidationError([{ field: 'name', message: 'must not be blank' }]);
  assertPasswordPolicy(input.password, 'password', { email, name }, app.config.password);
  // Hash outside the transaction: a quarter of a second that must not hold a connection.
  const passwordHash = await hashPassword(input.password, app.config.password.bcryptCost);
  const verification = newOpaqueToken();
  const { userId, emailId } = await app.db.transaction(async (trx) => {
    const existing = await trx('users').where({ email }).first('id');
    if (existing) throw new ConflictError('An account with this email already exists.', 'email_taken');
    let row: { id: string };
    try {
      [row] = await trx('users')
        .insert({
          email,
          name,
          password_hash: passwordHash,
          password_changed_at: trx.fn.now(),
          phone: input.phone ?? null,
          timezone: input.timezone ?? 'UTC',
          locale: input.locale ?? 'en',
        })
        .returning('id');
    } catch (err) {
      // Two registrations of one email at once: the unique index decides.
      if ((err as { code?: string }).code === '23505') throw new ConflictError('An account with this email already exists.', 'email_taken');
      throw err;
    }
    await trx('user_roles').insert({ user_id: row.id, role_id: trx('roles').where({ name: DEFAULT_ROLE }).select('id') });
    await recordEvent(
      trx,
      { type: 'user.registered', userId: row.id, data: { method: 'password' } },
      { actorId: row.id, ip: client.ip, userAgent: client.userAgent },
    );
    const emailId = await writeVerification(app, trx, { id: row.id, email, name }, verification);
    return { userId: row.id, emailId };
  });
  await enqueueAfterCommit(app, emailId);
  return { user_id: userId, email, status: 'pending_verification' };
}

async function writeVerification(
  app: Context,
  trx: Parameters<typeof writeEmail>[0],
  user: { id: string; email: string; name: string },
  token: { token: string; hash: string },
): Promise<string> {
  await trx('email_verification_tokens').insert({
    token_hash: token.hash,
    user_id: user.id,
    expires_at: trx.raw(`now() + interval '${VERIFICATION_TTL_HOURS} hours'`),
  });
  return writeEmail(trx, app.kms, {
    template: 'verify_email',
    to: user.email,
    userId: user.id,
    params: {
      name: user.name,
      link: `${app.config.emailLinkBaseUrl}/verify-email?token=${encodeURIComponent(token.token)}`,
      expiresInHours: VERIFICATION_TTL_HOURS,
    },
  });
}

export async function verifyEmail(app: Context, token: string, client: ClientInfo): Promise<{ status: 'active' }> {
  const hash = hashOpaqueToken(token);
  await app.db.transaction(async (trx) => {
    const used = await trx('email_verification_tokens')
      .where({ token_hash: hash })
      .whereNull('used_at')
      .where('expires_at', '>', trx.fn.now())
      .update({ used_at: trx.fn.now() })
      .returning('user_id');
    if (!used.length) throw new BadRequestError('invalid_token', 'The verification link is invalid, used or expired. Ask for a new one.');
    const userId = used[0].user_id as string;
    const user = await trx('users').where({ id: userId }).forUpdate().first('status', 'email_verified');
    if (!user || user.status === 'deleted' || user.status === 'suspended')
      throw new BadRequestError('invalid_token', 'The verification link is invalid, used or expired. Ask for a new one.');
    await trx('users')
      .where({ id: userId })
      .update({ email_verified: true, email_verified_at: trx.fn.now(), status: 'active', updated_at: trx.fn.now() });
    // Other links sent before this one are spent too.
    await trx('email_verification_tokens').where({ user_id: userId }).whereNull('used_at').update({ used_at: trx.fn.now() });
    if (!user.email_verified)
      await recordEvent(
        trx,
        { type: 'user.email_verified', userId, data: {} },
        { actorId: userId, ip: client.ip, userAgent: client.userAgent },
      );
  });
  return { status: 'active' };
}

/** Sends a new verification link when the account exists and still waits for one; answers the same either way. */
export async function resendVerification(app: Context, email: string): Promise<void> {
  const token = newOpaqueToken();
  const emailId = await app.db.transaction(async (trx) => {
    const user = await trx('users').where({ email: email.trim(), status: 'pending_verification' }).forUpdate().first('id', 'email', 'name');
    if (!user) return null;
    await trx('email_verification_tokens').where({ user_id: user.id }).whereNull('used_at').del();
    return writeVerification(app, trx, user, token);
  });
  if (emailId) await enqueueAfterCommit(app, emailId);
}

export interface LoginLimiters {
  pair: Limiter;
  ip: Limiter;
  email: Limiter;
}

/** The failed-sign-in limits, shared by the login endpoint and operators' Basic auth (same keys). */
export function loginLimiters(app: Context): LoginLimiters {
  const { login: limits } = app.config.rateLimits;
  const limiter = (name: string, points: number) => createLimiter(app.redis, app.key('rl', name), points, limits.windowSeconds);
  return {
    pair: limiter('login-pair', limits.attempts),
    ip: limiter('login-ip', limits.ipAttempts),
    email: limiter('login-email', limits.emailAttempts),
  };
}

/**
 * Checks an email and password, for every password sign-in (the login endpoint, operators' Basic
 * auth). Unknown email, wrong password and a suspended or deleted account look the same from
 * outside, in body and in time (an unknown email still costs one bcrypt comparison). Every
 * attempt reserves its count before the password is checked, so attempts sent all at once cannot
 * slip between a check and a count; a success gives the reservations back.
 */
export async function checkPasswordSignIn(
  app: Context,
  email: string,
  password: string,
  ip: string | null,
  limiters: LoginLimiters,
): Promise<User> {
  const normalized = email.trim().toLowerCase();
  const keys = { pair: `${normalized}|${ip ?? '-'}`, ip: ip ?? '-', email: normalized };
  await Promise.all([limiters.pair.hit(keys.pair), limiters.ip.hit(keys.ip), limiters.email.hit(keys.email)]);
  // Service principals get tokens from their own endpoint, never by password sign-in.
  const user = await User.query(app.db).findOne({ email: email.trim(), kind: 'person' });
  let passwordOk: boolean;
  try {
    passwordOk = await verifyPassword(password, user?.password_hash ?? (await dummyHash(app.config.password.bcryptCost)));
  } catch (err) {
    // Shed because too many sign-ins are hashing: the attempt was never judged, so it does not count.
    await Promise.all([limiters.pair.refund(keys.pair), limiters.ip.refund(keys.ip), limiters.email.refund(keys.email)]);
    throw err;
  }
  if (!user || !user.password_hash || !passwordOk || !['active', 'pending_verification'].includes(user.status)) {
    throw new UnauthorizedError(INVALID_CREDENTIALS, 'invalid_credentials');
  }
  await Promise.all([limiters.pair.reset(keys.pair), limiters.ip.refund(keys.ip), limiters.email.refund(keys.email)]);
  return user;
}

export interface MfaChallenge {
  mfa_required: true;
  mfa_token: string;
  expires_in: number;
}

export const mfaChallengeKey = (app: Context, token: string) => app.key('mfa-challenge', hashOpaqueToken(token));

/** Password sign-in: a token pair, or the MFA challenge when the account has MFA. */
export async function login(
  app: Context,
  input: { email: string; password: string; remember_me?: boolean },
  client: ClientInfo,
  limiters: LoginLimiters,
): Promise<TokenPair | MfaChallenge> {
  const user = await checkPasswordSignIn(app, input.email, input.password, client.ip, limiters);
  const cost = app.config.password.bcryptCost;
  if (costOf(user.password_hash!) < cost) {
    // A hash from a cheaper time: upgrade it while we hold the password.
    const upgraded = await hashPassword(input.password, cost);
    await app.db('users').where({ id: user.id, password_hash: user.password_hash }).update({ password_hash: upgraded });
  }
  const persistent = input.remember_me === true;
  if (user.mfa_enabled) return createMfaChallenge(app, user.id, client, persistent);
  return startSession(app, user, client, { persistent, amr: ['pwd'], method: 'password' });
}

/** The password was right and MFA is on: the session starts only when a code completes the challenge. */
async function createMfaChallenge(app: Context, userId: string, client: ClientInfo, persistent: boolean): Promise<MfaChallenge> {
  const token = crypto.randomBytes(32).toString('base64url');
  const challenge = { userId, persistent, method: 'password', client };
  await app.redis.set(mfaChallengeKey(app, token), JSON.stringify(challenge), 'EX', MFA_CHALLENGE_TTL_SECONDS);
  return { mfa_required: true, mfa_token: token, expires_in: MFA_CHALLENGE_TTL_SECONDS };
}

/** A 15-minute access token for a service principal: no session, no refresh token. */
export async function issueServiceToken(
  app: Context,
  clientId: string,
  clientSecret: string,
  ip: string | null,
  limiter: Limiter,
): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number }> {
  // Counted per IP, not per client: client ids are not secret, and a 256-bit secret needs no
  // lockout that anyone could trigger against a service.
  const key = ip ?? '-';
  await limiter.hit(key);
  const service = await app.db('users').where({ id: clientId, kind: 'service', status: 'active' }).first('id', 'password_hash');
  const ok = await verifyPassword(clientSecret, service?.password_hash ?? (await dummyHash(app.config.password.bcryptCost)));
  if (!service || !ok) throw new UnauthorizedError('The client credentials are invalid.', 'invalid_client');
  await limiter.refund(key);
  const roles = await listRoleNames(app.db, service.id);
  return {
    access_token: await app.accessTokens.sign({ sub: service.id, roles, amr: ['service'] }),
    token_type: 'Bearer',
    expires_in: app.accessTokens.ttlSeconds,
  };
}
