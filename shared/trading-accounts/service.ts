// The trading-account flows of the api: link, read, change, unlink, verify, rotate, the daily
// Kite login and revealing credentials. Every change of status records
// `trading_account.status_changed` in the same transaction; work with Kite happens in the `kite`
// queue (./verification.ts), which is handed the account id and its verification round only.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Context } from '../context';
import { isUniqueViolation } from '../db';
import type { Actor } from '../auth/actor';
import type { TradingAccount, TradingAccountStatus } from '../models';
import { recordEvent, type EventOrigin } from '../events/outbox';
import { ConflictError, ForbiddenError, NotFoundError, UnavailableError, ValidationError } from '../errors';
import { assertVerificationToken } from '../mfa/service';
import { hashOpaqueToken } from '../crypto/access-tokens';
import { enqueueAfterCommit, enqueueKiteLogout, enqueueVerification } from '../queues';
import { apiKeyFingerprint, maskApiKey, openCredentials, sealCredentials, type Credentials } from './credentials';
import { kiteLoginPageUrl, type KiteClient } from './kite-client';

export type AccountRow = TradingAccount;

/** A token to start a session with: exactly one of the two. */
export interface SessionToken {
  request_token?: string;
  access_token?: string;
}

export interface LinkInput extends SessionToken {
  broker: 'kite';
  api_key: string;
  api_secret: string;
  nickname?: string | null;
}

export interface RotateInput extends SessionToken {
  api_key?: string;
  api_secret?: string;
}

/** What a caller may see of an account, with its credentials when they were revealed. */
export interface AccountView {
  account: AccountRow;
  credentials?: Credentials;
}

const LOGIN_STATE_TTL_SECONDS = 15 * 60;
const LOGOUT_CREDENTIALS_TTL_SECONDS = 24 * 3600;
/** A verification is queued or running. */
export const IN_FLIGHT: TradingAccountStatus[] = ['pending_verification', 'verifying'];

const notFound = () => new NotFoundError('No such trading account.', 'trading_account_not_found');
const alreadyLinked = () => new ConflictError('This api key is already linked to one of your trading accounts.', 'trading_account_exists');

/** Exactly one of request_token and access_token, named in the 400 otherwise. */
function sessionTokenOf(input: SessionToken): { request_token: string } | { access_token: string } {
  if (input.request_token && input.access_token) {
    throw new ValidationError([{ field: 'access_token', message: 'send either request_token or access_token, not both' }]);
  }
  if (input.request_token) return { request_token: input.request_token };
  if (input.access_token) return { access_token: input.access_token };
  throw new ValidationError([{ field: 'request_token', message: 'is required (or access_token)' }]);
}

/** Records the change of status of an account in the caller's transaction. */
export async function recordStatusChange(
  trx: Knex.Transaction,
  account: Pick<AccountRow, 'id' | 'user_id'>,
  from: TradingAccountStatus,
  to: TradingAccountStatus,
  origin: EventOrigin = {},
): Promise<void> {
  if (from === to) return;
  await recordEvent(
    trx,
    { type: 'trading_account.status_changed', userId: account.user_id, data: { account_id: account.id, from, to } },
    origin,
  );
}

async function ownAccount(db: Knex, userId: string, accountId: string, forUpdate = false): Promise<AccountRow> {
  const query = db('trading_accounts').where({ id: accountId, user_id: userId }).whereNull('unlinked_at').first();
  const account = (await (forUpdate ? query.forUpdate() : query)) as AccountRow | undefined;
  if (!account) throw notFound();
  return account;
}

function queueVerification(app: Context, account: Pick<AccountRow, 'id' | 'verification_round'>): Promise<void> {
  return enqueueAfterCommit(app.logger, () => enqueueVerification(app.queues, account.id, account.verification_round), {
    accountId: account.id,
  });
}

// ---------------------------------------------------------------------------------------------
// Linking.

