// The trading-account answers, built field by field: a row's credentials columns can never leak
// into an answer, and revealed credentials appear only when the service handed them over.
import type { AccountView, AccountRow } from '../../shared/trading-accounts/service';
import type { AccountBody, StatusBody } from './schemas';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function accountBody({ account, credentials }: AccountView): AccountBody {
  return {
    id: account.id,
    broker: account.broker,
    nickname: account.nickname,
    status: account.status,
    broker_user_id: account.broker_user_id,
    broker_user_name: account.broker_user_name,
    api_key_masked: account.api_key_masked,
    preferences: account.preferences,
    last_verified_at: iso(account.last_verified_at),
    last_error: account.last_error,
    access_token_expires_at: iso(account.access_token_expires_at),
    created_at: account.created_at.toISOString(),
    ...(credentials && {
      credentials: { api_key: credentials.api_key, api_secret: credentials.api_secret, access_token: credentials.access_token ?? null },
    }),
  };
}

export function statusBody(account: AccountRow): StatusBody {
  return {
    status: account.status,
    last_verified_at: iso(account.last_verified_at),
    last_error: account.last_error,
    broker_user_id: account.broker_user_id,
    access_token_expires_at: iso(account.access_token_expires_at),
  };
}
