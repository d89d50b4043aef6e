// Signing in: checking a password, and `finishSignIn`, which turns any verified identity
// (password now, Google later) into a session, or into an MFA challenge when the account has MFA;
// completing that challenge with a TOTP or backup code starts the session. The operators' console
// (/admin/login) signs in by the same rules into an operator session.
import crypto from 'node:crypto';
import type { Context } from '../context';
import { hashOpaqueToken, type AuthMethod } from '../crypto/access-tokens';
import { ForbiddenError, RateLimitedError, UnauthorizedError } from '../errors';
import { User } from '../models';
import { checkSecondFactor, INVALID_CODE } from '../mfa/service';
import { costOf, dummyHash, hashPassword, verifyPassword } from '../users/passwords';
import { canSignIn } from '../users/status';
import { normalizeEmail } from '../users/email';
import { startSession, type ClientInfo, type SessionTokens, type SignInMethod } from './sessions';
import { holdsOperatorPermission, startOperatorSession, type OperatorSession } from './operator-sessions';

/** One body for every failed sign-in, so it never tells which part was wrong. */
export const INVALID_CREDENTIALS = 'The email or password is incorrect.';

const MFA_CHALLENGE_TTL_SECONDS = 300;
const INVALID_CHALLENGE = 'The MFA token is invalid or expired; sign in again.';

/** The challenge that stands before a session when the account has MFA. */
export interface MfaChallenge {
  kind: 'mfa_challenge';
  mfaToken: string;
  expiresIn: number;
}

/** What signing in to the API gives: a session's tokens, or the challenge before them. */
export type SignInResult = { kind: 'session'; tokens: SessionTokens } | MfaChallenge;

/** What signing in to the operators' console gives: its session, or the challenge before it. */
export type OperatorSignInResult = { kind: 'session'; session: OperatorSession } | MfaChallenge;

/** Where a completed challenge leads: an API session or an operator session. */
type Audience = 'api' | 'operator';

/** How the identity was proved, and what the session will be, kept with an MFA challenge. */
interface SignIn {
  method: SignInMethod;
  persistent: boolean;
  client: ClientInfo;
}

/** The MFA challenge as stored in Redis (by the hash of its token) until a code completes it. */
interface StoredChallenge extends SignIn {
  userId: string;
  audience: Audience;
}

const challengeKey = (app: Context, token: string) => app.key('mfa-challenge', hashOpaqueToken(token));

const amrOf = (method: SignInMethod): AuthMethod => (method === 'google' ? 'google' : 'pwd');

async function createChallenge(app: Context, user: User, signIn: SignIn, audience: Audience): Promise<MfaChallenge> {
  const token = crypto.randomBytes(32).toString('base64url');
  const challenge: StoredChallenge = { userId: user.id, audience, ...signIn };
  await app.redis.set(challengeKey(app, token), JSON.stringify(challenge), 'EX', MFA_CHALLENGE_TTL_SECONDS);
  return { kind: 'mfa_challenge', mfaToken: token, expiresIn: MFA_CHALLENGE_TTL_SECONDS };
}

/**
 * The end of every sign-in to the API, once the user has proved who they are: a session, or, for
 * an account with MFA, a challenge; the session, `user.login` and `session.created` then wait for
 * the code (DESIGN.md, "MFA challenge").
 */
export async function finishSignIn(app: Context, user: User, signIn: SignIn): Promise<SignInResult> {
  if (user.mfa_enabled) return createChallenge(app, user, signIn, 'api');
  const options = { persistent: signIn.persistent, amr: [amrOf(signIn.method)], method: signIn.method };
  return { kind: 'session', tokens: await startSession(app, user, signIn.client, options) };
}

/**
 * Checks an email and password, for every password sign-in (the login endpoint, the operators'
 * console). Unknown email, wrong password, a suspended or deleted account, and an account the
 * caller does not accept (`eligible`: an operator without the permission) look the same from
 * outside, in body, in time (an unknown email still costs one bcrypt comparison) and in what they
 * count. Every attempt reserves its count before the password is checked, so attempts sent all at
 * once cannot slip between a check and a count; a success gives the reservations back.
 */
export async function checkPasswordSignIn(
  app: Context,
  email: string,
  password: string,
  ip: string | null,
  eligible: (user: User) => Promise<boolean> = () => Promise.resolve(true),
): Promise<User> {
  const limits = app.limits.login;
  const address = normalizeEmail(email);
  const keys = { pair: [address, ip ?? '-'], ip: ip ?? '-', email: address };
  await Promise.all([limits.pair.hit(keys.pair), limits.ip.hit(keys.ip), limits.email.hit(keys.email)]);
  // Service principals get tokens from their own endpoint, never by password sign-in.
  const user = await User.query(app.db).findOne({ email: address, kind: 'person' });
  let passwordOk: boolean;
  try {
    passwordOk = await verifyPassword(password, user?.password_hash ?? (await dummyHash(app.config.password.bcryptCost)));
  } catch (err) {
    // Shed because too many sign-ins are hashing: the attempt was never judged, so it does not count.
    await Promise.all([limits.pair.refund(keys.pair), limits.ip.refund(keys.ip), limits.email.refund(keys.email)]);
    throw err;
  }
  if (!user || !user.password_hash || !passwordOk || !canSignIn(user.status) || !(await eligible(user))) {
    throw new UnauthorizedError(INVALID_CREDENTIALS, 'invalid_credentials');
  }
  await Promise.all([limits.pair.reset(keys.pair), limits.ip.refund(keys.ip), limits.email.refund(keys.email)]);
  return user;
}

