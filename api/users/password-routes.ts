// HTTP endpoint of changing one's password (POST /v1/users/change-password).
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import type { RouteRegistry } from '../http/route';
import { eventOrigin, type AppState } from '../http/state';
import { createLimiter } from '../http/rate-limit';
import { requireUser } from '../auth/authenticate';
import * as schemas from './password-schemas';
import { changePassword } from './password-service';

export function passwordRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const { attempts, windowSeconds } = app.config.rateLimits.login;
  const wrongPasswords = createLimiter(app.redis, app.key('rl', 'change-password-user'), attempts, windowSeconds);

  registry.add(router, {
    method: 'post', path: '/v1/users/change-password', summary: 'Change my password (other sessions stay unless asked)', tags: ['users'], security: 'bearer',
    guard: requireUser(app),
    body: schemas.ChangePasswordBody,
    responses: {
      204: { description: 'Changed' },
      400: { description: 'The new password breaks the policy or equals the current one' },
      401: { description: 'Not signed in, or the current password is wrong' },
      429: { description: 'Too many wrong current passwords' },
    },
    async handler(ctx, { body }) {
      const principal = ctx.state.principal!;
      await changePassword(app, principal, body, eventOrigin(ctx.state), wrongPasswords);
      ctx.status = 204;
    },
  });

  return router;
}
