// The worker side of trading accounts: a verification round (exchange a request token, then
// GET /user/profile), the expiry of access tokens, and the reconciler of rounds whose job was lost.
// Kite request tokens work once (DESIGN.md, "Side effects at least once"): the access token is
// stored as soon as the exchange answers, and a retry that finds its request token spent ends in
// `error`, asking for a new login, never in `invalid`.
import type { Knex } from 'knex';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Context } from '../context';
import { DecryptionError } from '../crypto/kms';
import type { TradingAccountStatus } from '../models';
import { apiKeyFingerprint, maskApiKey, openCredentials, sealCredentials, type Credentials } from './credentials';
import { KiteError, type KiteClient } from './kite-client';
import { IN_FLIGHT, recordStatusChange, type AccountRow } from './service';

/** The job must wait this long: its api key has used its budget of Kite calls. */
export class KiteBudgetSpent extends Error {
  constructor(readonly delayMs: number) {
    super(`Kite budget of this api key spent; retry in ${delayMs} ms`);
  }
}

/** Kite counts requests per api key: so does this, keyed by the api key's fingerprint. */
export function createKiteBudget(app: Context): (fingerprint: string, calls: number) => Promise<void> {
  const limiter = new RateLimiterRedis({
    storeClient: app.redis,
    keyPrefix: app.key('kite-budget'),
    points: app.config.tradingAccounts.requestsPerSecond,
    duration: 1,
  });
  return async (fingerprint, calls) => {
    try {
      await limiter.consume(fingerprint, calls);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw new KiteBudgetSpent(Math.max(50, err.msBeforeNext));
      throw err;
    }
  };
}

/**
 * Kite access tokens end at 06:00 Asia/Kolkata, the morning after the login. India has kept
 * UTC+05:30 without daylight saving since 1945, so that is 00:30 UTC.
 */
export function nextKiteExpiry(from: Date): Date {
  const expiry = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate(), 0, 30));
  if (expiry <= from) expiry.setUTCDate(expiry.getUTCDate() + 1);
  return expiry;
}

interface Outcome {
  status: TradingAccountStatus;
  lastError: string | null;
  /** On success: the credentials now in use and what Kite said about their owner. */
  verified?: { credentials: Credentials; brokerUserId: string; brokerUserName: string | null; newToken: boolean };
}

/** Ends the round unless a newer one started (or the account went): one transaction, one event. */
async function finishRound(app: Context, accountId: string, round: number, outcome: Outcome, pending: boolean): Promise<void> {
  await app.db.transaction(async (trx) => {
    const account = (await trx('trading_accounts').where({ id: accountId }).whereNull('unlinked_at').forUpdate().first()) as
      AccountRow | undefined;
    if (!account || account.verification_round !== round || !IN_FLIGHT.includes(account.status)) return;
    const now = new Date();
    const changes: Partial<AccountRow> = { status: outcome.status, last_error: outcome.lastError, token_exchange_started_at: null };
    const { verified } = outcome;
    if (verified) {
      const { credentials } = verified;
      Object.assign(changes, {
        credentials_encrypted: sealCredentials(app.kms, account.id, 'credentials_encrypted', {
          api_key: credentials.api_key,
          api_secret: credentials.api_secret,
          access_token: credentials.access_token,
        }),
        pending_credentials_encrypted: null,
        broker_user_id: verified.brokerUserId,
        broker_user_name: verified.brokerUserName,
        last_verified_at: now,
        ...(verified.newToken && { access_token_expires_at: nextKiteExpiry(now) }),
      });
      if (pending) await takeApiKey(trx, app, account, credentials.api_key, changes);
    } else if (pending) {
      // The new credentials failed: the old ones stay (DESIGN.md, "Trading account statuses").
      changes.pending_credentials_encrypted = null;
    }
    await trx('trading_accounts')
      .where({ id: account.id })
      .update({ ...changes, updated_at: trx.fn.now() });
    await recordStatusChange(trx, account, account.status, changes.status!);
  });
}

async function takeApiKey(
  trx: Knex.Transaction,
  app: Context,
  account: AccountRow,
  apiKey: string,
  changes: Partial<AccountRow>,
): Promise<void> {
  changes.api_key_fingerprint = apiKeyFingerprint(app.kms, apiKey);
  changes.api_key_masked = maskApiKey(apiKey);
  const taken = await trx('trading_accounts')
    .where({ user_id: account.user_id, broker: account.broker, api_key_fingerprint: changes.api_key_fingerprint })
    .whereNot({ id: account.id })
    .whereNull('unlinked_at')
    .first('id');
  if (!taken) return;
  // Another account of this user took the key meanwhile: keep the old credentials.
  for (const key of ['credentials_encrypted', 'api_key_fingerprint', 'api_key_masked', 'broker_user_id', 'broker_user_name'] as const)
    delete changes[key];
  Object.assign(changes, { status: 'error', last_error: 'This api key is linked to another of your accounts.' });
}

const failure = (err: KiteError, status: TradingAccountStatus): Outcome => ({ status, lastError: err.message });

function outcomeOfKiteError(err: unknown, rejectedAs: TradingAccountStatus): Outcome {
  if (!(err instanceof KiteError)) throw err;
  return failure(err, err.kind === 'rejected' ? rejectedAs : 'error');
}

function credentialsToVerify(app: Context, account: AccountRow): Credentials | null {
  if (account.pending_credentials_encrypted) {
    return openCredentials(app.kms, account.id, 'pending_credentials_encrypted', account.pending_credentials_encrypted);
  }
  if (account.credentials_encrypted) return openCredentials(app.kms, account.id, 'credentials_encrypted', account.credentials_encrypted);
  return null;
}

