// Bull Board for operators at /admin/queues: its page, assets and JSON API, behind the operators'
// sign-in (./login.ts): the cookie of a live operator session whose user holds queues:admin and,
// outside development, signed in with MFA. A page request without one goes to the sign-in page;
// an API request gets 401. Every request that changes state records `queue.action` with the
// operator as actor. Its fonts come from our own node_modules, not from the internet.
import path from 'node:path';
import compose from 'koa-compose';
import mount from 'koa-mount';
import serve from 'koa-static';
import type { Middleware } from 'koa';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import type { Context } from '../../shared/context';
import { UnauthorizedError } from '../../shared/errors';
import { operatorFromCookie, recordQueueAction } from '../../shared/auth/operator-sessions';
import { eventOrigin, type AppState } from '../http/state';
import { operatorCookieName } from './login';
import { BULL_BOARD_PATH, FONTS_PATH, LOGIN_PATH, LOGOUT_PATH } from './paths';

const API_PREFIX = `${BULL_BOARD_PATH}/api/queues/`;

/** The board's page asks Google for IBM Plex; the same faces, from the @fontsource packages. */
const FONT_FACES = [
  'ibm-plex-sans/latin-400',
  'ibm-plex-sans/latin-500',
  'ibm-plex-sans/latin-600',
  'ibm-plex-mono/latin-400',
  'ibm-plex-mono/latin-500',
];
const GOOGLE_FONTS = /<link[^>]+fonts\.googleapis\.com[^>]*>/;
const localFonts = FONT_FACES.map((face) => `<link href="${FONTS_PATH}/${face}.css" rel="stylesheet">`).join('');

function fontAssets(): Middleware {
  const packageDir = (name: string) => path.dirname(require.resolve(`@fontsource/${name}/package.json`));
  const cache = { maxage: 24 * 3600 * 1000 };
  const sans = mount(`${FONTS_PATH}/ibm-plex-sans`, serve(packageDir('ibm-plex-sans'), cache));
  const mono = mount(`${FONTS_PATH}/ibm-plex-mono`, serve(packageDir('ibm-plex-mono'), cache));
  return compose([sans, mono]);
}

/**
 * What a state-changing request of the board did: `PUT …/api/queues/email/pause` pauses the email
 * queue, `PUT …/api/queues/email/42/retry` retries job 42, `PUT …/api/queues/pause` pauses all.
 */
export function queueActionOf(method: string, requestPath: string): { queue: string; action: string; jobId: string | null } | null {
  if (method === 'GET' || method === 'HEAD' || !requestPath.startsWith(API_PREFIX)) return null;
  const parts = requestPath.slice(API_PREFIX.length).split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 1) return { queue: '*', action: parts[0], jobId: null };
  const [queue, second, ...rest] = parts;
  const QUEUE_ACTIONS = [
    'add',
    'retry',
    'promote',
    'clean',
    'pause',
    'resume',
    'concurrency',
    'rate-limit',
    'empty',
    'obliterate',
    'job-schedulers',
  ];
  if (QUEUE_ACTIONS.includes(second)) return { queue: queue, action: [second, ...rest].join('/'), jobId: null };
  return { queue: queue, action: rest.join('/'), jobId: second };
}

export function bullBoard(app: Context): Middleware<AppState> {
  const serverAdapter = new KoaAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: Object.values(app.queues).map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: `${app.config.appName} queues`, miscLinks: [{ text: 'Sign out', url: LOGOUT_PATH }] } },
  });
  const board = serverAdapter.registerPlugin() as unknown as Middleware<AppState>;
  const fonts = fontAssets();
  return async (ctx, next) => {
    if (ctx.path.startsWith(`${FONTS_PATH}/`)) {
      await fonts(ctx, next);
      return;
    }
    if (ctx.path !== BULL_BOARD_PATH && !ctx.path.startsWith(`${BULL_BOARD_PATH}/`)) {
      await next();
      return;
    }
    ctx.state.routePattern = BULL_BOARD_PATH;
    const cookie = ctx.cookies.get(operatorCookieName(app));
    const operator = cookie ? await operatorFromCookie(app, cookie) : null;
    if (!operator) {
      if (ctx.path.startsWith(`${BULL_BOARD_PATH}/api/`))
        throw new UnauthorizedError("Sign in to the operators' console first.", 'operator_session_required');
      ctx.redirect(LOGIN_PATH);
      return;
    }
    await board(ctx, next);
    if (typeof ctx.body === 'string' && ctx.response.is('html')) ctx.body = ctx.body.replace(GOOGLE_FONTS, localFonts);
    const action = queueActionOf(ctx.method, ctx.path);
    if (action && ctx.status < 400) await recordQueueAction(app, operator, action, eventOrigin(ctx.state));
  };
}
