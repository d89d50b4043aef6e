// The Koa application: middleware in the order a request meets it, then the feature routers.
import Koa, { type Middleware } from 'koa';
import { AppError } from '../shared/errors';
import Router from '@koa/router';
import cors from '@koa/cors';
import helmet from 'koa-helmet';
import { HttpMethodEnum, koaBody } from 'koa-body';
import type { Context } from '../shared/context';
import { problemMiddleware } from './http/problem';
import { responseCheck } from './http/responses';
import { requestContext } from './http/request-context';
import { createMetrics, metricsApp } from './http/metrics';
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
import { operatorLoginRoutes } from './admin/login';
// Account lifecycle (admin API, email change).
import { adminUserRoutes } from './admin-users/routes';
import { emailChangeRoutes } from './users/email-change-routes';
// Trading accounts on Kite Connect (issue 14)
import { tradingAccountRoutes } from './trading-accounts/routes';
// Google sign-in (issue 13)
import { oauthRoutes } from './oauth/routes';
// Audit trail (issue 15)
import { auditRoutes } from './audit/routes';

// The API answers JSON only; the docs pages and Bull Board need scripts and styles of their own.
const API_CSP = "default-src 'none'; frame-ancestors 'none'";
const PAGE_CSP =
  "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'";
const API_HEADERS = {
  'Content-Security-Policy': API_CSP,
  'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
};
const isPage = (path: string) => /^\/(docs|redoc|admin)(\/|$)/.test(path);

/**
 * Any request with a body, chunked or not, must send JSON (DESIGN.md, "Identifiers and strings"):
 * a form or text body is what a page of another site can send without a CORS preflight.
 */
const jsonBodiesOnly: Middleware<AppState> = async (ctx, next) => {
  const hasBody = (ctx.request.length ?? 0) > 0 || !!ctx.get('Transfer-Encoding');
  if (hasBody && !ctx.is('application/json')) {
    throw new AppError(415, 'unsupported_media_type', 'Unsupported media type', 'Send the body as application/json.');
  }
  await next();
};

export interface App {
  koa: Koa<AppState>;
  registry: RouteRegistry;
  routers: Router<AppState>[];
  /** The metrics listener's app, when METRICS_PORT asks for one. */
  metricsKoa: Koa | null;
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
  // Set before anything runs, so an error answer carries them too; what may be cached (the key
  // set, the docs' static assets) says so itself.
  koa.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    if (!isPage(ctx.path)) {
      ctx.set(API_HEADERS);
      await next();
      return;
    }
    await pageHeaders(ctx, async () => {
      ctx.set('Content-Security-Policy', PAGE_CSP);
      await next();
    });
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
  koa.use(jsonBodiesOnly);
  // Before the body parser: Bull Board parses its own bodies.
  if (config.bullBoardEnabled) koa.use(bullBoard(app));
  koa.use(
    koaBody({
      jsonLimit: `${config.bodyLimitKb}kb`,
      // JSON only (jsonBodiesOnly refuses anything else before it gets here).
      multipart: false,
      urlencoded: false,
      text: false,
      parsedMethods: [HttpMethodEnum.POST, HttpMethodEnum.PUT, HttpMethodEnum.PATCH, HttpMethodEnum.DELETE],
    }),
  );

  const docs = docsRoutes(config, registry);
  for (const asset of docs.assets) koa.use(asset);
  const routers: Router<AppState>[] = [
    healthRoutes(app, registry, config.metricsPort === null && config.environment === 'development' ? metrics : null),
    docs.router,
    jwksRoutes(app, registry),
    authRoutes(app, registry),
    passwordResetRoutes(app, registry),
    mfaRoutes(app, registry),
    userRoutes(app, registry),
    authzRoutes(app, registry),
    operatorLoginRoutes(app, registry),
    // Account lifecycle (admin API, email change).
    adminUserRoutes(app, registry),
    emailChangeRoutes(app, registry),
    // Trading accounts on Kite Connect (issue 14)
    tradingAccountRoutes(app, registry),
    // Google sign-in (issue 13)
    oauthRoutes(app, registry),
    // Audit trail (issue 15)
    auditRoutes(app, registry),
  ];
  // One router holding every feature's routes: a request is matched once, not once per feature.
  const root = new Router<AppState>();
  for (const router of routers) root.use(router.routes());
  koa.use(root.routes());
  // Sets 405 or 501 and `Allow` without a body; problemMiddleware answers them as problems.
  koa.use(root.allowedMethods({ throw: false }));
  return {
    koa,
    registry,
    routers,
    metricsKoa: config.metricsPort === null ? null : metricsApp(metrics),
    close: () => metrics.close(),
  };
}
