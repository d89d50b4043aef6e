// Request and response schemas of the authentication endpoints. The handlers' input types, the
// presenters' output types and the OpenAPI document are all derived from these.
import { Type, type Static } from '@sinclair/typebox';
import { OneOf, Strict } from '../http/route';

const Uuid = Type.String({ format: 'uuid' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);

export const Email = Type.String({ format: 'email', maxLength: 254, description: 'Email address (case-insensitive)' });
// The policy says what is wrong with a password; the schema only bounds its size.
export const Password = Type.String({ minLength: 1, maxLength: 1024 });
export const OpaqueToken = Type.String({ minLength: 16, maxLength: 512 });

const EXAMPLE_PASSWORD = 'Correct-Horse-Battery-9';
const EXAMPLE_TOKEN = 'Qm9ndXMtZXhhbXBsZS10b2tlbi1vZi00My1jaGFycw';

export const RegisterBody = Strict(
  {
    email: Email,
    password: Password,
    name: Type.String({ minLength: 1, maxLength: 100 }),
    phone: Type.Optional(Type.String({ format: 'e164-phone' })),
    timezone: Type.Optional(Type.String({ format: 'iana-timezone', maxLength: 64 })),
    locale: Type.Optional(Type.String({ format: 'bcp47-locale', maxLength: 35 })),
  },
  { examples: [{ email: 'asha@example.com', password: EXAMPLE_PASSWORD, name: 'Asha Rao', timezone: 'Asia/Kolkata', locale: 'en-IN' }] },
);

export const Registered = Type.Object({ user_id: Uuid, email: Type.String(), status: Type.Literal('pending_verification') });

export const VerifyEmailBody = Strict({ token: OpaqueToken }, { examples: [{ token: EXAMPLE_TOKEN }] });
export const Verified = Type.Object({ status: Type.Literal('active') });
export const ResendBody = Strict({ email: Email }, { examples: [{ email: 'asha@example.com' }] });
export const Accepted = Type.Object({ status: Type.Literal('accepted'), message: Type.String() });

export const LoginBody = Strict(
  {
    email: Email,
    password: Password,
    device_fingerprint: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    remember_me: Type.Optional(Type.Boolean()),
  },
  { examples: [{ email: 'asha@example.com', password: EXAMPLE_PASSWORD, remember_me: true }] },
);

export const RefreshBody = Strict(
  { refresh_token: Type.Optional(OpaqueToken) },
  { examples: [{ refresh_token: EXAMPLE_TOKEN }], description: 'Empty to use the refresh cookie' },
);
export const LogoutBody = Strict({ all_devices: Type.Optional(Type.Boolean()) }, { examples: [{ all_devices: false }] });
export const SessionParams = Strict({ session_id: Uuid });

export const PublicUser = Type.Object({
  id: Uuid,
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
  session_id: Uuid,
  user: PublicUser,
});

export const MfaChallenge = Type.Object({
  mfa_required: Type.Literal(true),
  mfa_token: Type.String({ description: 'Send it with a code to POST /v1/auth/mfa/verify' }),
  expires_in: Type.Integer(),
});

export const SignInResult = OneOf([TokenPair, MfaChallenge], { description: 'A token pair, or an MFA challenge when the account has MFA' });

export const Sessions = Type.Object({
  sessions: Type.Array(
    Type.Object({
      id: Uuid,
      device_fingerprint: Nullable(Type.String()),
      user_agent: Nullable(Type.String()),
      ip: Nullable(Type.String()),
      country: Nullable(Type.String()),
      persistent: Type.Boolean(),
      created_at: Type.String({ format: 'date-time' }),
      last_active_at: Type.String({ format: 'date-time' }),
      expires_at: Type.String({ format: 'date-time', description: 'Whichever end comes first: absolute expiry or inactivity' }),
      current: Type.Boolean(),
    }),
  ),
});

export const ServiceTokenBody = Strict(
  { client_id: Uuid, client_secret: Type.String({ minLength: 16, maxLength: 256 }) },
  { examples: [{ client_id: '0b9e5a62-3c1d-4f7e-8a2b-6d4c9e1f3a57', client_secret: EXAMPLE_TOKEN }] },
);
export const ServiceToken = Type.Object({ access_token: Type.String(), token_type: Type.Literal('Bearer'), expires_in: Type.Integer() });

export const ResetRequestBody = Strict({ email: Email }, { examples: [{ email: 'asha@example.com' }] });
export const ResetBody = Strict(
  { token: OpaqueToken, new_password: Password },
  { examples: [{ token: EXAMPLE_TOKEN, new_password: 'Another-Long-Passphrase-7' }] },
);

export type TokenPairBody = Static<typeof TokenPair>;
export type MfaChallengeBody = Static<typeof MfaChallenge>;
export type SessionsBody = Static<typeof Sessions>;