export interface VerificationDeps {
  kite: KiteClient;
  budget: (fingerprint: string, calls: number) => Promise<void>;
}

/**
 * Runs round `round` of the account. Idempotent: a round already finished, superseded or unlinked
 * does nothing; a request token already exchanged is not sent again.
 */
export async function runVerification(app: Context, deps: VerificationDeps, accountId: string, round: number): Promise<void> {
  // The primary, never the replica: the reconciler may enqueue a round the replica still shows in flight.
  const account = (await app.db('trading_accounts').where({ id: accountId }).whereNull('unlinked_at').first()) as AccountRow | undefined;
  if (!account || account.verification_round !== round || !IN_FLIGHT.includes(account.status)) return;
  const pending = !!account.pending_credentials_encrypted;
  let credentials: Credentials | null;
  try {
    credentials = credentialsToVerify(app, account);
  } catch (err) {
    // An envelope that does not open here never will (copied from another row, tampered): say so
    // at once rather than retrying.
    if (!(err instanceof DecryptionError)) throw err;
    return finishRound(
      app,
      accountId,
      round,
      { status: 'error', lastError: 'The stored credentials cannot be read; link again.' },
      pending,
    );
  }
  if (!credentials)
    return finishRound(app, accountId, round, { status: 'error', lastError: 'No credentials to verify; link again.' }, false);
  if (!credentials.access_token && !credentials.request_token) {
    return finishRound(app, accountId, round, { status: 'expired', lastError: 'No access token; log in to Kite again.' }, pending);
  }
  await deps.budget(account.api_key_fingerprint, credentials.access_token ? 1 : 2);

  let newToken = false;
  if (!credentials.access_token) {
    const exchanged = await exchange(app, deps.kite, account, round, credentials);
    if ('status' in exchanged) return finishRound(app, accountId, round, exchanged, pending);
    credentials.access_token = exchanged.accessToken;
    delete credentials.request_token;
    newToken = true;
  } else if (pending) {
    newToken = true;
  }

  let outcome: Outcome;
  try {
    const profile = await deps.kite.profile(credentials.api_key, credentials.access_token);
    outcome = {
      status: 'active',
      lastError: null,
      verified: { credentials, brokerUserId: profile.userId, brokerUserName: profile.userName, newToken },
    };
  } catch (err) {
    // A refused token of credentials already in use is a session that ended, not bad credentials.
    outcome = outcomeOfKiteError(err, pending ? 'invalid' : 'expired');
  }
  await finishRound(app, accountId, round, outcome, pending);
}

/**
 * Sends the request token once and stores the access token at once. `token_exchange_started_at`
 * says a request left before: if Kite then calls the token spent, the first one was used.
 */
async function exchange(
  app: Context,
  kite: KiteClient,
  account: AccountRow,
  round: number,
  credentials: Credentials,
): Promise<{ accessToken: string } | Outcome> {
  const sentBefore = account.token_exchange_started_at !== null;
  if (!sentBefore) {
    await app
      .db('trading_accounts')
      .where({ id: account.id, verification_round: round })
      .update({ token_exchange_started_at: app.db.fn.now() });
  }
  let accessToken: string;
  try {
    accessToken = (await kite.createSession(credentials.api_key, credentials.api_secret, credentials.request_token!)).accessToken;
  } catch (err) {
    if (err instanceof KiteError && err.errorType === 'TokenException' && (sentBefore || err.attempts > 1)) {
      return {
        status: 'error',
        lastError: 'The request token was already used (an earlier attempt may have reached Kite); log in to Kite again.',
      };
    }
    return outcomeOfKiteError(err, 'invalid');
  }
  const stored: Credentials = { api_key: credentials.api_key, api_secret: credentials.api_secret, access_token: accessToken };
  await app
    .db('trading_accounts')
    .where({ id: account.id, verification_round: round })
    .update({ pending_credentials_encrypted: sealCredentials(app.kms, account.id, 'pending_credentials_encrypted', stored) });
  return { accessToken };
}

/** Marks active accounts whose access token ended by `now` as expired, one event each. */
export async function expireAccounts(app: Context, now: Date = new Date()): Promise<{ expired: number }> {
  // One update and its events in one transaction: each account changes, and is announced, once.
  return app.db.transaction(async (trx) => {
    const rows: Pick<AccountRow, 'id' | 'user_id'>[] = await trx('trading_accounts')
      .where({ status: 'active' })
      .whereNull('unlinked_at')
      .where('access_token_expires_at', '<=', now)
      .update({
        status: 'expired',
        last_error: 'The Kite access token ended (06:00 Asia/Kolkata); log in to Kite again.',
        updated_at: trx.fn.now(),
      })
      .returning(['id', 'user_id']);
    for (const row of rows) await recordStatusChange(trx, row, 'active', 'expired');
    return { expired: rows.length };
  });
}

/**
 * Accounts in a round (pending_verification or verifying) untouched for RECONCILE_AFTER_SECONDS:
 * `${id}/${round}`. Read on the replica when there is one: a round it still shows in flight after
 * it ended only costs a job that re-reads the account on the primary (runVerification: same round,
 * still in flight, or nothing happens), so a lagging replica does not cause a second call to Kite.
 */
export async function roundsInFlight(app: Context): Promise<string[]> {
  const rows = await app.readReplica(async (db): Promise<{ id: string; verification_round: number }[]> =>
    db('trading_accounts')
      .whereIn('status', IN_FLIGHT)
      .whereNull('unlinked_at')
      .where('updated_at', '<', db.raw(`now() - make_interval(secs => ?)`, [app.config.queues.reconcileAfterSeconds]))
      .orderBy('updated_at')
      .limit(1000)
      .select('id', 'verification_round'),
  );
  return rows.map((r) => `${r.id}/${r.verification_round}`);
}
