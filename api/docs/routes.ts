// /openapi.json, Swagger UI at /docs and ReDoc at /redoc, with every asset served from our own
// node_modules (no CDN: the pages work offline and under a strict CSP).
import path from 'node:path';
import Router from '@koa/router';
import { Type } from '@sinclair/typebox';
import mount from 'koa-mount';
import serve from 'koa-static';
import type { Middleware } from 'koa';
import type { Config } from '../../shared/config';
import type { RouteRegistry } from '../http/route';
import type { AppState } from '../http/state';
import { buildOpenApi } from './openapi';

const swaggerDist = path.dirname(require.resolve('swagger-ui-dist/package.json'));
const redocBundles = path.join(path.dirname(require.resolve('redoc/package.json')), 'bundles');

const swaggerPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>User Service API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>`;

const swaggerInit = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });`;

const redocPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>User Service API</title></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/assets/redoc.standalone.js"></script></body></html>`;

export function docsRoutes(config: Config, registry: RouteRegistry): { router: Router<AppState>; assets: Middleware[] } {
  const router = new Router<AppState>();
  let document: object | undefined;
  registry.add(router, {
    method: 'get',
    path: '/openapi.json',
    summary: 'This OpenAPI 3.1 document',
    tags: ['docs'],
    security: 'none',
    responses: {
      200: { description: 'The document', schema: Type.Object({ openapi: Type.Literal('3.1.0') }, { additionalProperties: true }) },
    },
    handler(ctx) {
      // Built on first use, when every route has been registered.
      document ??= buildOpenApi(config, registry);
      ctx.body = document;
    },
  });
  registry.add(router, {
    method: 'get',
    path: '/docs',
    summary: 'Swagger UI',
    tags: ['docs'],
    security: 'none',
    responses: { 200: { description: 'HTML page', contentType: 'text/html' } },
    handler(ctx) {
      ctx.type = 'html';
      ctx.body = swaggerPage;
    },
  });
  registry.add(router, {
    method: 'get',
    path: '/docs/init.js',
    summary: 'Swagger UI start-up script',
    tags: ['docs'],
    security: 'none',
    responses: { 200: { description: 'JavaScript', contentType: 'application/javascript' } },
    handler(ctx) {
      ctx.type = 'application/javascript';
      ctx.body = swaggerInit;
    },
  });
  registry.add(router, {
    method: 'get',
    path: '/redoc',
    summary: 'ReDoc',
    tags: ['docs'],
    security: 'none',
    responses: { 200: { description: 'HTML page', contentType: 'text/html' } },
    handler(ctx) {
      ctx.type = 'html';
      ctx.body = redocPage;
    },
  });
  const cache = { maxage: 24 * 3600 * 1000 };
  return {
    router,
    assets: [mount('/docs/assets', serve(swaggerDist, cache)), mount('/redoc/assets', serve(redocBundles, cache))],
  };
}
