// Request and response schemas of the account endpoints.
import { Type, type Static } from '@sinclair/typebox';
import { Strict } from '../http/route';
import { Password } from '../auth/schemas';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const TradingAccountSummary = Type.Object({
  id: Uuid,
  broker: Type.String(),
  nickname: Nullable(Type.String()),
  status: Type.String(),
  broker_user_id: Nullable(Type.String()),
  api_key_masked: Type.String(),
  preferences: Type.Object({}, { additionalProperties: true }),
  last_verified_at: Nullable(DateTime),
  created_at: DateTime,
});

export const Me = Type.Object({
  id: Uuid,
  email: Type.String(),
  email_verified: Type.Boolean(),
  name: Type.String(),
  phone: Nullable(Type.String()),
  timezone: Type.String(),
  locale: Type.String(),
  avatar_url: Nullable(Type.String()),
  status: Type.String(),
  mfa_enabled: Type.Boolean(),
  roles: Type.Array(Type.String()),
  permissions: Type.Array(Type.String()),
  trading_accounts: Type.Array(TradingAccountSummary),
  created_at: DateTime,
  // Google sign-in (issue 13)
  identities: Type.Array(Type.Object({ provider: Type.String(), email: Nullable(Type.String()), linked_at: DateTime }), {
    description: 'Linked sign-in identities (Google)',
  }),
  has_password: Type.Boolean({ description: 'False for accounts that sign in with Google only (set one with the password reset flow)' }),
});

export const UpdateMeBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' })),
    phone: Type.Optional(Nullable(Type.String({ format: 'e164-phone' }))),
    timezone: Type.Optional(Type.String({ format: 'iana-timezone', maxLength: 64 })),
    locale: Type.Optional(Type.String({ format: 'bcp47-locale', maxLength: 35 })),
    avatar_url: Type.Optional(Nullable(Type.String({ format: 'https-url', maxLength: 2048 }))),
  },
  { additionalProperties: false, minProperties: 1, examples: [{ name: 'Asha Rao', timezone: 'Asia/Kolkata', phone: '+919812345678' }] },
);

export const DeleteMeBody = Strict(
  { password: Type.Optional(Password) },
  {
    examples: [{ password: 'Correct-Horse-Battery-9' }],
    description: 'Google-only accounts send {} with X-Verification-Token or a fresh sign-in',
  },
);

export const ChangePasswordBody = Strict(
  {
    current_password: Password,
    new_password: Password,
    revoke_other_sessions: Type.Optional(Type.Boolean({ description: 'Sign out every other session (default false)' })),
  },
  { examples: [{ current_password: 'Correct-Horse-Battery-9', new_password: 'Another-Long-Passphrase-7', revoke_other_sessions: true }] },
);

export const ProfileParams = Strict({ user_id: Uuid });
export const PublicProfile = Type.Object({ id: Uuid, name: Type.String(), avatar_url: Nullable(Type.String()), created_at: DateTime });

export type MeBody = Static<typeof Me>;
export type PublicProfileBody = Static<typeof PublicProfile>;

// Account lifecycle: email change.
export const EmailChangeBody = Strict(
  {
    new_email: Type.String({ format: 'email', maxLength: 254, description: 'The new address (case-insensitive)' }),
    password: Type.Optional(Password),
  },
  {
    examples: [{ new_email: 'asha.rao@example.com', password: 'Correct-Horse-Battery-9' }],
    description: 'Accounts without a password (Google only) omit it and send X-Verification-Token, or sign in again first',
  },
);
export const EmailChangeRequested = Type.Object({
  status: Type.Literal('pending_confirmation'),
  expires_in: Type.Integer({ description: 'Seconds the link sent to the new address works' }),
});
export const EmailChangeConfirmBody = Strict(
  { token: Type.String({ minLength: 16, maxLength: 512 }) },
  { examples: [{ token: 'Qm9ndXMtZXhhbXBsZS10b2tlbi1vZi00My1jaGFycw' }] },
);
export const EmailChanged = Type.Object({ email: Type.String(), email_verified: Type.Literal(true) });
