// The OpenID Connect provider behind "Sign in with Google": its endpoints from the discovery
// document of GOOGLE_OAUTH_ISSUER, its keys (jose's remote key set), the code exchange with the
// PKCE verifier, and the ID token's checks. Nothing here is Google-specific, so the same code runs
// against Google and against the local provider of the tests.
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Config } from '../config';
import { BadRequestError, UnauthorizedError, UnavailableError } from '../errors';

/** The endpoints we use, from the discovery document. */
export interface ProviderMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
}

/** What a verified ID token tells about the person. */
export interface GoogleIdentity {
  sub: string;
  email: string;
  name: string | null;
  picture: string | null;
}

/** The discovery document is re-read after this long; the key set refreshes itself on an unknown `kid`. */
const DISCOVERY_TTL_MS = 60 * 60 * 1000;
/** Allowed difference between our clock and the provider's when checking `exp` and `iat`. */
const CLOCK_SKEW_SECONDS = 60;

const UNREACHABLE = 'Google sign-in is unavailable: the provider could not be reached. Try again shortly.';
const INVALID_ID_TOKEN = 'The identity token from the provider could not be verified; start the sign-in again.';

/** Google writes its issuer with and without the scheme (its documentation says to accept both). */
export function allowedIssuers(issuer: string): string[] {
  const url = new URL(issuer);
  return url.hostname === 'accounts.google.com' ? [issuer, url.hostname] : [issuer];
}

export interface OidcProvider {
  metadata(): Promise<ProviderMetadata>;
  /** Exchanges an authorization code (with its PKCE verifier) and returns the verified identity. */
  signIn(input: { code: string; redirectUri: string; verifier: string; nonce: string }): Promise<GoogleIdentity>;
}

async function fetchWithTimeout(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    // The cause names the host and the network error only: the request body (code, verifier,
    // client secret) is never part of it.
    throw new UnavailableError(UNREACHABLE, err);
  }
}

export function createOidcProvider(config: Config['google']): OidcProvider {
  let discovery: { at: number; metadata: Promise<ProviderMetadata> } | null = null;
  let keys: { uri: string; set: ReturnType<typeof createRemoteJWKSet> } | null = null;

  async function discover(): Promise<ProviderMetadata> {
    const response = await fetchWithTimeout(`${config.issuer}/.well-known/openid-configuration`, {}, config.timeoutMs);
    if (!response.ok) throw new UnavailableError(UNREACHABLE, new Error(`discovery answered ${response.status}`));
    const doc = (await response.json().catch(() => ({}))) as Partial<ProviderMetadata>;
    const fields = ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const;
    // OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was fetched for.
    if (fields.some((f) => typeof doc[f] !== 'string') || doc.issuer!.replace(/\/$/, '') !== config.issuer) {
      throw new UnavailableError(UNREACHABLE, new Error('the discovery document is incomplete or names another issuer'));
    }
    return doc as ProviderMetadata;
  }

  function metadata(): Promise<ProviderMetadata> {
    if (discovery && Date.now() - discovery.at < DISCOVERY_TTL_MS) return discovery.metadata;
    const pending = { at: Date.now(), metadata: discover() };
    discovery = pending;
    // A failure is not cached: the next sign-in asks again.
    pending.metadata.catch(() => {
      if (discovery === pending) discovery = null;
    });
    return pending.metadata;
  }

  function keySet(uri: string) {
    if (keys?.uri !== uri) {
      keys = { uri, set: createRemoteJWKSet(new URL(uri), { timeoutDuration: config.timeoutMs, cooldownDuration: 30_000 }) };
    }
    return keys.set;
  }

  async function exchange(endpoint: string, input: { code: string; redirectUri: string; verifier: string }): Promise<string> {
    const body = new URLSearchParams({
      grant_type: 'authorization_code',
      code: input.code,
      redirect_uri: input.redirectUri,
      code_verifier: input.verifier,
      client_id: config.clientId,
      client_secret: config.clientSecret,
    });
    const response = await fetchWithTimeout(
      endpoint,
      { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body },
      config.timeoutMs,
    );
    const answer = (await response.json().catch(() => ({}))) as { error?: unknown; id_token?: unknown };
    if (response.status === 400 && answer.error === 'invalid_grant') {
      throw new BadRequestError('invalid_grant', 'The authorization code is invalid, expired or already used; start the sign-in again.');
    }
    if (!response.ok || typeof answer.id_token !== 'string') {
      // Our client credentials refused, or the provider failing: nothing the user can fix.
      const error = typeof answer.error === 'string' ? answer.error.slice(0, 64) : 'none';
      throw new UnavailableError(UNREACHABLE, new Error(`token endpoint answered ${response.status} (error: ${error})`));
    }
    return answer.id_token;
  }

  async function verify(idToken: string, jwksUri: string): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(idToken, keySet(jwksUri), {
        issuer: allowedIssuers(config.issuer),
        audience: config.clientId,
        algorithms: ['RS256'],
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['sub', 'iat', 'exp', 'nonce'],
      });
      return payload;
    } catch (err) {
      // The key set could not be fetched or read (a network error, a timeout, an answer that is not
      // a key set: jose's generic error): the provider is at fault, not the token.
      const keySetFailed =
        !(err instanceof joseErrors.JOSEError) ||
        err instanceof joseErrors.JWKSTimeout ||
        err instanceof joseErrors.JWKSInvalid ||
        err.constructor === joseErrors.JOSEError;
      if (keySetFailed) throw new UnavailableError(UNREACHABLE, err);
      throw new UnauthorizedError(INVALID_ID_TOKEN, 'invalid_id_token');
    }
  }

  return {
    metadata,
    async signIn(input) {
      const { token_endpoint: tokenEndpoint, jwks_uri: jwksUri } = await metadata();
      const payload = await verify(await exchange(tokenEndpoint, input), jwksUri);
      // The nonce ties the token to the browser that started this sign-in (replay of another token).
      if (payload.nonce !== input.nonce) throw new UnauthorizedError(INVALID_ID_TOKEN, 'invalid_id_token');
      // A token for several audiences must say which one it was issued to (OpenID Connect Core 3.1.3.7).
      if ((payload.azp !== undefined || (Array.isArray(payload.aud) && payload.aud.length > 1)) && payload.azp !== config.clientId) {
        throw new UnauthorizedError(INVALID_ID_TOKEN, 'invalid_id_token');
      }
      const email = typeof payload.email === 'string' ? payload.email : '';
      if (!email || (payload.email_verified !== true && payload.email_verified !== 'true')) {
        throw new UnauthorizedError(
          'Google has not verified the email address of this Google account; verify it with Google first.',
          'google_email_unverified',
        );
      }
      return {
        sub: payload.sub!,
        email,
        name: typeof payload.name === 'string' ? payload.name : null,
        picture: typeof payload.picture === 'string' ? payload.picture : null,
      };
    },
  };
}
