// Bull Board for operators at /admin/queues: its page, assets and JSON API, behind operator
// authentication (Basic or Bearer of a user with `queues:admin`).
import compose from 'koa-compose';
import type { Middleware } from 'koa';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Context } from '../../shared/context';
import { requireOperator } from '../auth/authenticate';
import type { AppState } from '../http/state';

export const BULL_BOARD_PATH = '/admin/queues';

export function bullBoard(app: Context): Middleware<AppState> {
  const serverAdapter = new KoaAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: Object.values(app.queues).map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: `${app.config.appName} queues` } },
  });
  const board = serverAdapter.registerPlugin() as unknown as Middleware<AppState>;
  const guard = requireOperator(app, 'queues:admin');
  const guarded = compose([guard, board]);
  return async (ctx, next) => {
    if (ctx.path !== BULL_BOARD_PATH && !ctx.path.startsWith(`${BULL_BOARD_PATH}/`)) {
      await next();
      return;
    }
    ctx.state.routePattern = BULL_BOARD_PATH;
    await guarded(ctx, next);
  };
}
