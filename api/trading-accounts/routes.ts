// HTTP endpoints of trading accounts (Kite Connect). Another user's account is 404 on every route;
// a principal holding trading_accounts:credentials:read (a platform service) may read any account.
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import { holds } from '../../shared/authz/service';
import { ForbiddenError } from '../../shared/errors';
import * as accounts from '../../shared/trading-accounts/service';
import type { RouteRegistry } from '../http/route';
import { actorOf, eventOrigin, type AppState, type Principal } from '../http/state';
import { callerPermissions, requirePermission, requirePerson, requireUser } from '../auth/authenticate';
import { VERIFICATION_HEADER } from '../mfa/step-up';
import { accountBody, statusBody } from './presenters';
import * as schemas from './schemas';

const READ_ANY = 'trading_accounts:credentials:read';
const TAGS = ['trading-accounts'];

export function tradingAccountRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const reader = [requireUser(app, { withPermissions: true })];
  const writer = [requirePerson(app), requirePermission(app, 'trading_accounts:write')];
  const notFound = { 404: { description: 'No such account, or not yours' } };

  const readsAny = async (principal: Principal) => holds(await callerPermissions(app, principal), READ_ANY);
  const requireRead = async (principal: Principal) => {
    if (!holds(await callerPermissions(app, principal), 'trading_accounts:read')) {
      throw new ForbiddenError('This needs the trading_accounts:read permission.');
    }
  };
  const stepUpToken = (ctx: { get(name: string): string }) => ctx.get(VERIFICATION_HEADER) || undefined;

  registry.add(router, {
    method: 'post',
    path: '/v1/trading-accounts/link',
    summary: 'Link a Kite Connect account (verified by a job)',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    body: schemas.LinkBody,
    responses: {
      202: { description: 'Accepted: the account, pending verification', schema: schemas.Account },
      403: { description: 'Email not verified, or not allowed' },
      409: { description: 'This api key is already linked to one of your accounts' },
    },
    async handler(ctx, { body }) {
      const account = await accounts.linkAccount(app, actorOf(ctx.state), body, eventOrigin(ctx.state));
      ctx.status = 202;
      ctx.body = accountBody({ account });
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/trading-accounts',
    summary: 'My trading accounts (credentials with include_credentials=true and a step-up token)',
    tags: TAGS,
    security: 'bearer',
    guard: reader,
    query: schemas.CredentialsQuery,
    responses: {
      200: { description: 'Newest first', schema: schemas.AccountList },
      403: { description: 'No MFA, or no valid X-Verification-Token, for include_credentials' },
    },
    async handler(ctx, { query }) {
      const principal = ctx.state.principal!;
      await requireRead(principal);
      const actor = actorOf(ctx.state);
      const own = await accounts.listAccounts(app, actor.userId);
      if (!query.include_credentials) {
        ctx.body = { trading_accounts: own.map((account) => accountBody({ account })) };
        return;
      }
      await accounts.checkOwnerMayReveal(app, actor, stepUpToken(ctx));
      const views = await accounts.revealCredentials(app, own, 'owner', eventOrigin(ctx.state));
      ctx.body = { trading_accounts: views.map(accountBody) };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/trading-accounts/:account_id',
    summary: 'One trading account (credentials with include_credentials=true)',
    tags: TAGS,
    security: 'bearer',
    guard: reader,
    params: schemas.AccountParams,
    query: schemas.CredentialsQuery,
    responses: {
      200: { description: 'The account', schema: schemas.Account },
      403: { description: 'No MFA, or no valid X-Verification-Token, for include_credentials' },
      ...notFound,
    },
    async handler(ctx, { params, query }) {
      const principal = ctx.state.principal!;
      const origin = eventOrigin(ctx.state);
      if (await readsAny(principal)) {
        const account = await accounts.getAnyAccount(app, params.account_id);
        const [view] = query.include_credentials ? await accounts.revealCredentials(app, [account], 'service', origin) : [{ account }];
        ctx.body = accountBody(view);
        return;
      }
      await requireRead(principal);
      const actor = actorOf(ctx.state);
      const account = await accounts.getAccount(app, actor.userId, params.account_id);
      if (!query.include_credentials) {
        ctx.body = accountBody({ account });
        return;
      }
      await accounts.checkOwnerMayReveal(app, actor, stepUpToken(ctx));
      const [view] = await accounts.revealCredentials(app, [account], 'owner', origin);
      ctx.body = accountBody(view);
    },
  });

  registry.add(router, {
    method: 'patch',
    path: '/v1/trading-accounts/:account_id',
    summary: 'Change the nickname or preferences (never credentials)',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.AccountParams,
    body: schemas.UpdateBody,
    responses: { 200: { description: 'The account', schema: schemas.Account }, ...notFound },
    async handler(ctx, { params, body }) {
      const account = await accounts.updateAccount(app, actorOf(ctx.state).userId, params.account_id, body);
      ctx.body = accountBody({ account });
    },
  });

  registry.add(router, {
    method: 'delete',
    path: '/v1/trading-accounts/:account_id',
    summary: 'Unlink: credentials destroyed at once, Kite session ended by a job',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.AccountParams,
    responses: { 204: { description: 'Unlinked' }, ...notFound },
    async handler(ctx, { params }) {
      await accounts.unlinkAccount(app, actorOf(ctx.state), params.account_id, eventOrigin(ctx.state));
      ctx.status = 204;
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/trading-accounts/:account_id/verify',
    summary: 'Verify the credentials again with Kite (a job)',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.AccountParams,
    body: schemas.VerifyBody,
    responses: { 202: { description: 'Queued (a second request joins the same verification)', schema: schemas.StatusOnly }, ...notFound },
    async handler(ctx, { params }) {
      const account = await accounts.requestVerification(app, actorOf(ctx.state), params.account_id, eventOrigin(ctx.state));
      ctx.status = 202;
      ctx.body = { status: account.status };
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/trading-accounts/:account_id/rotate-credentials',
    summary: 'New api key and secret and/or token; the old ones stay in use until these verify',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.AccountParams,
    body: schemas.RotateBody,
    responses: {
      202: { description: 'Queued for verification', schema: schemas.StatusOnly },
      403: { description: 'MFA is on and no valid X-Verification-Token was sent' },
      409: { description: 'The new api key is linked to another of your accounts' },
      ...notFound,
    },
    async handler(ctx, { params, body }) {
      const account = await accounts.rotateCredentials(
        app,
        actorOf(ctx.state),
        params.account_id,
        body,
        stepUpToken(ctx),
        eventOrigin(ctx.state),
      );
      ctx.status = 202;
      ctx.body = { status: account.status };
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/trading-accounts/:account_id/status',
    summary: 'The verification status',
    tags: TAGS,
    security: 'bearer',
    guard: reader,
    params: schemas.AccountParams,
    responses: { 200: { description: 'The status', schema: schemas.Status200 }, ...notFound },
    async handler(ctx, { params }) {
      await requireRead(ctx.state.principal!);
      ctx.body = statusBody(await accounts.getAccount(app, actorOf(ctx.state).userId, params.account_id));
    },
  });

  registry.add(router, {
    method: 'get',
    path: '/v1/trading-accounts/:account_id/kite-login-url',
    summary: "Kite's login URL for the daily login, with a single-use state for this account",
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.AccountParams,
    responses: { 200: { description: 'The URL and its state', schema: schemas.LoginUrl }, ...notFound },
    async handler(ctx, { params }) {
      const { loginUrl, state, expiresIn } = await accounts.kiteLoginUrl(app, actorOf(ctx.state), params.account_id);
      ctx.body = { login_url: loginUrl, state, expires_in: expiresIn };
    },
  });

  registry.add(router, {
    method: 'post',
    path: '/v1/trading-accounts/:account_id/session',
    summary: 'Renew the access token with the request token of the daily login',
    tags: TAGS,
    security: 'bearer',
    guard: writer,
    params: schemas.AccountParams,
    body: schemas.SessionBody,
    responses: {
      202: { description: 'Queued for verification', schema: schemas.StatusOnly },
      409: { description: 'A verification is in progress' },
      ...notFound,
    },
    async handler(ctx, { params, body }) {
      const account = await accounts.renewSession(app, actorOf(ctx.state), params.account_id, body, eventOrigin(ctx.state));
      ctx.status = 202;
      ctx.body = { status: account.status };
    },
  });

  return router;
}
