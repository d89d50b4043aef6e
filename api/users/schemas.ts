import { Type } from '@sinclair/typebox';
import { Strict } from '../http/route';
import { Password } from '../auth/schemas';

const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const TradingAccountSummary = Type.Object({
  id: Type.String({ format: 'uuid' }),
  broker: Type.String(),
  nickname: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  broker_user_id: Type.Union([Type.String(), Type.Null()]),
  api_key_masked: Type.String(),
  preferences: Type.Object({}, { additionalProperties: true }),
  last_verified_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
});

export const Me = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  email_verified: Type.Boolean(),
  name: Type.String(),
  phone: Type.Union([Type.String(), Type.Null()]),
  timezone: Type.String(),
  locale: Type.String(),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  mfa_enabled: Type.Boolean(),
  roles: Type.Array(Type.String()),
  permissions: Type.Array(Type.String()),
  trading_accounts: Type.Array(TradingAccountSummary),
  created_at: Type.String({ format: 'date-time' }),
});

export const UpdateMeBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' })),
    phone: Type.Optional(Nullable(Type.String({ format: 'e164-phone' }))),
    timezone: Type.Optional(Type.String({ format: 'iana-timezone', maxLength: 64 })),
    locale: Type.Optional(Type.String({ format: 'bcp47-locale', maxLength: 35 })),
    avatar_url: Type.Optional(Nullable(Type.String({ format: 'https-url', maxLength: 2048 }))),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const DeleteMeBody = Strict({ password: Type.Optional(Password) });

export const ChangePasswordBody = Strict({
  current_password: Password,
  new_password: Password,
  revoke_other_sessions: Type.Optional(Type.Boolean({ description: 'Sign out every other session (default false)' })),
});

export const ProfileParams = Strict({ user_id: Type.String({ format: 'uuid' }) });
export const PublicProfile = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
});
