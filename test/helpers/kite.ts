// A fake Kite Connect API: a real HTTP server speaking Kite's protocol as the service uses it
// (POST /session/token with its checksum, GET /user/profile, DELETE /session/token), answering in
// Kite's envelopes with Content-Type: application/json. Request tokens work once, as at Kite.
// Tests script failures per route (5xx, 429, timeouts, an answer lost after the token was spent,
// a request held until released) and count the requests each route received.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Behaviour =
  | 'normal'
  | { status: number; errorType?: string; message?: string; retryAfter?: number }
  /** No answer at all (the client times out). */
  | 'timeout'
  /** Does the work (spends the request token), then answers 503: the answer is lost. */
  | 'lose-answer'
  /** Waits until `release()` before answering normally. */
  | 'hold';

export type Route = 'POST /session/token' | 'GET /user/profile' | 'DELETE /session/token';

export interface KiteApp {
  apiKey: string;
  apiSecret: string;
  userId: string;
  userName: string;
}

export interface KiteRequest {
  route: string;
  apiKey: string | null;
  at: number;
}

export interface FakeKite {
  url: string;
  /** Settings that point the app at this server. */
  env(): Record<string, string>;
  /** A Kite Connect app (api key and secret) of a Kite user. */
  addApp(app?: Partial<KiteApp>): KiteApp;
  /** A fresh request token of that app, as the login redirect would carry. */
  requestToken(apiKey: string): string;
  /** An access token issued directly (as if obtained elsewhere). */
  accessToken(apiKey: string): string;
  /** Ends every access token of the app (as 06:00 IST does). */
  expireTokens(apiKey: string): void;
  isLive(accessToken: string): boolean;
  /** The next requests of `route` behave as listed, in order; then normally. */
  script(route: Route, behaviours: Behaviour[]): void;
  /** Every request of `route` behaves so, until `reset()`. */
  always(route: Route, behaviour: Behaviour): void;
  /** Answers the requests held by 'hold'. */
  release(): void;
  /** Resolves when a request of `route` is being held. */
  held(route: Route): Promise<void>;
  reset(): void;
  requests: KiteRequest[];
  count(route: Route, apiKey?: string): number;
  /** Every api key, secret and token this server knows: none may show anywhere but in a reveal. */
  secrets(): string[];
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json';

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'Content-Type': JSON_TYPE, ...headers });
  res.end(JSON.stringify(body));
}

const success = (res: http.ServerResponse, data: unknown) => send(res, 200, { status: 'success', data });
const failure = (res: http.ServerResponse, status: number, errorType: string, message: string, headers: Record<string, string> = {}) =>
  send(res, status, { status: 'error', message, data: null, error_type: errorType }, headers);

const readBody = (req: http.IncomingMessage) =>
  new Promise<string>((resolve) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => resolve(body));
  });

