// Request and response schemas of the authentication endpoints. The TypeScript types of the
// handlers' input are derived from these, and so is the OpenAPI document.
import { Type } from '@sinclair/typebox';
import { Strict } from '../http/route';

export const Email = Type.String({ format: 'email', maxLength: 254, description: 'Email address (case-insensitive)' });
// The policy says what is wrong with a password; the schema only bounds its size.
export const Password = Type.String({ minLength: 1, maxLength: 1024 });
export const OpaqueToken = Type.String({ minLength: 16, maxLength: 512 });

export const RegisterBody = Strict({
  email: Email,
  password: Password,
  name: Type.String({ minLength: 1, maxLength: 100 }),
  phone: Type.Optional(Type.String({ format: 'e164-phone' })),
  timezone: Type.Optional(Type.String({ format: 'iana-timezone', maxLength: 64 })),
  locale: Type.Optional(Type.String({ format: 'bcp47-locale', maxLength: 35 })),
});

export const Registered = Type.Object({
  user_id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  status: Type.Literal('pending_verification'),
});

export const VerifyEmailBody = Strict({ token: OpaqueToken });
export const ResendBody = Strict({ email: Email });
export const Accepted = Type.Object({ status: Type.Literal('accepted'), message: Type.String() });

export const LoginBody = Strict({
  email: Email,
  password: Password,
  device_fingerprint: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  remember_me: Type.Optional(Type.Boolean()),
});

export const RefreshBody = Strict({ refresh_token: Type.Optional(OpaqueToken) });
export const LogoutBody = Strict({ all_devices: Type.Optional(Type.Boolean()) });
export const SessionParams = Strict({ session_id: Type.String({ format: 'uuid' }) });

const PublicUser = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.String(),
  email_verified: Type.Boolean(),
  status: Type.String(),
  mfa_enabled: Type.Boolean(),
  roles: Type.Array(Type.String()),
});

export const TokenPair = Type.Object({
  access_token: Type.String(),
  refresh_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer(),
  session_id: Type.String({ format: 'uuid' }),
  user: PublicUser,
});

export const MfaChallenge = Type.Object({ mfa_required: Type.Literal(true), mfa_token: Type.String(), expires_in: Type.Integer() });

export const Sessions = Type.Object({
  sessions: Type.Array(
    Type.Object({
      id: Type.String({ format: 'uuid' }),
      device_fingerprint: Type.Union([Type.String(), Type.Null()]),
      user_agent: Type.Union([Type.String(), Type.Null()]),
      ip: Type.Union([Type.String(), Type.Null()]),
      country: Type.Union([Type.String(), Type.Null()]),
      persistent: Type.Boolean(),
      created_at: Type.String({ format: 'date-time' }),
      last_active_at: Type.String({ format: 'date-time' }),
      expires_at: Type.String({ format: 'date-time' }),
      current: Type.Boolean(),
    }),
  ),
});

export const ServiceTokenBody = Strict({
  client_id: Type.String({ format: 'uuid' }),
  client_secret: Type.String({ minLength: 16, maxLength: 256 }),
});
export const ServiceToken = Type.Object({ access_token: Type.String(), token_type: Type.Literal('Bearer'), expires_in: Type.Integer() });

export const ResetRequestBody = Strict({ email: Email });
export const ResetBody = Strict({ token: OpaqueToken, new_password: Password });
