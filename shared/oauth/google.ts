// "Sign in with Google" (OpenID Connect, authorization code flow with PKCE): the start, which keeps
// a single-use state in Redis with its PKCE verifier, nonce and redirect URI, and the callback,
// which takes that state back before anything reaches the provider, exchanges the code, verifies
// the ID token and ends in `finishSignIn()` like every other sign-in.
import crypto from 'node:crypto';
import type { Context } from '../context';
import { BadRequestError, UnavailableError, ValidationError } from '../errors';
import type { EventOrigin } from '../events/outbox';
import { hashOpaqueToken } from '../crypto/access-tokens';
import { finishSignIn, type SignInResult } from '../auth/sign-in';
import type { ClientInfo } from '../auth/sessions';
import { createOidcProvider, type OidcProvider } from './provider';
import { userForGoogleIdentity } from './identities';

const STATE_TTL_SECONDS = 600;
const SCOPE = 'openid email profile';

/** What a started sign-in keeps until its callback (Redis, by the hash of its state). */
interface PendingSignIn {
  verifier: string;
  nonce: string;
  redirectUri: string;
  persistent: boolean;
  /** Hash of the browser binding handed to the starting client (a cookie, for the browser callback). */
  bindingHash: string;
}

// One provider per context, built on first use: a process that never signs anyone in with
// Google never reaches the provider, and its discovery document and keys are cached per process.
const providers = new WeakMap<Context, OidcProvider>();

function providerOf(app: Context): OidcProvider {
  let provider = providers.get(app);
  if (!provider) providers.set(app, (provider = createOidcProvider(app.config.google)));
  return provider;
}

const stateKey = (app: Context, state: string) => app.key('oauth-state', hashOpaqueToken(state));
const random = () => crypto.randomBytes(32).toString('base64url');

function assertConfigured(app: Context): void {
  if (!app.config.google.clientId || !app.config.google.clientSecret) {
    throw new UnavailableError(undefined, new Error('GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET are not set'));
  }
}

/**
 * Starts a sign-in: the URL to send the browser to, its state (256 random bits, 10 minutes, single
 * use), and a browser binding for the api to keep in a cookie: the browser callback accepts the
 * state only from the browser that started it, so nobody can make a victim's browser finish a
 * sign-in the attacker started (login CSRF, RFC 6749 10.12).
 */
export async function startGoogleSignIn(
  app: Context,
  input: { redirectUri?: string; persistent: boolean },
  ip: string | null,
): Promise<{ authorizationUrl: string; state: string; browserBinding: string }> {
  await app.limits.oauth.startPerIp.hit(ip ?? '-');
  assertConfigured(app);
  const allowed = app.config.google.redirectUris;
  const redirectUri = input.redirectUri ?? allowed[0];
  if (!allowed.includes(redirectUri)) {
    throw new ValidationError([{ field: 'redirect_uri', message: 'must be one of the configured redirect URIs' }]);
  }
  const { authorization_endpoint: endpoint } = await providerOf(app).metadata();
  const browserBinding = random();
  const pending: PendingSignIn = {
    verifier: random(),
    nonce: random(),
    redirectUri,
    persistent: input.persistent,
    bindingHash: hashOpaqueToken(browserBinding),
  };
  const state = random();
  await app.redis.set(stateKey(app, state), JSON.stringify(pending), 'EX', STATE_TTL_SECONDS);
  const url = new URL(endpoint);
  const challenge = crypto.createHash('sha256').update(pending.verifier).digest('base64url');
  const params = {
    response_type: 'code',
    client_id: app.config.google.clientId,
    redirect_uri: redirectUri,
    scope: SCOPE,
    state,
    nonce: pending.nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  return { authorizationUrl: url.toString(), state, browserBinding };
}

/** The meaning of the provider's `error` (RFC 6749, 4.1.2.1; OpenID Connect Core 3.1.2.6). */
const PROVIDER_ERRORS: Record<string, string> = {
  access_denied: 'The sign-in was cancelled, or access was refused at Google.',
  login_required: 'Google needs you to sign in; start again.',
  consent_required: 'Google needs your consent; start again.',
  interaction_required: 'Google needs you to act; start again.',
  account_selection_required: 'Choose a Google account; start again.',
  temporarily_unavailable: 'Google is temporarily unavailable; try again shortly.',
  server_error: 'Google could not complete the sign-in; try again shortly.',
};

/** What the browser brings back from the provider (or a client posts). */
export interface CallbackInput {
  state?: string;
  code?: string;
  error?: string;
  /** The issuer of the answer (RFC 9207), when the provider names it. */
  iss?: string;
  /**
   * The browser callback passes the binding its cookie holds (null: no cookie); a client posting
   * the code itself passes nothing, since it holds the state of its own start call.
   */
  browserBinding?: string | null;
}

/**
 * Completes a sign-in. The state is taken (GETDEL) first: a missing, unknown, expired or reused
 * state ends here, before any call to the provider, and no state can be used twice even by
 * callbacks arriving at once.
 */
export async function completeGoogleSignIn(app: Context, input: CallbackInput, client: ClientInfo): Promise<SignInResult> {
  await app.limits.oauth.callbackPerIp.hit(client.ip ?? '-');
  const stored = input.state ? await app.redis.getdel(stateKey(app, input.state)) : null;
  if (!stored) {
    throw new BadRequestError('invalid_state', 'The sign-in state is missing, unknown, expired or already used; start the sign-in again.');
  }
  const pending = JSON.parse(stored) as PendingSignIn;
  if (input.browserBinding !== undefined && (!input.browserBinding || hashOpaqueToken(input.browserBinding) !== pending.bindingHash)) {
    throw new BadRequestError(
      'browser_mismatch',
      'This sign-in was started in another browser, or its cookie was blocked; start again from this browser.',
    );
  }
  if (input.error) {
    const meaning = PROVIDER_ERRORS[input.error] ?? 'Google refused the sign-in; start again.';
    throw new BadRequestError(PROVIDER_ERRORS[input.error] ? input.error : 'provider_error', meaning);
  }
  if (!input.code) throw new ValidationError([{ field: 'code', message: 'is required' }]);
  assertConfigured(app);
  const provider = providerOf(app);
  if (input.iss !== undefined && input.iss !== (await provider.metadata()).issuer) {
    throw new BadRequestError('issuer_mismatch', 'The answer comes from another issuer than the one this sign-in started at.');
  }
  const identity = await provider.signIn({
    code: input.code,
    redirectUri: pending.redirectUri,
    verifier: pending.verifier,
    nonce: pending.nonce,
  });
  const origin: EventOrigin = { actorId: null, ip: client.ip, userAgent: client.userAgent };
  const user = await userForGoogleIdentity(app, identity, origin);
  return finishSignIn(app, user, { method: 'google', persistent: pending.persistent, client });
}