export async function startFakeKite(): Promise<FakeKite> {
  const apps = new Map<string, KiteApp>();
  const requestTokens = new Map<string, { apiKey: string; used: boolean }>();
  const accessTokens = new Map<string, { apiKey: string; live: boolean }>();
  const scripts = new Map<string, Behaviour[]>();
  const permanent = new Map<string, Behaviour>();
  const requests: KiteRequest[] = [];
  const sockets = new Set<Socket>();
  let holds: Array<() => void> = [];
  const holdWaiters: Array<{ route: string; resolve: () => void }> = [];

  const nextBehaviour = (route: string): Behaviour => permanent.get(route) ?? scripts.get(route)?.shift() ?? 'normal';

  function createSession(res: http.ServerResponse, form: URLSearchParams): boolean {
    const apiKey = form.get('api_key') ?? '';
    const requestToken = form.get('request_token') ?? '';
    const checksum = form.get('checksum') ?? '';
    const app = apps.get(apiKey);
    if (!apiKey || !requestToken || !checksum) {
      failure(res, 400, 'InputException', 'Missing api_key, request_token or checksum.');
      return false;
    }
    if (!app) {
      failure(res, 403, 'TokenException', 'Invalid `api_key`.');
      return false;
    }
    const expected = crypto
      .createHash('sha256')
      .update(apiKey + requestToken + app.apiSecret)
      .digest('hex');
    if (checksum !== expected) {
      failure(res, 403, 'TokenException', 'Invalid `checksum`.');
      return false;
    }
    const token = requestTokens.get(requestToken);
    if (!token || token.used || token.apiKey !== apiKey) {
      failure(res, 403, 'TokenException', 'Token is invalid or has expired.');
      return false;
    }
    token.used = true;
    const accessToken = crypto.randomBytes(16).toString('hex');
    accessTokens.set(accessToken, { apiKey, live: true });
    success(res, {
      user_type: 'individual',
      email: 'trader@example.com',
      user_name: app.userName,
      user_shortname: app.userName.split(' ')[0],
      broker: 'ZERODHA',
      exchanges: ['NSE', 'BSE'],
      products: ['CNC', 'MIS'],
      order_types: ['MARKET', 'LIMIT'],
      avatar_url: null,
      user_id: app.userId,
      api_key: apiKey,
      access_token: accessToken,
      public_token: crypto.randomBytes(8).toString('hex'),
      refresh_token: '',
      login_time: new Date().toISOString().replace('T', ' ').slice(0, 19),
      meta: { demat_consent: 'consent' },
    });
    return true;
  }

  function profile(req: http.IncomingMessage, res: http.ServerResponse): void {
    const match = /^token ([^:]+):(.+)$/.exec(req.headers.authorization ?? '');
    const token = match && accessTokens.get(match[2]);
    const app = match && apps.get(match[1]);
    if (!match || !token || !token.live || token.apiKey !== match[1] || !app) {
      failure(res, 403, 'TokenException', 'Incorrect `api_key` or `access_token`.');
      return;
    }
    success(res, {
      user_id: app.userId,
      user_name: app.userName,
      user_shortname: app.userName.split(' ')[0],
      email: 'trader@example.com',
      user_type: 'individual',
      broker: 'ZERODHA',
      exchanges: ['NSE', 'BSE'],
      products: ['CNC', 'MIS'],
      order_types: ['MARKET', 'LIMIT'],
      avatar_url: null,
      meta: { demat_consent: 'consent' },
    });
  }

  function logout(url: URL, res: http.ServerResponse): void {
    const token = accessTokens.get(url.searchParams.get('access_token') ?? '');
    if (!token || token.apiKey !== url.searchParams.get('api_key')) {
      failure(res, 403, 'TokenException', 'Incorrect `api_key` or `access_token`.');
      return;
    }
    token.live = false;
    success(res, true);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kite.local');
    const route = `${req.method} ${url.pathname}`;
    const body = await readBody(req);
    const form = new URLSearchParams(body);
    const apiKey =
      form.get('api_key') ?? url.searchParams.get('api_key') ?? /^token ([^:]+):/.exec(req.headers.authorization ?? '')?.[1] ?? null;
    requests.push({ route, apiKey, at: Date.now() });
    if (req.headers['x-kite-version'] !== '3') return failure(res, 400, 'InputException', 'Missing or wrong X-Kite-Version header.');
    const known = ['POST /session/token', 'GET /user/profile', 'DELETE /session/token'];
    if (!known.includes(route)) return failure(res, 404, 'GeneralException', 'Route not found');
    if (req.method === 'POST' && !String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return failure(res, 400, 'InputException', 'The body must be form-encoded.');
    }

    const behaviour = nextBehaviour(route);
    if (behaviour === 'timeout') return;
    if (behaviour === 'hold') {
      await new Promise<void>((resolve) => {
        holds.push(resolve);
        for (const waiter of holdWaiters.splice(0)) {
          if (waiter.route === route) waiter.resolve();
          else holdWaiters.push(waiter);
        }
      });
    } else if (typeof behaviour === 'object') {
      const headers: Record<string, string> = behaviour.retryAfter !== undefined ? { 'Retry-After': String(behaviour.retryAfter) } : {};
      const errorType = behaviour.errorType ?? (behaviour.status === 429 ? 'NetworkException' : 'GeneralException');
      return failure(res, behaviour.status, errorType, behaviour.message ?? `Scripted ${behaviour.status}`, headers);
    }

    if (route === 'POST /session/token') {
      if (behaviour === 'lose-answer') {
        const sink = { writeHead: () => sink, end: () => sink, destroyed: false } as unknown as http.ServerResponse;
        createSession(sink, form);
        return failure(res, 503, 'NetworkException', 'Gateway timed out after doing the work.');
      }
      createSession(res, form);
      return;
    }
    if (route === 'GET /user/profile') return profile(req, res);
    return logout(url, res);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => failure(res, 500, 'GeneralException', 'fake failed'));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    env: () => ({ KITE_API_BASE_URL: url, KITE_LOGIN_URL: `${url}/connect/login` }),
    addApp(partial = {}) {
      const app: KiteApp = {
        apiKey: partial.apiKey ?? `key${crypto.randomBytes(6).toString('hex')}`,
        apiSecret: partial.apiSecret ?? `sec${crypto.randomBytes(12).toString('hex')}`,
        userId: partial.userId ?? `AB${crypto.randomInt(1000, 9999)}`,
        userName: partial.userName ?? 'Asha Rao',
      };
      apps.set(app.apiKey, app);
      return app;
    },
    requestToken(apiKey) {
      const token = crypto.randomBytes(16).toString('hex');
      requestTokens.set(token, { apiKey, used: false });
      return token;
    },
    accessToken(apiKey) {
      const token = crypto.randomBytes(16).toString('hex');
      accessTokens.set(token, { apiKey, live: true });
      return token;
    },
    expireTokens(apiKey) {
      for (const token of accessTokens.values()) if (token.apiKey === apiKey) token.live = false;
    },
    isLive: (accessToken) => accessTokens.get(accessToken)?.live === true,
    script(route, behaviours) {
      scripts.set(route, [...behaviours]);
    },
    always(route, behaviour) {
      permanent.set(route, behaviour);
    },
    release() {
      for (const resolve of holds) resolve();
      holds = [];
    },
    held(route) {
      if (holds.length && requests.some((r) => r.route === route)) return Promise.resolve();
      return new Promise((resolve) => holdWaiters.push({ route, resolve }));
    },
    reset() {
      scripts.clear();
      permanent.clear();
    },
    requests,
    secrets: () => [...[...apps.values()].flatMap((a) => [a.apiKey, a.apiSecret]), ...requestTokens.keys(), ...accessTokens.keys()],
    count: (route, apiKey) => requests.filter((r) => r.route === route && (!apiKey || r.apiKey === apiKey)).length,
    async close() {
      for (const resolve of holds) resolve();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
