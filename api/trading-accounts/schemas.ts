// Request and response schemas of the trading-account endpoints. Credentials appear in one answer
// only: an account read with include_credentials=true by a caller allowed to see them.
import { Type, type Static } from '@sinclair/typebox';
import { Strict } from '../http/route';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableDateTime = Type.Union([DateTime, Type.Null()]);
// Kite's api keys, secrets and tokens are short alphanumeric strings; the bounds keep junk out.
const Secret = (description: string) => Type.String({ minLength: 1, maxLength: 256, pattern: '^[A-Za-z0-9_.\\-]+$', description });
const Nickname = Type.Union([Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' }), Type.Null()]);
// Flat settings of the client's (product, order type…): bounded keys and scalar values, nothing nested.
const Preferences = Type.Record(
  Type.String({ minLength: 1, maxLength: 64 }),
  Type.Union([Type.String({ maxLength: 256 }), Type.Number(), Type.Boolean(), Type.Null()]),
  { maxProperties: 50 },
);
const STATUSES = ['pending_verification', 'verifying', 'active', 'invalid', 'error', 'expired'];
const Status = Type.Unsafe<string>({ type: 'string', enum: STATUSES });

export const Credentials = Type.Object({
  api_key: Type.String(),
  api_secret: Type.String(),
  access_token: NullableString,
});

export const Account = Type.Object({
  id: Uuid,
  broker: Type.String(),
  nickname: NullableString,
  status: Status,
  broker_user_id: NullableString,
  broker_user_name: NullableString,
  api_key_masked: Type.String(),
  preferences: Type.Object({}, { additionalProperties: true }),
  last_verified_at: NullableDateTime,
  last_error: NullableString,
  access_token_expires_at: NullableDateTime,
  created_at: DateTime,
  credentials: Type.Optional(Credentials),
});

export const AccountList = Type.Object({ trading_accounts: Type.Array(Account) });

export const Status200 = Type.Object({
  status: Status,
  last_verified_at: NullableDateTime,
  last_error: NullableString,
  broker_user_id: NullableString,
  access_token_expires_at: NullableDateTime,
});

export const StatusOnly = Type.Object({ status: Status });

export const LinkBody = Strict(
  {
    broker: Type.Unsafe<'kite'>({ type: 'string', enum: ['kite'] }),
    api_key: Secret('Kite Connect api key'),
    api_secret: Secret('Kite Connect api secret'),
    request_token: Type.Optional(Secret('From the Kite login redirect (single use); or send access_token')),
    access_token: Type.Optional(Secret('An access token obtained elsewhere; or send request_token')),
    nickname: Type.Optional(Nickname),
  },
  {
    examples: [
      { broker: 'kite', api_key: 'kitekey1234abcd', api_secret: 'kitesecret5678', request_token: 'rt0123456789', nickname: 'Main' },
    ],
  },
);

export const RotateBody = Strict(
  {
    api_key: Type.Optional(Secret('A new api key (with api_secret)')),
    api_secret: Type.Optional(Secret('A new api secret (with api_key)')),
    request_token: Type.Optional(Secret('A request token for the (new) api key; or send access_token')),
    access_token: Type.Optional(Secret('An access token for the (new) api key; or send request_token')),
  },
  { examples: [{ api_key: 'newkite1234abcd', api_secret: 'newsecret5678', request_token: 'rt0123456789' }] },
);

export const UpdateBody = Strict(
  { nickname: Type.Optional(Nickname), preferences: Type.Optional(Preferences) },
  { minProperties: 1, examples: [{ nickname: 'Scalping', preferences: { default_product: 'MIS' } }] },
);

export const SessionBody = Strict(
  {
    request_token: Secret('From the Kite login redirect'),
    state: Type.String({ minLength: 1, maxLength: 100, description: 'The state of GET /kite-login-url, returned by the redirect' }),
  },
  { examples: [{ request_token: 'rt0123456789', state: 'state-from-the-login-url' }] },
);

export const LoginUrl = Type.Object({ login_url: Type.String(), state: Type.String(), expires_in: Type.Integer() });

export const VerifyBody = Strict({}, { examples: [{}] });

export const AccountParams = Strict({ account_id: Uuid });
export const CredentialsQuery = Strict({
  include_credentials: Type.Optional(
    Type.Boolean({ description: 'Needs X-Verification-Token (owner) or trading_accounts:credentials:read' }),
  ),
});

export type AccountBody = Static<typeof Account>;
export type StatusBody = Static<typeof Status200>;
