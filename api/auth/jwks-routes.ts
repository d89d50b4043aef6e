// The public keys that verify our access tokens, for gateways and other services.
import Router from '@koa/router';
import { Type } from '@sinclair/typebox';
import type { Context } from '../../shared/context';
import type { RouteRegistry } from '../http/route';
import type { AppState } from '../http/state';

const Jwks = Type.Object({
  keys: Type.Array(
    Type.Object({
      kty: Type.Literal('RSA'),
      kid: Type.String(),
      use: Type.Literal('sig'),
      alg: Type.Literal('RS256'),
      n: Type.String(),
      e: Type.String(),
    }),
  ),
});

export function jwksRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  // Serialised once per key set, not per request.
  let body = JSON.stringify(app.keys.jwks);
  let bodyGeneration = app.keys.generation;
  registry.add(router, {
    method: 'get',
    path: '/v1/auth/.well-known/jwks.json',
    summary: 'JSON Web Key Set of the token signing keys',
    tags: ['auth'],
    security: 'none',
    responses: { 200: { description: 'Every public key that may have signed a live token', schema: Jwks } },
    handler(ctx) {
      ctx.set('Cache-Control', 'public, max-age=300');
      ctx.type = 'json';
      if (bodyGeneration !== app.keys.generation) {
        body = JSON.stringify(app.keys.jwks);
        bodyGeneration = app.keys.generation;
      }
      ctx.body = body;
    },
  });
  return router;
}
