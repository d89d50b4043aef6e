// The Koa application: middleware in the order a request meets it, then the feature routers.
import Koa from 'koa';
import Router from '@koa/router';
import cors from '@koa/cors';
import helmet from 'koa-helmet';
import { HttpMethodEnum, koaBody } from 'koa-body';
import type { Context } from '../shared/context';
import { problemMiddleware } from './http/problem';
import { responseCheck } from './http/responses';
import { requestContext } from './http/request-context';
import { createMetrics } from './http/metrics';
import { RouteRegistry } from './http/route';
import type { AppState } from './http/state';
import { healthRoutes } from './health/routes';
import { docsRoutes } from './docs/routes';
import { jwksRoutes } from './auth/jwks-routes';
import { authRoutes } from './auth/routes';
import { passwordResetRoutes } from './auth/password-reset-routes';
import { mfaRoutes } from './mfa/routes';
import { userRoutes } from './users/routes';
import { authzRoutes } from './authz/routes';
import { bullBoard } from './admin/bull-board';

// The API answers JSON only; the docs pages and Bull Board need scripts and styles of their own.
const API_CSP = "default-src 'none'; frame-ancestors 'none'";
const PAGE_CSP =
  "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; font-src 'self' data: https://fonts.gstatic.com; img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'";
const API_HEADERS = {
  'Content-Security-Policy': API_CSP,
  'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
};
const isPage = (path: string) => /^\/(docs|redoc|admin\/queues)(\/|$)/.test(path);

export interface App {
  koa: Koa<AppState>;
  registry: RouteRegistry;
  routers: Router<AppState>[];
  /** Releases what the app registered with the process (its metrics' GC observer); exiting does too. */
  close(): void;
}

export function createApp(app: Context): App {
  const { config, logger } = app;
  // Only the entries our own proxies appended count: anything further left the client wrote.
  const koa = new Koa<AppState>({ proxy: config.trustProxy, maxIpsCount: config.trustProxyHops });
  const registry = new RouteRegistry();
  const metrics = createMetrics(app.queues);

  // Errors are rendered by problemMiddleware; this only keeps Koa from printing them again.
  koa.silent = true;

  koa.use(requestContext(logger, metrics));
  // Outside the error renderer, so problem answers are checked against their declaration too.
  if (config.validateResponses) koa.use(responseCheck(logger));
  koa.use(problemMiddleware(logger));
  // Pages (docs, Bull Board) get helmet's full set; JSON answers the headers that matter to an
  // API (OWASP REST Security): the rest address HTML and would only add bytes to every response.
  const pageHeaders = helmet({ contentSecurityPolicy: false, crossOriginEmbedderPolicy: false });
  koa.use(async (ctx, next) => {
    if (isPage(ctx.path)) {
      await pageHeaders(ctx, next);
      ctx.set('Content-Security-Policy', PAGE_CSP);
      return;
    }
    ctx.set(API_HEADERS);
    await next();
    if (!ctx.response.get('Cache-Control')) ctx.set('Cache-Control', 'no-store');
  });
  koa.use(
    cors({
      origin: (ctx) => (config.cors.allowedOrigins.includes(ctx.get('Origin')) ? ctx.get('Origin') : ''),
      credentials: config.cors.allowCredentials,
      exposeHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
      allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id', 'X-Verification-Token'],
      maxAge: 600,
    }),
  );
  // Before the body parser: Bull Board parses its own bodies.
  if (config.bullBoardEnabled) koa.use(bullBoard(app));
  koa.use(
    koaBody({
      jsonLimit: `${config.bodyLimitKb}kb`,
      formLimit: `${config.bodyLimitKb}kb`,
      textLimit: `${config.bodyLimitKb}kb`,
      multipart: false,
      parsedMethods: [HttpMethodEnum.POST, HttpMethodEnum.PUT, HttpMethodEnum.PATCH, HttpMethodEnum.DELETE],
    }),
  );

  const docs = docsRoutes(config, registry);
  for (const asset of docs.assets) koa.use(asset);
  const routers: Router<AppState>[] = [
    healthRoutes(app, registry, metrics),
    docs.router,
    jwksRoutes(app, registry),
    authRoutes(app, registry),
    passwordResetRoutes(app, registry),
    mfaRoutes(app, registry),
    userRoutes(app, registry),
    authzRoutes(app, registry),
  ];
  // One router holding every feature's routes: a request is matched once, not once per feature.
  const root = new Router<AppState>();
  for (const router of routers) root.use(router.routes());
  koa.use(root.routes());
  // Sets 405 or 501 and `Allow` without a body; problemMiddleware answers them as problems.
  koa.use(root.allowedMethods({ throw: false }));
  return { koa, registry, routers, close: () => metrics.close() };
}
