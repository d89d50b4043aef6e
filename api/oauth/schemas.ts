// Request and response schemas of Google sign-in and of the user's linked identities.
import { Type } from '@sinclair/typebox';
import { Strict } from '../http/route';

const Param = Type.String({ minLength: 1, maxLength: 2048 });

export const StartBody = Strict(
  {
    redirect_uri: Type.Optional(
      Type.String({ minLength: 1, maxLength: 2048, description: 'One of GOOGLE_OAUTH_REDIRECT_URI (default: the first)' }),
    ),
    remember_me: Type.Optional(Type.Boolean({ description: 'A persistent session, as at login' })),
  },
  { examples: [{ redirect_uri: 'http://localhost:8001/v1/auth/oauth/google/callback' }] },
);

export const Started = Type.Object({
  authorization_url: Type.String({ description: "Send the browser here (Google's consent page)" }),
  state: Type.String({ description: 'Single use, valid for 10 minutes; comes back with the code' }),
});

export const CallbackBody = Strict(
  { code: Param, state: Param },
  { examples: [{ code: '4/0AeaYSHB-example-code', state: 'Qm9ndXMtZXhhbXBsZS10b2tlbi1vZi00My1jaGFycw' }] },
);

// The provider adds parameters of its own (Google: scope, authuser, prompt, hd): they are allowed.
export const CallbackQuery = Type.Object({
  code: Type.Optional(Param),
  state: Type.Optional(Param),
  error: Type.Optional(Type.String({ maxLength: 256 })),
  error_description: Type.Optional(Type.String({ maxLength: 2048 })),
  iss: Type.Optional(Type.String({ maxLength: 2048, description: 'The issuer of the answer (RFC 9207)' })),
});

export const IdentityParams = Strict({ provider: Type.Union([Type.Literal('google')]) });