/** Password sign-in to the API: a session, or the MFA challenge when the account has MFA. */
export async function passwordSignIn(
  app: Context,
  input: { email: string; password: string; remember_me?: boolean },
  client: ClientInfo,
): Promise<SignInResult> {
  const user = await checkPasswordSignIn(app, input.email, input.password, client.ip);
  const cost = app.config.password.bcryptCost;
  if (costOf(user.password_hash!) < cost) {
    // A hash from a cheaper time: upgrade it while we hold the password.
    const upgraded = await hashPassword(input.password, cost);
    await app.db('users').where({ id: user.id, password_hash: user.password_hash }).update({ password_hash: upgraded });
  }
  return finishSignIn(app, user, { method: 'password', persistent: input.remember_me === true, client });
}

/**
 * Sign-in to the operators' console (DESIGN.md, "Operators' access to Bull Board"): the login's
 * rules and limits, and one answer for a wrong password and for an account without the operators'
 * permission. An operator must have verified their email, and outside development must have MFA
 * (told so, since they proved their password); with MFA, the code comes next.
 */
export async function operatorSignIn(
  app: Context,
  input: { email: string; password: string },
  client: ClientInfo,
): Promise<OperatorSignInResult> {
  const user = await checkPasswordSignIn(app, input.email, input.password, client.ip, (u) => holdsOperatorPermission(app, u.id));
  if (user.status !== 'active') {
    throw new ForbiddenError("Verify this account's email address before using the operators' console.", 'email_unverified');
  }
  if (user.mfa_enabled) return createChallenge(app, user, { method: 'password', persistent: false, client }, 'operator');
  if (app.config.environment !== 'development') {
    throw new ForbiddenError(
      "Turn on two-factor authentication for this account (POST /v1/mfa/totp/setup, then /enable) to use the operators' console.",
      'mfa_required',
    );
  }
  return { kind: 'session', session: await startOperatorSession(app, user, client, ['pwd']) };
}

/**
 * Takes an MFA challenge with a TOTP or backup code. Over the account's wrong-code limit the
 * challenge is deleted and the answer is 429, even for a right code. The challenge is taken with
 * GETDEL while its code is checked, so it is single use even when two right codes arrive at once.
 */
async function takeChallenge(
  app: Context,
  token: string,
  code: string,
  audience: Audience,
): Promise<{ user: User; challenge: StoredChallenge }> {
  const key = challengeKey(app, token);
  const stored = await app.redis.get(key);
  const challenge = stored ? (JSON.parse(stored) as StoredChallenge) : null;
  // A challenge of the other door (API or console) is no challenge here.
  if (!challenge || challenge.audience !== audience) throw new UnauthorizedError(INVALID_CHALLENGE, 'invalid_mfa_token');
  const wrongCodes = app.limits.mfaPerAccount;
  try {
    await wrongCodes.hit(challenge.userId);
  } catch (err) {
    if (err instanceof RateLimitedError) await app.redis.del(key);
    throw err;
  }
  // Taken before its code is checked, and given back when the code is wrong. Taken only after a
  // right code, it could be deleted in between by an answer over the limit (several sends of one
  // right code: the first spends the code's step, the sixth trips the limit), and nobody signed in.
  const [[, ttl], [, taken]] = (await app.redis.multi().pttl(key).getdel(key).exec()) as [[unknown, number], [unknown, string | null]];
  if (!taken) {
    // Another answer holds it (or it ended): no code was checked, so nothing to count.
    await wrongCodes.refund(challenge.userId);
    throw new UnauthorizedError(INVALID_CHALLENGE, 'invalid_mfa_token');
  }
  const user = await User.query(app.db).findById(challenge.userId);
  if (!user || !canSignIn(user.status) || !user.mfa_enabled) throw new UnauthorizedError(INVALID_CHALLENGE, 'invalid_mfa_token');
  if (!(await checkSecondFactor(app, app.db, user, code))) {
    if (ttl > 0) await app.redis.set(key, taken, 'PX', ttl, 'NX');
    throw new UnauthorizedError(INVALID_CODE, 'invalid_code');
  }
  await wrongCodes.refund(challenge.userId);
  return { user, challenge };
}

/** Completes an API sign-in's MFA challenge: the session starts. */
export async function completeMfaChallenge(app: Context, token: string, code: string): Promise<SessionTokens> {
  const { user, challenge } = await takeChallenge(app, token, code, 'api');
  const { method, persistent, client } = challenge;
  return startSession(app, user, client, { persistent, amr: [amrOf(method), 'mfa'], method });
}

/** Completes an operator's MFA challenge: the operator session starts. */
export async function completeOperatorChallenge(app: Context, token: string, code: string): Promise<OperatorSession> {
  const { user, challenge } = await takeChallenge(app, token, code, 'operator');
  // The permission may have gone while the code was typed.
  if (!(await holdsOperatorPermission(app, user.id))) throw new UnauthorizedError(INVALID_CHALLENGE, 'invalid_mfa_token');
  return startOperatorSession(app, user, challenge.client, [amrOf(challenge.method), 'mfa']);
}
