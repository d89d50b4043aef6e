// A local OpenID Connect provider standing in for Google (the `oidc-provider` package): one
// confidential client with PKCE required, accounts with verified and unverified emails, and a
// login that the tests complete over HTTP without a page (`authorize`). It counts every request
// it gets, can stop answering (`down`), and can replace the ID token its token endpoint returns
// by one with other claims or another algorithm (`tamper`), signed with the key it publishes.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

export interface FakeAccount {
  sub: string;
  email: string;
  email_verified: boolean;
  name: string;
}

/** How to rewrite the next ID tokens: other claims, and the algorithm to sign them with. */
export type Tamper = (claims: JWTPayload) => { claims: JWTPayload; alg?: 'RS256' | 'HS256' | 'none' };

export interface FakeGoogle {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** Paths of every request the provider got, in order. */
  requests: string[];
  /** When set, connections are dropped without an answer. */
  down: boolean;
  /** When set, the token endpoint's ID token is rewritten. */
  tamper: Tamper | null;
  /** Every ID and access token the token endpoint gave out (to look for them where they must not be). */
  issuedTokens: string[];
  addAccount(account: Partial<FakeAccount>): FakeAccount;
  /** Signs `sub` in at the authorization URL and returns what the browser would bring back. */
  authorize(authorizationUrl: string, sub: string): Promise<{ callbackUrl: URL; query: Record<string, string> }>;
  close(): Promise<void>;
}

const SCOPE = 'openid email profile';

/**
 * Runs `create` without oidc-provider's start-up warnings (an unsupported Node version, the
 * in-memory adapter): both expected here, and noise in every test's output.
 */
async function quietly<T>(create: () => Promise<T>): Promise<T> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).startsWith('oidc-provider WARNING')) warn(...args);
  };
  try {
    return await create();
  } finally {
    console.warn = warn;
  }
}

export async function startFakeGoogle(options: { redirectUri?: string } = {}): Promise<FakeGoogle> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = `client-${crypto.randomBytes(4).toString('hex')}`;
  const clientSecret = crypto.randomBytes(32).toString('base64url');
  const redirectUri = options.redirectUri ?? 'http://localhost:8001/v1/auth/oauth/google/callback';
  const accounts = new Map<string, FakeAccount>();

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = crypto.randomBytes(8).toString('hex');
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };

  const provider = await quietly(async () => {
    const { default: Provider } = await import('oidc-provider');
    return new Provider(issuer, {
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_post',
        },
      ],
      jwks: { keys: [privateJwk] },
      cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
      pkce: { required: () => true },
      // Stated, so the provider does not print a notice for each default it falls back to.
      ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 600, Grant: 600 },
      // Google puts the email in the ID token itself.
      conformIdTokenClaims: false,
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
      features: { devInteractions: { enabled: false } },
      interactions: { url: (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      findAccount(_ctx: KoaContextWithOIDC, id: string) {
        const account = accounts.get(id);
        if (!account) return Promise.resolve(undefined);
        return Promise.resolve({ accountId: id, claims: () => Promise.resolve({ ...account }) });
      },
    });
  });

  const fake: FakeGoogle = {
    issuer,
    clientId,
    clientSecret,
    redirectUri,
    requests: [],
    down: false,
    tamper: null,
    issuedTokens: [],
    addAccount(partial) {
      const sub = partial.sub ?? crypto.randomBytes(10).toString('hex');
      const account: FakeAccount = {
        sub,
        email: partial.email ?? `g-${sub}@gmail.example`,
        email_verified: partial.email_verified ?? true,
        name: partial.name ?? 'Google User',
      };
      accounts.set(sub, account);
      return account;
    },
    authorize: (url, sub) => authorize(issuer, url, sub),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  // The token endpoint's answer, rewritten when the test asks for a crafted ID token.
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as { id_token?: string; access_token?: string } | undefined;
    if (ctx.path !== '/token' || ctx.status !== 200 || !body?.id_token) return;
    if (fake.tamper) {
      const { claims, alg = 'RS256' } = fake.tamper(decodeJwt(body.id_token));
      ctx.body = { ...body, id_token: await sign(claims, alg) };
    }
    fake.issuedTokens.push((ctx.body as { id_token: string }).id_token, ...(body.access_token ? [body.access_token] : []));
  });

  async function sign(claims: JWTPayload, alg: 'RS256' | 'HS256' | 'none'): Promise<string> {
    if (alg === 'none') {
      const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
    }
    if (alg === 'HS256') {
      // The classic confusion attack: HMAC with a value the client knows (its own secret).
      return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(clientSecret));
    }
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(privateKey);
  }

  // Completes the login (and the consent) of the account named in the interaction URL's query.
  async function interaction(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const sub = new URL(req.url!, issuer).searchParams.get('login') ?? '';
    const details = await provider.interactionDetails(req, res);
    const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id as string });
    grant.addOIDCScope(SCOPE);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { login: { accountId: sub }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  const callback = provider.callback();
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    fake.requests.push(new URL(req.url!, issuer).pathname);
    if (fake.down) {
      req.socket.destroy();
      return;
    }
    if (req.url!.startsWith('/interaction/')) {
      interaction(req, res).catch((err: Error) => {
        res.statusCode = 500;
        res.end(err.message);
      });
      return;
    }
    callback(req, res);
  });
  return fake;
}

/** Follows the provider's redirects like a browser (with its cookies) until they leave the provider. */
async function authorize(
  issuer: string,
  authorizationUrl: string,
  sub: string,
): Promise<{ callbackUrl: URL; query: Record<string, string> }> {
  const jar = new Map<string, string>();
  let url = new URL(authorizationUrl);
  for (let hop = 0; hop < 10; hop++) {
    if (url.origin !== issuer) return { callbackUrl: url, query: Object.fromEntries(url.searchParams) };
    if (url.pathname.startsWith('/interaction/')) url.searchParams.set('login', sub);
    const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
    const response = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const set of response.headers.getSetCookie()) {
      const [pair] = set.split(';');
      const at = pair.indexOf('=');
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const location = response.headers.get('location');
    if (!location) throw new Error(`the provider stopped at ${url.pathname}: ${response.status} ${await response.text()}`);
    await response.body?.cancel();
    url = new URL(location, url);
  }
  throw new Error('too many redirects at the provider');
}
