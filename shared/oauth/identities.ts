// Google identities of our users (`auth_providers`): which user a verified Google identity signs
// in, linking it to an existing account or creating one, listing a user's links and unlinking.
// Accounts are found by (provider, sub), never by email alone: an email only decides where a new
// `sub` may be linked, and only onto an account that proved it owns that email.
import type { Knex } from 'knex';
import type { Context } from '../context';
import { isUniqueViolation } from '../db';
import { ConflictError, NotFoundError, UnauthorizedError } from '../errors';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { User } from '../models';
import { INVALID_CREDENTIALS } from '../auth/sign-in';
import type { Actor } from '../auth/actor';
import { assertVerificationToken } from '../mfa/service';
import { normalizeEmail } from '../users/email';
import { canSignIn } from '../users/status';
import { DEFAULT_ROLE, grantRole } from '../users/roles';
import type { GoogleIdentity } from './provider';

const PROVIDER = 'google';

/** A suspended or deleted account gets the login's one answer, which tells nothing about it. */
const refused = () => new UnauthorizedError(INVALID_CREDENTIALS, 'invalid_credentials');

/** A display name from Google's, or the address's local part; the column holds 1 to 100 characters. */
function nameOf(identity: GoogleIdentity): string {
  const name = (identity.name ?? '').trim() || identity.email.split('@')[0] || 'Google user';
  return [...name].slice(0, 100).join('');
}

/** Google's picture when it is an https URL the profile accepts; never fetched by us. */
function avatarOf(identity: GoogleIdentity): string | null {
  const picture = identity.picture;
  return picture && picture.startsWith('https://') && picture.length <= 2048 ? picture : null;
}

async function createGoogleUser(trx: Knex.Transaction, identity: GoogleIdentity, origin: EventOrigin): Promise<string> {
  const [{ id }] = await trx('users')
    .insert({
      email: normalizeEmail(identity.email),
      email_verified: true,
      email_verified_at: trx.fn.now(),
      password_hash: null,
      name: nameOf(identity),
      avatar_url: avatarOf(identity),
      status: 'active',
    })
    .returning('id');
  await grantRole(trx, id, DEFAULT_ROLE);
  await trx('auth_providers').insert({ user_id: id, provider: PROVIDER, provider_user_id: identity.sub, email: identity.email });
  await recordEvent(trx, { type: 'user.registered', userId: id, data: { method: PROVIDER } }, { ...origin, actorId: id });
  return id;
}

/** Links a new `sub` onto the password account that owns its email, when that account may have it. */
async function linkToExisting(
  trx: Knex.Transaction,
  user: Pick<User, 'id' | 'kind' | 'status' | 'email_verified'>,
  identity: GoogleIdentity,
  origin: EventOrigin,
): Promise<string> {
  if (user.kind !== 'person' || !canSignIn(user.status)) throw refused();
  // Whoever controls a Google account with this address must not take over an account whose
  // owner never proved the address: it could have been registered by someone else.
  if (!user.email_verified) {
    throw new ConflictError(
      'An account with this email already exists and its email is not verified. Sign in with your password and verify your email first; then Google sign-in links to it.',
      'account_email_unverified',
    );
  }
  const linked = await trx('auth_providers').where({ user_id: user.id, provider: PROVIDER }).first('id');
  if (linked) {
    throw new ConflictError('This account is linked to another Google account; unlink it first.', 'other_google_account_linked');
  }
  await trx('auth_providers').insert({ user_id: user.id, provider: PROVIDER, provider_user_id: identity.sub, email: identity.email });
  await recordEvent(trx, { type: 'identity.linked', userId: user.id, data: { provider: PROVIDER } }, { ...origin, actorId: user.id });
  return user.id;
}

async function resolve(app: Context, identity: GoogleIdentity, origin: EventOrigin): Promise<User> {
  const userId = await app.db.transaction(async (trx) => {
    const link = await trx('auth_providers')
      .where({ provider: PROVIDER, provider_user_id: identity.sub })
      .update({ last_used_at: trx.fn.now(), email: identity.email })
      .returning('user_id');
    if (link.length) return link[0].user_id;
    const owner = await trx('users')
      .where({ email: normalizeEmail(identity.email) })
      .forUpdate()
      .first('id', 'kind', 'status', 'email_verified');
    return owner ? linkToExisting(trx, owner, identity, origin) : createGoogleUser(trx, identity, origin);
  });
  const user = await User.query(app.db).findById(userId);
  if (!user || user.kind !== 'person' || !canSignIn(user.status)) throw refused();
  return user;
}

/**
 * The user a verified Google identity signs in: the one linked to its `sub`; else the account
 * owning its email, linked now when that email is verified; else a new, active user with the
 * default role. Two first sign-ins of one identity at once: the loser of the insert finds the
 * winner's link on its second try.
 */
export async function userForGoogleIdentity(app: Context, identity: GoogleIdentity, origin: EventOrigin): Promise<User> {
  try {
    return await resolve(app, identity, origin);
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    return resolve(app, identity, origin);
  }
}

export interface LinkedIdentity {
  provider: string;
  email: string | null;
  linkedAt: Date;
  lastUsedAt: Date | null;
}

export async function listIdentities(db: Knex, userId: string): Promise<LinkedIdentity[]> {
  const rows = await db('auth_providers')
    .where({ user_id: userId })
    .orderBy('created_at')
    .select('provider', 'email', 'created_at', 'last_used_at');
  return rows.map((r) => ({ provider: r.provider, email: r.email, linkedAt: r.created_at, lastUsedAt: r.last_used_at }));
}

/**
 * Unlinks the user's Google identity. Only a user with a password may (without one they could no
 * longer sign in: they set one with the reset flow first), and with MFA on only with a step-up
 * token of this session.
 */
export async function unlinkIdentity(
  app: Context,
  actor: Actor,
  input: { provider: 'google'; verificationToken?: string },
  origin: EventOrigin,
): Promise<void> {
  const user = await app.db('users').where({ id: actor.userId }).first('id', 'password_hash', 'mfa_enabled');
  if (!user) throw new UnauthorizedError();
  const link = await app.db('auth_providers').where({ user_id: user.id, provider: input.provider }).first('id');
  if (!link) throw new NotFoundError('No such identity is linked to this account.', 'identity_not_linked');
  if (!user.password_hash) {
    throw new ConflictError(
      'This account has no password, so unlinking Google would lock you out. Set a password with the password reset flow first.',
      'last_sign_in_method',
    );
  }
  if (user.mfa_enabled) await assertVerificationToken(app, actor, input.verificationToken, 'Unlinking Google');
  await app.db.transaction(async (trx) => {
    const removed = await trx('auth_providers').where({ id: link.id }).del();
    if (!removed) throw new NotFoundError('No such identity is linked to this account.', 'identity_not_linked');
    await recordEvent(trx, { type: 'identity.unlinked', userId: user.id, data: { provider: input.provider } }, origin);
  });
}
