// Steps the trading-account tests share: link through the API and wait for the verification job,
// read the account's row and the events of the test's stream.
import type { TestStack } from '../helpers/stack';
import type { SignedIn } from '../helpers/auth';
import type { KiteApp } from '../helpers/kite';
import { call, eventually, type Reply } from '../helpers/app';
import { streamEvents } from '../helpers/auth';

export const FINAL = ['active', 'invalid', 'error', 'expired'];

export async function link(
  s: TestStack,
  user: SignedIn,
  kiteApp: KiteApp,
  token: { request_token?: string; access_token?: string } = { request_token: s.kite.requestToken(kiteApp.apiKey) },
  extra: Record<string, unknown> = {},
): Promise<Reply> {
  return call(`${s.app.url}/v1/trading-accounts/link`, {
    headers: user.auth,
    body: { broker: 'kite', api_key: kiteApp.apiKey, api_secret: kiteApp.apiSecret, ...token, ...extra },
  });
}

/** The account once its verification finished (any final status). */
export async function settled(s: TestStack, user: SignedIn, accountId: string, timeoutMs = 15_000): Promise<Record<string, any>> {
  return eventually(
    async () => {
      const r = await call(`${s.app.url}/v1/trading-accounts/${accountId}`, { headers: user.auth });
      return FINAL.includes(r.body.status) && r.body;
    },
    { timeoutMs },
  );
}

export async function linked(s: TestStack, user: SignedIn, kiteApp: KiteApp): Promise<Record<string, any>> {
  const r = await link(s, user, kiteApp);
  if (r.status !== 202) throw new Error(`link failed: ${r.status} ${r.text}`);
  const account = await settled(s, user, r.body.id);
  if (account.status !== 'active') throw new Error(`link ended ${account.status}: ${account.last_error}`);
  return account;
}

export async function row(s: TestStack, accountId: string): Promise<Record<string, any>> {
  return (await s.app.context.db('trading_accounts').where({ id: accountId }).first())!;
}

/** Events of the stream about one account (once the relay published them). */
export async function accountEvents(s: TestStack, accountId: string) {
  const all = await streamEvents(s.app.context.redis, s.app.config.events.streamName);
  return all.filter((e) => e.payload.data?.account_id === accountId);
}

/** Waits until the relay published every events row of the account. */
export async function publishedEvents(s: TestStack, accountId: string) {
  return eventually(async () => {
    const rows = await s.app.context
      .db('events')
      .whereRaw(`data->>'account_id' = ?`, [accountId])
      .count<{ count: string }[]>('id as count');
    const events = await accountEvents(s, accountId);
    return events.length === Number(rows[0].count) && events;
  });
}

export const statusChanges = (events: { type: string; payload: any }[]) =>
  events.filter((e) => e.type === 'trading_account.status_changed').map((e) => `${e.payload.data.from}->${e.payload.data.to}`);