export async function linkAccount(app: Context, actor: Actor, input: LinkInput, origin: EventOrigin): Promise<AccountRow> {
  const token = sessionTokenOf(input);
  const user = await app.db('users').where({ id: actor.userId }).first('email_verified');
  if (!user?.email_verified) {
    throw new ForbiddenError('Verify your email address before linking a trading account.', 'email_not_verified');
  }
  const id = crypto.randomUUID();
  const fingerprint = apiKeyFingerprint(app.kms, input.api_key);
  const pending: Credentials = { api_key: input.api_key, api_secret: input.api_secret, ...token };
  try {
    const account = await app.db.transaction(async (trx) => {
      const taken = await trx('trading_accounts')
        .where({ user_id: actor.userId, broker: input.broker, api_key_fingerprint: fingerprint })
        .whereNull('unlinked_at')
        .first('id');
      if (taken) throw alreadyLinked();
      const [row] = await trx('trading_accounts')
        .insert({
          id,
          user_id: actor.userId,
          broker: input.broker,
          nickname: input.nickname ?? null,
          status: 'pending_verification',
          api_key_fingerprint: fingerprint,
          api_key_masked: maskApiKey(input.api_key),
          pending_credentials_encrypted: sealCredentials(app.kms, id, 'pending_credentials_encrypted', pending),
          verification_round: 1,
        })
        .returning('*');
      await recordEvent(
        trx,
        { type: 'trading_account.linked', userId: actor.userId, data: { account_id: id, broker: input.broker } },
        origin,
      );
      return row as AccountRow;
    });
    await queueVerification(app, account);
    return account;
  } catch (err) {
    // Two links of one key racing: the unique index decides, the loser gets the same 409.
    if (isUniqueViolation(err)) throw alreadyLinked();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading, changing, unlinking.

export async function listAccounts(app: Context, userId: string): Promise<AccountRow[]> {
  return (await app
    .db('trading_accounts')
    .where({ user_id: userId })
    .whereNull('unlinked_at')
    .orderBy('created_at', 'desc')) as AccountRow[];
}

export function getAccount(app: Context, userId: string, accountId: string): Promise<AccountRow> {
  return ownAccount(app.db, userId, accountId);
}

/** Any user's account, for a principal allowed to read credentials of every account. */
export async function getAnyAccount(app: Context, accountId: string): Promise<AccountRow> {
  const account = (await app.db('trading_accounts').where({ id: accountId }).whereNull('unlinked_at').first()) as AccountRow | undefined;
  if (!account) throw notFound();
  return account;
}

export async function updateAccount(
  app: Context,
  userId: string,
  accountId: string,
  changes: { nickname?: string | null; preferences?: Record<string, unknown> },
): Promise<AccountRow> {
  // One statement: ownership and "not unlinked" are checked by the update itself, so an unlink
  // between a read and the write cannot be overwritten.
  const [row] = await app
    .db('trading_accounts')
    .where({ id: accountId, user_id: userId })
    .whereNull('unlinked_at')
    .update({
      ...(changes.nickname !== undefined && { nickname: changes.nickname }),
      ...(changes.preferences !== undefined && { preferences: changes.preferences }),
      updated_at: app.db.fn.now(),
    })
    .returning('*');
  if (!row) throw notFound();
  return row as AccountRow;
}

const logoutKey = (app: Context, accountId: string) => app.key('kite-logout', accountId);
const logoutContext = (accountId: string) => `kite-logout:${accountId}`;

/**
 * Credentials go from the row at once. The Kite session is ended by a job, which needs the api key
 * and access token: they wait for it in Redis, envelope-encrypted, for a day at most.
 */
export async function unlinkAccount(app: Context, actor: Actor, accountId: string, origin: EventOrigin): Promise<void> {
  const account = await app.db.transaction(async (trx) => {
    const row = await ownAccount(trx, actor.userId, accountId, true);
    await trx('trading_accounts')
      .where({ id: row.id })
      .update({ unlinked_at: trx.fn.now(), credentials_encrypted: null, pending_credentials_encrypted: null, updated_at: trx.fn.now() });
    await recordEvent(
      trx,
      { type: 'trading_account.unlinked', userId: actor.userId, data: { account_id: row.id, broker: row.broker } },
      origin,
    );
    return row;
  });
  // Best effort, after the commit: the account is unlinked whatever happens to the Kite logout,
  // even when its old envelope cannot be opened any more.
  try {
    const current = account.credentials_encrypted
      ? openCredentials(app.kms, account.id, 'credentials_encrypted', account.credentials_encrypted)
      : null;
    if (!current?.access_token) return;
    const sealed = app.kms.encrypt(
      JSON.stringify({ api_key: current.api_key, access_token: current.access_token }),
      logoutContext(accountId),
    );
    await app.redis.set(logoutKey(app, accountId), sealed, 'EX', LOGOUT_CREDENTIALS_TTL_SECONDS);
    await enqueueKiteLogout(app.queues, accountId);
  } catch (err) {
    app.logger.warn({ accountId, error: (err as Error).message }, 'Kite logout skipped');
  }
}

/** The logout job: ends the Kite session of an unlinked account, once. */
export async function logoutUnlinked(app: Context, accountId: string, kite: KiteClient): Promise<void> {
  const sealed = await app.redis.get(logoutKey(app, accountId));
  if (!sealed) return;
  const { api_key, access_token } = JSON.parse(app.kms.decrypt(sealed, logoutContext(accountId))) as {
    api_key: string;
    access_token: string;
  };
  try {
    await kite.logout(api_key, access_token);
  } catch (err) {
    // A refused token is a session already over; anything else is retried by the queue.
    if ((err as { kind?: string }).kind !== 'rejected') throw err;
  }
  await app.redis.del(logoutKey(app, accountId));
}

// ---------------------------------------------------------------------------------------------
// Verification, rotation and the daily login: each starts a verification round.

/**
 * Starts a verification round: the status, the round and the credentials to verify change in the
 * caller's transaction; the job is queued after commit.
 */
async function startRound(
  trx: Knex.Transaction,
  account: AccountRow,
  to: TradingAccountStatus,
  changes: Partial<AccountRow>,
  origin: EventOrigin,
): Promise<AccountRow> {
  const [row] = await trx('trading_accounts')
    .where({ id: account.id })
    .update({
      ...changes,
      status: to,
      verification_round: account.verification_round + 1,
      token_exchange_started_at: null,
      updated_at: trx.fn.now(),
    })
    .returning('*');
  await recordStatusChange(trx, account, account.status, to, origin);
  return row as AccountRow;
}

/** POST /verify: checks the current credentials again. A second click joins the round in flight. */
export async function requestVerification(app: Context, actor: Actor, accountId: string, origin: EventOrigin): Promise<AccountRow> {
  const account = await app.db.transaction(async (trx) => {
    const current = await ownAccount(trx, actor.userId, accountId, true);
    if (IN_FLIGHT.includes(current.status)) return current;
    return startRound(trx, current, 'verifying', {}, origin);
  });
  await queueVerification(app, account);
  return account;
}

async function requireStepUpIfMfa(app: Context, actor: Actor, verificationToken: string | undefined): Promise<void> {
  const user = await app.db('users').where({ id: actor.userId }).first('mfa_enabled');
  if (!user?.mfa_enabled) return;
  await assertVerificationToken(app, actor, verificationToken, 'Changing trading credentials');
}

/** New api key and secret and/or a new token; the old credentials stay in use until these verify. */
export async function rotateCredentials(
  app: Context,
  actor: Actor,
  accountId: string,
  input: RotateInput,
  verificationToken: string | undefined,
  origin: EventOrigin,
): Promise<AccountRow> {
  await ownAccount(app.db, actor.userId, accountId);
  await requireStepUpIfMfa(app, actor, verificationToken);
  const token = sessionTokenOf(input);
  if (!!input.api_key !== !!input.api_secret) {
    throw new ValidationError([{ field: input.api_key ? 'api_secret' : 'api_key', message: 'is required with a new api key or secret' }]);
  }
  const account = await app.db.transaction(async (trx) => {
    const current = await ownAccount(trx, actor.userId, accountId, true);
    const base = currentOrPending(app, current);
    const next: Credentials = { api_key: input.api_key ?? base.api_key, api_secret: input.api_secret ?? base.api_secret, ...token };
    if (input.api_key) {
      const taken = await trx('trading_accounts')
        .where({ user_id: actor.userId, broker: current.broker, api_key_fingerprint: apiKeyFingerprint(app.kms, input.api_key) })
        .whereNot({ id: current.id })
        .whereNull('unlinked_at')
        .first('id');
      if (taken) throw alreadyLinked();
    }
    const pending = sealCredentials(app.kms, current.id, 'pending_credentials_encrypted', next);
    const started = await startRound(trx, current, 'verifying', { pending_credentials_encrypted: pending }, origin);
    await recordEvent(trx, { type: 'trading_account.credentials_updated', userId: actor.userId, data: { account_id: current.id } }, origin);
    return started;
  });
  await queueVerification(app, account);
  return account;
}

/** The credentials in use, else those being verified (an account whose link has not verified yet). */
function currentOrPending(app: Context, account: AccountRow): Credentials {
  if (account.credentials_encrypted) return openCredentials(app.kms, account.id, 'credentials_encrypted', account.credentials_encrypted);
  return openCredentials(app.kms, account.id, 'pending_credentials_encrypted', account.pending_credentials_encrypted!);
}

const loginStateKey = (app: Context, state: string) => app.key('kite-login-state', hashOpaqueToken(state));

/** Kite's login URL for the account's api key, carrying a single-use state bound to the account. */
export async function kiteLoginUrl(
  app: Context,
  actor: Actor,
  accountId: string,
): Promise<{ loginUrl: string; state: string; expiresIn: number }> {
  const account = await ownAccount(app.db, actor.userId, accountId);
  const { api_key } = currentOrPending(app, account);
  const state = crypto.randomBytes(32).toString('base64url');
  try {
    await app.redis.set(loginStateKey(app, state), JSON.stringify({ accountId, userId: actor.userId }), 'EX', LOGIN_STATE_TTL_SECONDS);
  } catch (err) {
    throw new UnavailableError(undefined, err);
  }
  return { loginUrl: kiteLoginPageUrl(app.config, api_key, { state }), state, expiresIn: LOGIN_STATE_TTL_SECONDS };
}

/** Takes the state once: a second use, another account's or another user's state is refused. */
async function consumeLoginState(app: Context, actor: Actor, accountId: string, state: string): Promise<void> {
  let stored: string | null;
  try {
    stored = await app.redis.getdel(loginStateKey(app, state));
  } catch (err) {
    throw new UnavailableError(undefined, err);
  }
  const value = stored ? (JSON.parse(stored) as { accountId: string; userId: string }) : null;
  if (value?.accountId === accountId && value.userId === actor.userId) return;
  throw new ValidationError([{ field: 'state', message: 'is unknown, used or for another account; get a new login URL' }]);
}

const RENEWABLE: TradingAccountStatus[] = ['active', 'expired', 'error', 'invalid'];

/** The daily login: a new request token for the api key and secret already stored. */
export async function renewSession(
  app: Context,
  actor: Actor,
  accountId: string,
  input: { request_token: string; state: string },
  origin: EventOrigin,
): Promise<AccountRow> {
  await ownAccount(app.db, actor.userId, accountId);
  await consumeLoginState(app, actor, accountId, input.state);
  const account = await app.db.transaction(async (trx) => {
    const current = await ownAccount(trx, actor.userId, accountId, true);
    if (!RENEWABLE.includes(current.status)) {
      throw new ConflictError('This account is being verified; wait for the result before logging in again.', 'verification_in_progress');
    }
    if (!current.credentials_encrypted) {
      throw new ConflictError('This account never verified; send its api key and secret again (rotate-credentials).', 'not_verified');
    }
    const { api_key, api_secret } = openCredentials(app.kms, current.id, 'credentials_encrypted', current.credentials_encrypted);
    const next: Credentials = { api_key, api_secret, request_token: input.request_token };
    const pending = sealCredentials(app.kms, current.id, 'pending_credentials_encrypted', next);
    return startRound(trx, current, 'verifying', { pending_credentials_encrypted: pending }, origin);
  });
  await queueVerification(app, account);
  return account;
}

// ---------------------------------------------------------------------------------------------
// Revealing credentials.

export type RevealedBy = 'owner' | 'service';

/**
 * The owner needs MFA and a live verification token; a principal holding
 * trading_accounts:credentials:read needs nothing more. Each reveal is an event, the caller its actor.
 */
export async function checkOwnerMayReveal(app: Context, actor: Actor, verificationToken: string | undefined): Promise<void> {
  const user = await app.db('users').where({ id: actor.userId }).first('mfa_enabled');
  if (!user?.mfa_enabled) {
    throw new ForbiddenError('Revealing trading credentials needs MFA: enable it first (POST /v1/mfa/totp/setup).', 'mfa_required');
  }
  await assertVerificationToken(app, actor, verificationToken, 'Revealing credentials');
}

export async function revealCredentials(app: Context, accounts: AccountRow[], by: RevealedBy, origin: EventOrigin): Promise<AccountView[]> {
  return app.db.transaction(async (trx) => {
    const views: AccountView[] = [];
    for (const account of accounts) {
      const credentials = account.credentials_encrypted
        ? openCredentials(app.kms, account.id, 'credentials_encrypted', account.credentials_encrypted)
        : undefined;
      if (credentials) {
        await recordEvent(
          trx,
          { type: 'trading_account.credentials_revealed', userId: account.user_id, data: { account_id: account.id, by } },
          origin,
        );
      }
      views.push({
        account,
        credentials: credentials && {
          api_key: credentials.api_key,
          api_secret: credentials.api_secret,
          access_token: credentials.access_token,
        },
      });
    }
    return views;
  });
}
