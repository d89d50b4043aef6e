// Trading accounts as the rest of the service sees them: the masked listing a profile shows, and
// their end when the owner's account is deleted (credentials destroyed at once). The linking,
// verification and rotation flows are in ./service.ts and ./verification.ts.
import type { Knex } from 'knex';
import type { TradingAccount } from '../models';
import { recordEvent, type EventOrigin } from '../events/outbox';

/** What may be shown of an account to its owner: never a credential. */
export type MaskedTradingAccount = Pick<
  TradingAccount,
  'id' | 'broker' | 'nickname' | 'status' | 'broker_user_id' | 'api_key_masked' | 'preferences' | 'last_verified_at' | 'created_at'
>;

/** The user's linked accounts, newest first, masked. */
export function listLinkedAccounts(db: Knex, userId: string): Promise<MaskedTradingAccount[]> {
  return db('trading_accounts')
    .where({ user_id: userId })
    .whereNull('unlinked_at')
    .orderBy('created_at', 'desc')
    .select('id', 'broker', 'nickname', 'status', 'broker_user_id', 'api_key_masked', 'preferences', 'last_verified_at', 'created_at');
}

/** Unlinks every account of the user and destroys its credentials, with one event each. */
export async function unlinkAllAccounts(trx: Knex.Transaction, userId: string, origin: EventOrigin): Promise<void> {
  const accounts = await trx('trading_accounts')
    .where({ user_id: userId })
    .whereNull('unlinked_at')
    .update({ unlinked_at: trx.fn.now(), credentials_encrypted: null, pending_credentials_encrypted: null, updated_at: trx.fn.now() })
    .returning(['id', 'broker']);
  for (const account of accounts) {
    const data = { account_id: account.id, broker: account.broker };
    await recordEvent(trx, { type: 'trading_account.unlinked', userId, data }, origin);
  }
}
