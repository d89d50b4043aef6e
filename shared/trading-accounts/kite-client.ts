// The Kite Connect client (axios): the three calls the service makes, Kite's envelope parsed in one
// place, and retries with backoff on what may pass (network errors, timeouts, 429, 5xx) but never
// on what will not (TokenException, InputException: the credentials are wrong). Errors never carry
// a credential: Kite's message and error type, the HTTP status, and how many attempts were made.
import crypto from 'node:crypto';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import type { Config } from '../config';

/** Kite refused the credentials (the account is `invalid`), or could not be reached (`error`). */
export class KiteError extends Error {
  constructor(
    message: string,
    readonly kind: 'rejected' | 'unavailable',
    /** Kite's `error_type` (TokenException, InputException…), when it answered with one. */
    readonly errorType: string | null,
    readonly status: number | null,
    /** Requests sent for this call: more than one means an earlier one may have reached Kite. */
    readonly attempts: number,
  ) {
    super(message);
  }
}

export interface KiteSession {
  accessToken: string;
  userId: string;
  userName: string | null;
}

export interface KiteProfile {
  userId: string;
  userName: string | null;
}

export interface KiteClient {
  /** POST /session/token: a request token (single use) for an access token. */
  createSession(apiKey: string, apiSecret: string, requestToken: string): Promise<KiteSession>;
  /** GET /user/profile: proves an access token works, and says whose it is. */
  profile(apiKey: string, accessToken: string): Promise<KiteProfile>;
  /** DELETE /session/token: ends the access token's session. */
  logout(apiKey: string, accessToken: string): Promise<void>;
  /** Kite's login page for this api key, returning `redirectParams` to the app's redirect URL. */
  loginUrl(apiKey: string, redirectParams: Record<string, string>): string;
}

type KiteConfig = Pick<Config, 'kite' | 'tradingAccounts'>;

/** Kite's login page for an api key, carrying `redirectParams` back to the redirect URL. Needs no client. */
export function kiteLoginPageUrl(config: Pick<Config, 'tradingAccounts'>, apiKey: string, redirectParams: Record<string, string>): string {
  const url = new URL(config.tradingAccounts.loginUrl);
  url.searchParams.set('v', '3');
  url.searchParams.set('api_key', apiKey);
  url.searchParams.set('redirect_params', new URLSearchParams(redirectParams).toString());
  return url.toString();
}

/** Kite's checksum of a session request: hex SHA-256 of api_key + request_token + api_secret. */
export function sessionChecksum(apiKey: string, requestToken: string, apiSecret: string): string {
  return crypto
    .createHash('sha256')
    .update(apiKey + requestToken + apiSecret)
    .digest('hex');
}

// Kite's error types that say the credentials or the request are wrong: retrying cannot help.
const REJECTIONS = new Set(['TokenException', 'InputException', 'PermissionException', 'UserException', 'TwoFAException']);
const MAX_RETRY_AFTER_MS = 30_000;

interface Envelope {
  status?: string;
  data?: unknown;
  message?: string;
  error_type?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function retryAfterMs(response: AxiosResponse): number | null {
  const header = Number(response.headers['retry-after']);
  return Number.isFinite(header) && header >= 0 ? Math.min(header * 1000, MAX_RETRY_AFTER_MS) : null;
}

/** One answer of Kite: its data, a rejection, or something worth retrying (`retry` set). */
function parse(response: AxiosResponse, attempts: number): { data: Record<string, unknown> } | { error: KiteError; retry: boolean } {
  const body = (typeof response.data === 'object' && response.data !== null ? response.data : {}) as Envelope;
  const status = response.status;
  if (status >= 200 && status < 300 && body.status === 'success') return { data: (body.data ?? {}) as Record<string, unknown> };
  const errorType = typeof body.error_type === 'string' ? body.error_type : null;
  const message = `Kite answered ${status}${errorType ? ` ${errorType}` : ''}: ${String(body.message ?? 'no message').slice(0, 200)}`;
  if (status === 429 || status >= 500 || (status < 400 && body.status !== 'success')) {
    return { error: new KiteError(message, 'unavailable', errorType, status, attempts), retry: true };
  }
  const rejected = status === 403 || (errorType !== null && REJECTIONS.has(errorType)) || status === 400;
  return { error: new KiteError(message, rejected ? 'rejected' : 'unavailable', errorType, status, attempts), retry: false };
}

export function createKiteClient(config: KiteConfig): KiteClient {
  const http: AxiosInstance = axios.create({
    baseURL: config.kite.baseUrl,
    timeout: config.kite.timeoutMs,
    headers: { 'X-Kite-Version': '3' },
    // Every answer is parsed here, whatever its status.
    validateStatus: () => true,
  });
  const attemptsAllowed = config.kite.maxRetries;
  const backoff = (attempt: number) => config.tradingAccounts.retryBackoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() * 0.5);

  async function request(
    method: 'get' | 'post' | 'delete',
    path: string,
    options: { form?: Record<string, string>; params?: Record<string, string>; auth?: string },
  ) {
    let last: KiteError | null = null;
    for (let attempt = 1; attempt <= attemptsAllowed; attempt += 1) {
      let response: AxiosResponse;
      try {
        response = await http.request({
          method,
          url: path,
          params: options.params,
          data: options.form ? new URLSearchParams(options.form).toString() : undefined,
          headers: {
            ...(options.form && { 'Content-Type': 'application/x-www-form-urlencoded' }),
            ...(options.auth && { Authorization: options.auth }),
          },
        });
      } catch (err) {
        // The request's config (with the credentials) stays out of the error.
        const code = (err as { code?: string }).code ?? 'network error';
        last = new KiteError(`Kite could not be reached (${code})`, 'unavailable', null, null, attempt);
        if (attempt < attemptsAllowed) await sleep(backoff(attempt));
        continue;
      }
      const parsed = parse(response, attempt);
      if ('data' in parsed) return parsed.data;
      last = parsed.error;
      if (!parsed.retry) throw last;
      if (attempt < attemptsAllowed) await sleep(Math.max(retryAfterMs(response) ?? 0, backoff(attempt)));
    }
    throw last!;
  }

  const text = (value: unknown) => (typeof value === 'string' && value ? value : null);

  return {
    async createSession(apiKey, apiSecret, requestToken) {
      const data = await request('post', '/session/token', {
        form: { api_key: apiKey, request_token: requestToken, checksum: sessionChecksum(apiKey, requestToken, apiSecret) },
      });
      const accessToken = text(data.access_token);
      const userId = text(data.user_id);
      if (!accessToken || !userId) throw new KiteError('Kite answered a session without an access token', 'unavailable', null, 200, 1);
      return { accessToken, userId, userName: text(data.user_name) };
    },
    async profile(apiKey, accessToken) {
      const data = await request('get', '/user/profile', { auth: `token ${apiKey}:${accessToken}` });
      const userId = text(data.user_id);
      if (!userId) throw new KiteError('Kite answered a profile without a user id', 'unavailable', null, 200, 1);
      return { userId, userName: text(data.user_name) };
    },
    async logout(apiKey, accessToken) {
      await request('delete', '/session/token', { params: { api_key: apiKey, access_token: accessToken } });
    },
    loginUrl: (apiKey, redirectParams) => kiteLoginPageUrl(config, apiKey, redirectParams),
  };
}
