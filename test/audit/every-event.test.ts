// Every flow of the service, once, through its real entry point (HTTP, the operators' console, the
// CLI): each must put exactly the documented events on the Redis Stream, once per action, and no
// payload may hold any password, token, code, secret or api key the flow used.
//
// To check a new flow, add one entry to FLOWS. A type of EVENT_TYPES that no flow checks fails the
// coverage test, so no type is skipped silently.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { call, eventually, type TestApp } from '../helpers/app';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser, type TestUser } from '../helpers/users';
import { enableMfa, login, operatorSignIn, streamEvents, type SignedIn } from '../helpers/auth';
import { cliEnvironment, runCli } from '../helpers/cli';
import { startFakeGoogle, type FakeGoogle } from '../helpers/oidc-provider';
import { bindingCookie, googleEnvironment, startSignIn } from '../helpers/google';
import { Authenticator, wrongCode } from '../mfa/rfc6238';
import { link, settled } from '../trading-accounts/flows';
import { EVENT_TYPES, type EventType } from '../../shared/events/outbox';

jest.setTimeout(60_000);

interface Expected {
  type: EventType;
  /** Whose event it is (user_id of the envelope). */
  userId: string;
  /** Fields `data` must have (more may be there). */
  data?: Record<string, unknown>;
}

interface Flow {
  name: string;
  /** Puts the world in the state the action needs; its own events are not this flow's. */
  setup?: (w: World) => Promise<void>;
  /** The action whose events are checked. */
  run: (w: World) => Promise<unknown>;
  /** What the action must put on the stream, each exactly once (computed after it ran). */
  expect: (w: World) => Expected[];
}

/** State the flows share, and every secret they used. */
interface World {
  t: TestApp;
  db: Knex;
  stack: TestStack;
  google: FakeGoogle;
  /** Long secrets (passwords, tokens, api secrets): none may appear anywhere in a payload. */
  secrets: Set<string>;
  /** Six-digit codes: none may appear as a number of its own in a payload. */
  codes: Set<string>;
  [key: string]: any;
}

const remember = (w: World, ...values: (string | undefined)[]) => values.forEach((v) => v && w.secrets.add(v));

async function signIn(w: World, user: TestUser): Promise<SignedIn> {
  const signed = await login(w.t.url, user);
  remember(w, user.password, signed.accessToken, signed.refreshToken);
  return signed;
}

async function mfaUser(w: World): Promise<{ user: SignedIn; app: Authenticator }> {
  const user = await signIn(w, await createUser(w.db));
  const app = await enableMfa(w.t.url, user);
  remember(w, app.secret);
  return { user, app };
}

async function code(w: World, app: Authenticator): Promise<string> {
  const value = await app.code();
  w.codes.add(value);
  return value;
}

async function ok(reply: Promise<{ status: number; text: string }>, status: number): Promise<any> {
  const r = (await reply) as Awaited<ReturnType<typeof call>>;
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${r.text}`);
  return r.body;
}

async function cli(w: World, args: string[], input?: string): Promise<string> {
  const r = await runCli(args, { env: cliEnvironment(w.t), input });
  if (r.status !== 0) throw new Error(`${args[0]} failed: ${r.stderr}`);
  return r.stdout;
}

const post = (w: World, path: string, body: unknown, headers: Record<string, string> = {}) => call(`${w.t.url}${path}`, { body, headers });

/**
 * Every api key, secret and token the fake Kite knows: the request tokens a flow sent, and the
 * access tokens the verification job got for them (so call it once the job settled).
 */
const rememberKite = (w: World) => remember(w, ...w.stack.kite.secrets());

/**
 * Google sign-in by POST, as ../helpers/google.ts does it, step by step so that the binding
 * cookie, the nonce, the code and the state it used are remembered with the tokens.
 */
async function googleSignIn(w: World, sub: string): Promise<any> {
  const started = await startSignIn(w.t);
  if (started.status !== 200) throw new Error(`start failed: ${started.status} ${started.text}`);
  const cookie = bindingCookie(started).Cookie;
  remember(w, cookie.slice(cookie.indexOf('=') + 1), new URL(started.body.authorization_url).searchParams.get('nonce') ?? undefined);
  const back = await w.google.authorize(started.body.authorization_url, sub);
  remember(w, back.query.code, back.query.state, w.google.clientSecret);
  const pair = await ok(post(w, '/v1/auth/oauth/google/callback', { code: back.query.code, state: back.query.state }), 200);
  remember(w, pair.access_token, pair.refresh_token, ...w.google.issuedTokens);
  return pair;
}

/**
 * The headers of an admin with MFA and a step-up token (the admin API wants both). The token is
 * reusable for 5 minutes (DESIGN.md, Step-up): renewed after 4, so a slow run does not outlive it.
 */
async function supportHeaders(w: World): Promise<Record<string, string>> {
  if (!w.support) {
    const user = await signIn(w, await createUser(w.db, { roles: ['admin'] }));
    const app = await enableMfa(w.t.url, user);
    remember(w, app.secret);
    w.support = { user, app, at: 0 };
  }
  if (Date.now() - w.support.at > 4 * 60_000) {
    const r = await ok(post(w, '/v1/mfa/totp/verify', { code: await code(w, w.support.app) }, w.support.user.auth), 200);
    remember(w, r.verification_token);
    w.support.headers = { ...w.support.user.auth, 'X-Verification-Token': r.verification_token };
    w.support.at = Date.now();
  }
  return w.support.headers;
}

/** A write of the admin user API on `userId`, with the step-up headers its flow's set-up got. */
const adminAct = (w: World, method: 'POST' | 'DELETE', userId: string, rest: string, body?: unknown) =>
  call(`${w.t.url}/v1/admin/users/${userId}${rest}`, { method, body, headers: w.asSupport });

const FLOWS: Flow[] = [
  {
    name: 'register',
    async run(w) {
      w.email = `flow-${crypto.randomBytes(4).toString('hex')}@example.com`;
      w.password = `Pass-${crypto.randomBytes(8).toString('base64url')}-9!`;
      remember(w, w.password);
      w.registered = (await ok(post(w, '/v1/auth/register', { email: w.email, password: w.password, name: 'Asha Rao' }), 201)).user_id;
    },
    expect: (w) => [{ type: 'user.registered', userId: w.registered, data: { method: 'password' } }],
  },
  {
    name: 'verify email',
    async setup(w) {
      const mail = await w.stack.smtp.waitFor((m) => m.to.includes(w.email));
      w.verifyToken = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
      remember(w, w.verifyToken);
    },
    run: (w) => ok(post(w, '/v1/auth/verify-email', { token: w.verifyToken }), 200),
    expect: (w) => [{ type: 'user.email_verified', userId: w.registered }],
  },
  {
    name: 'resend verification (nothing to record)',
    run: (w) => ok(post(w, '/v1/auth/verify-email/resend', { email: w.email }), 202),
    expect: () => [],
  },
  {
    name: 'login',
    async run(w) {
      w.me = await signIn(w, { id: w.registered, email: w.email, password: w.password });
    },
    expect: (w) => [
      { type: 'session.created', userId: w.me.id, data: { session_id: w.me.sessionId, persistent: false } },
      { type: 'user.login', userId: w.me.id, data: { session_id: w.me.sessionId, method: 'password', new_device: true } },
    ],
  },
  {
    name: 'refresh (nothing to record)',
    async run(w) {
      const pair = await ok(post(w, '/v1/auth/refresh', { refresh_token: w.me.refreshToken }), 200);
      remember(w, pair.access_token, pair.refresh_token);
      w.me = { ...w.me, refreshToken: pair.refresh_token, auth: { Authorization: `Bearer ${pair.access_token}` } };
    },
    expect: () => [],
  },
  {
    name: 'refresh token reuse',
    async setup(w) {
      w.reuser = await signIn(w, await createUser(w.db));
      const first = await ok(post(w, '/v1/auth/refresh', { refresh_token: w.reuser.refreshToken }), 200);
      const second = await ok(post(w, '/v1/auth/refresh', { refresh_token: first.refresh_token }), 200);
      remember(w, first.access_token, first.refresh_token, second.access_token, second.refresh_token);
    },
    // The grandparent of the current token: reuse, not the grace window.
    run: (w) => ok(post(w, '/v1/auth/refresh', { refresh_token: w.reuser.refreshToken }), 401),
    expect: (w) => [
      { type: 'session.revoked', userId: w.reuser.id, data: { session_id: w.reuser.sessionId, reason: 'refresh_token_reuse' } },
    ],
  },
  {
    name: 'revoke one of my sessions',
    async setup(w) {
      w.other = await signIn(w, { id: w.me.id, email: w.email, password: w.password });
    },
    run: (w) => ok(call(`${w.t.url}/v1/auth/sessions/${w.other.sessionId}`, { method: 'DELETE', headers: w.me.auth }), 204),
    expect: (w) => [{ type: 'session.revoked', userId: w.me.id, data: { session_id: w.other.sessionId, reason: 'revoked_by_user' } }],
  },
  {
    name: 'logout',
    async setup(w) {
      w.leaving = await signIn(w, { id: w.me.id, email: w.email, password: w.password });
    },
    run: (w) => ok(post(w, '/v1/auth/logout', {}, w.leaving.auth), 204),
    expect: (w) => [
      { type: 'user.logout', userId: w.me.id, data: { session_id: w.leaving.sessionId, all_devices: false } },
      { type: 'session.revoked', userId: w.me.id, data: { session_id: w.leaving.sessionId, reason: 'logout' } },
    ],
  },
  {
    name: 'logout on all devices',
    async setup(w) {
      w.everywhere = await signIn(w, await createUser(w.db));
      w.elsewhere = await signIn(w, w.everywhere);
    },
    run: (w) => ok(post(w, '/v1/auth/logout', { all_devices: true }, w.everywhere.auth), 204),
    expect: (w) => [
      { type: 'user.logout', userId: w.everywhere.id, data: { all_devices: true } },
      { type: 'session.revoked', userId: w.everywhere.id, data: { session_id: w.everywhere.sessionId, reason: 'logout_all' } },
      { type: 'session.revoked', userId: w.everywhere.id, data: { session_id: w.elsewhere.sessionId, reason: 'logout_all' } },
    ],
  },
  {
    name: 'MFA enable',
    async setup(w) {
      w.totpUser = await signIn(w, await createUser(w.db));
      const setup = await ok(post(w, '/v1/mfa/totp/setup', {}, w.totpUser.auth), 200);
      w.totp = new Authenticator(setup.secret);
      remember(w, setup.secret, setup.otpauth_uri);
    },
    async run(w) {
      const enabled = await ok(post(w, '/v1/mfa/totp/enable', { code: await code(w, w.totp) }, w.totpUser.auth), 200);
      remember(w, ...(enabled.backup_codes as string[]));
    },
    expect: (w) => [{ type: 'mfa.enabled', userId: w.totpUser.id }],
  },
  {
    name: 'MFA step-up verify (nothing to record)',
    async run(w) {
      const r = await ok(post(w, '/v1/mfa/totp/verify', { code: await code(w, w.totp) }, w.totpUser.auth), 200);
      remember(w, r.verification_token);
    },
    expect: () => [],
  },
  {
    name: 'regenerate backup codes (nothing to record)',
    async run(w) {
      const r = await ok(post(w, '/v1/mfa/backup-codes/regenerate', { code: await code(w, w.totp) }, w.totpUser.auth), 200);
      remember(w, ...(r.backup_codes as string[]));
    },
    expect: () => [],
  },
  {
    name: 'login with MFA (a TOTP code)',
    async setup(w) {
      const { user, app } = await mfaUser(w);
      w.mfa = { user, app };
    },
    async run(w) {
      const challenge = await ok(post(w, '/v1/auth/login', { email: w.mfa.user.email, password: w.mfa.user.password }), 200);
      remember(w, challenge.mfa_token);
      const pair = await ok(post(w, '/v1/auth/mfa/verify', { mfa_token: challenge.mfa_token, code: await code(w, w.mfa.app) }), 200);
      remember(w, pair.access_token, pair.refresh_token);
      w.mfaSession = pair.session_id;
    },
    expect: (w) => [
      { type: 'session.created', userId: w.mfa.user.id, data: { session_id: w.mfaSession } },
      { type: 'user.login', userId: w.mfa.user.id, data: { session_id: w.mfaSession, method: 'password' } },
    ],
  },
  {
    name: 'login with MFA (a backup code)',
    async setup(w) {
      const codes = await ok(post(w, '/v1/mfa/backup-codes/regenerate', { code: await code(w, w.mfa.app) }, w.mfa.user.auth), 200);
      w.backupCode = (codes.backup_codes as string[])[0];
      remember(w, ...(codes.backup_codes as string[]));
    },
    async run(w) {
      const challenge = await ok(post(w, '/v1/auth/login', { email: w.mfa.user.email, password: w.mfa.user.password }), 200);
      remember(w, challenge.mfa_token);
      const pair = await ok(post(w, '/v1/auth/mfa/verify', { mfa_token: challenge.mfa_token, code: w.backupCode }), 200);
      remember(w, pair.access_token, pair.refresh_token);
      w.backupSession = pair.session_id;
    },
    expect: (w) => [
      { type: 'session.created', userId: w.mfa.user.id, data: { session_id: w.backupSession } },
      { type: 'user.login', userId: w.mfa.user.id, data: { session_id: w.backupSession } },
    ],
  },
  {
    name: 'MFA disable',
    async run(w) {
      const body = { password: w.mfa.user.password, code: await code(w, w.mfa.app) };
      await ok(post(w, '/v1/mfa/totp/disable', body, w.mfa.user.auth), 204);
    },
    expect: (w) => [{ type: 'mfa.disabled', userId: w.mfa.user.id }],
  },
  {
    name: 'step-up lockout (five wrong codes end the session)',
    async setup(w) {
      w.locked = await mfaUser(w);
    },
    async run(w) {
      for (let i = 0; i < 5; i += 1) await post(w, '/v1/mfa/totp/verify', { code: wrongCode(w.locked.app.secret) }, w.locked.user.auth);
    },
    expect: (w) => [
      { type: 'session.revoked', userId: w.locked.user.id, data: { session_id: w.locked.user.sessionId, reason: 'mfa_failures' } },
    ],
  },
  {
    name: 'password change (signing out other sessions)',
    async setup(w) {
      w.changer = await signIn(w, await createUser(w.db));
      w.changerElsewhere = await signIn(w, w.changer);
      w.changedPassword = `Changed-${crypto.randomBytes(8).toString('base64url')}-7!`;
      remember(w, w.changedPassword);
    },
    run: (w) =>
      ok(
        post(
          w,
          '/v1/users/change-password',
          { current_password: w.changer.password, new_password: w.changedPassword, revoke_other_sessions: true },
          w.changer.auth,
        ),
        204,
      ),
    expect: (w) => [
      { type: 'password.changed', userId: w.changer.id, data: { other_sessions_revoked: true } },
      { type: 'session.revoked', userId: w.changer.id, data: { session_id: w.changerElsewhere.sessionId, reason: 'password_change' } },
    ],
  },
  {
    name: 'password reset request',
    async setup(w) {
      w.forgetful = await signIn(w, await createUser(w.db));
    },
    run: (w) => ok(post(w, '/v1/auth/password/reset-request', { email: w.forgetful.email }), 202),
    expect: (w) => [{ type: 'password.reset_requested', userId: w.forgetful.id }],
  },
  {
    name: 'password reset',
    async setup(w) {
      const mail = await w.stack.smtp.waitFor((m) => m.to.includes(w.forgetful.email) && m.subject === 'Reset your password');
      w.resetToken = /reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail.text)![1];
      w.resetPassword = `Reset-${crypto.randomBytes(8).toString('base64url')}-5!`;
      remember(w, w.resetToken, w.resetPassword);
    },
    run: (w) => ok(post(w, '/v1/auth/password/reset', { token: w.resetToken, new_password: w.resetPassword }), 204),
    expect: (w) => [
      { type: 'password.reset_completed', userId: w.forgetful.id, data: { sessions_revoked: true } },
      { type: 'session.revoked', userId: w.forgetful.id, data: { session_id: w.forgetful.sessionId, reason: 'password_reset' } },
    ],
  },
  {
    name: 'profile update',
    run: (w) => ok(call(`${w.t.url}/v1/users/me`, { method: 'PATCH', body: { name: 'Flow Renamed' }, headers: w.me.auth }), 200),
    expect: (w) => [{ type: 'user.updated', userId: w.me.id, data: { fields: ['name'] } }],
  },
  {
    name: 'grant a permission',
    async setup(w) {
      w.admin = await signIn(w, await createUser(w.db, { roles: ['admin'] }));
    },
    async run(w) {
      const grant = await ok(post(w, '/v1/authz/permissions', { user_id: w.me.id, permission: 'audit:read_any' }, w.admin.auth), 201);
      w.grantId = grant.id;
    },
    expect: (w) => [{ type: 'permission.granted', userId: w.me.id, data: { grant_id: w.grantId, permission: 'audit:read_any' } }],
  },
  {
    name: 'revoke a permission',
    run: (w) => ok(call(`${w.t.url}/v1/authz/permissions/${w.grantId}`, { method: 'DELETE', headers: w.admin.auth }), 204),
    expect: (w) => [{ type: 'permission.revoked', userId: w.me.id, data: { grant_id: w.grantId, permission: 'audit:read_any' } }],
  },
  {
    name: "operators' sign-in",
    async run(w) {
      const { cookie, reply } = await operatorSignIn(w.t.url, w.admin);
      if (!cookie) throw new Error(`operator sign-in failed: ${reply.status}`);
      w.operatorCookie = cookie;
      remember(w, cookie.split('=')[1]);
      w.operatorSession = (await w.db('sessions').where({ user_id: w.admin.id }).orderBy('created_at', 'desc').first())!.id;
    },
    expect: (w) => [
      { type: 'session.created', userId: w.admin.id, data: { session_id: w.operatorSession } },
      { type: 'user.login', userId: w.admin.id, data: { session_id: w.operatorSession } },
    ],
  },
  {
    name: "operators' queue action (pause)",
    run: (w) => ok(call(`${w.t.url}/admin/queues/api/queues/email/pause`, { method: 'PUT', headers: { Cookie: w.operatorCookie } }), 200),
    expect: (w) => [{ type: 'queue.action', userId: w.admin.id, data: { queue: 'email', action: 'pause' } }],
  },
  {
    name: "operators' queue action (resume)",
    run: (w) => ok(call(`${w.t.url}/admin/queues/api/queues/email/resume`, { method: 'PUT', headers: { Cookie: w.operatorCookie } }), 200),
    expect: (w) => [{ type: 'queue.action', userId: w.admin.id, data: { queue: 'email', action: 'resume' } }],
  },
  {
    name: "operators' sign-out",
    run: (w) => ok(call(`${w.t.url}/admin/logout`, { headers: { Cookie: w.operatorCookie } }), 302),
    expect: (w) => [
      { type: 'user.logout', userId: w.admin.id, data: { session_id: w.operatorSession } },
      { type: 'session.revoked', userId: w.admin.id, data: { session_id: w.operatorSession, reason: 'logout' } },
    ],
  },
  {
    name: 'CLI: create-admin',
    async run(w) {
      w.cliAdmin = {
        email: `cli-${crypto.randomBytes(4).toString('hex')}@example.com`,
        password: `Cli-${crypto.randomBytes(9).toString('base64url')}-3!`,
      };
      remember(w, w.cliAdmin.password);
      await cli(w, ['create-admin', '--email', w.cliAdmin.email, '--name', 'Ops', '--password-stdin'], w.cliAdmin.password);
      w.cliAdmin.id = (await w.db('users').where({ email: w.cliAdmin.email }).first())!.id;
    },
    expect: (w) => [
      { type: 'user.registered', userId: w.cliAdmin.id, data: { method: 'cli' } },
      { type: 'role.assigned', userId: w.cliAdmin.id, data: { role: 'admin', via: 'cli' } },
    ],
  },
  {
    name: 'CLI: remove-role',
    run: (w) => cli(w, ['remove-role', '--email', w.cliAdmin.email, '--role', 'admin']),
    expect: (w) => [{ type: 'role.removed', userId: w.cliAdmin.id, data: { role: 'admin', via: 'cli' } }],
  },
  {
    name: 'CLI: assign-role',
    run: (w) => cli(w, ['assign-role', '--email', w.cliAdmin.email, '--role', 'admin']),
    expect: (w) => [{ type: 'role.assigned', userId: w.cliAdmin.id, data: { role: 'admin', via: 'cli' } }],
  },
  {
    name: 'CLI: create-service',
    async run(w) {
      const out = await cli(w, ['create-service', '--name', `flow-${crypto.randomBytes(3).toString('hex')}`]);
      w.serviceId = /client_id=(\S+)/.exec(out)![1];
      remember(w, /client_secret=(\S+)/.exec(out)![1]);
    },
    expect: (w) => [{ type: 'user.registered', userId: w.serviceId, data: { method: 'service' } }],
  },
  {
    name: 'CLI: rotate-service-secret',
    async run(w) {
      const out = await cli(w, ['rotate-service-secret', '--client-id', w.serviceId]);
      w.serviceSecret = /client_secret=(\S+)/.exec(out)![1];
      remember(w, w.serviceSecret);
    },
    expect: (w) => [{ type: 'service.secret_rotated', userId: w.serviceId }],
  },
  {
    name: 'service token (nothing to record)',
    async run(w) {
      const r = await ok(post(w, '/v1/auth/service-token', { client_id: w.serviceId, client_secret: w.serviceSecret }), 200);
      remember(w, r.access_token);
    },
    expect: () => [],
  },
  {
    name: 'CLI: disable-service',
    run: (w) => cli(w, ['disable-service', '--client-id', w.serviceId]),
    expect: (w) => [{ type: 'user.suspended', userId: w.serviceId, data: { reason_code: 'cli' } }],
  },
  {
    name: 'CLI: enable-service',
    run: (w) => cli(w, ['enable-service', '--client-id', w.serviceId]),
    expect: (w) => [{ type: 'user.reactivated', userId: w.serviceId }],
  },
  {
    name: 'account deletion (with a linked trading account)',
    async setup(w) {
      w.leaver = await signIn(w, await createUser(w.db));
      const [{ id }] = await w
        .db('trading_accounts')
        .insert({
          user_id: w.leaver.id,
          broker: 'kite',
          status: 'active',
          api_key_fingerprint: 'fp',
          api_key_masked: 'ab12****',
          credentials_encrypted: 'v1.secret-envelope.x.y',
        })
        .returning('id');
      w.leaverAccount = id;
    },
    run: (w) =>
      ok(call(`${w.t.url}/v1/users/me`, { method: 'DELETE', body: { password: w.leaver.password }, headers: w.leaver.auth }), 204),
    expect: (w) => [
      { type: 'user.deleted', userId: w.leaver.id },
      { type: 'session.revoked', userId: w.leaver.id, data: { session_id: w.leaver.sessionId, reason: 'account_deleted' } },
      { type: 'trading_account.unlinked', userId: w.leaver.id, data: { account_id: w.leaverAccount, broker: 'kite' } },
    ],
  },
  {
    name: 'Google sign-in of a new user',
    async run(w) {
      const account = w.google.addAccount({});
      const pair = await googleSignIn(w, account.sub);
      w.googleNew = { id: pair.user.id, sessionId: pair.session_id };
    },
    expect: (w) => [
      { type: 'user.registered', userId: w.googleNew.id, data: { method: 'google' } },
      { type: 'session.created', userId: w.googleNew.id, data: { session_id: w.googleNew.sessionId } },
      { type: 'user.login', userId: w.googleNew.id, data: { session_id: w.googleNew.sessionId, method: 'google' } },
    ],
  },
  {
    name: 'Google sign-in linking an existing verified password account',
    async setup(w) {
      w.googleOwner = await createUser(w.db);
      remember(w, w.googleOwner.password);
      w.googleOwnerAccount = w.google.addAccount({ email: w.googleOwner.email });
    },
    async run(w) {
      w.googleOwnerSession = (await googleSignIn(w, w.googleOwnerAccount.sub)).session_id;
    },
    expect: (w) => [
      { type: 'identity.linked', userId: w.googleOwner.id, data: { provider: 'google' } },
      { type: 'session.created', userId: w.googleOwner.id, data: { session_id: w.googleOwnerSession } },
      { type: 'user.login', userId: w.googleOwner.id, data: { session_id: w.googleOwnerSession, method: 'google' } },
    ],
  },
  {
    name: 'unlink Google (the password stays)',
    async setup(w) {
      w.googleOwnerSignedIn = await signIn(w, w.googleOwner);
    },
    run: (w) => ok(call(`${w.t.url}/v1/users/me/identities/google`, { method: 'DELETE', headers: w.googleOwnerSignedIn.auth }), 204),
    expect: (w) => [{ type: 'identity.unlinked', userId: w.googleOwner.id, data: { provider: 'google' } }],
  },
  {
    name: 'link a trading account (and the verification job that activates it)',
    async setup(w) {
      // No MFA: rotation then needs no step-up token; the reveal below turns MFA on.
      w.trader = await signIn(w, await createUser(w.db));
    },
    async run(w) {
      const r = await ok(link(w.stack, w.trader, w.stack.kite.addApp()), 202);
      w.tradingAccount = r.id;
      await settled(w.stack, w.trader, w.tradingAccount);
      rememberKite(w);
    },
    expect: (w) => [
      { type: 'trading_account.linked', userId: w.trader.id, data: { account_id: w.tradingAccount, broker: 'kite' } },
      {
        type: 'trading_account.status_changed',
        userId: w.trader.id,
        data: { account_id: w.tradingAccount, from: 'pending_verification', to: 'active' },
      },
    ],
  },
  {
    name: 'verify a trading account',
    async run(w) {
      await ok(call(`${w.t.url}/v1/trading-accounts/${w.tradingAccount}/verify`, { method: 'POST', headers: w.trader.auth }), 202);
      await settled(w.stack, w.trader, w.tradingAccount);
    },
    expect: (w) => [
      {
        type: 'trading_account.status_changed',
        userId: w.trader.id,
        data: { account_id: w.tradingAccount, from: 'active', to: 'verifying' },
      },
      {
        type: 'trading_account.status_changed',
        userId: w.trader.id,
        data: { account_id: w.tradingAccount, from: 'verifying', to: 'active' },
      },
    ],
  },
  {
    name: 'rotate the credentials of a trading account (no MFA, no step-up)',
    async run(w) {
      const fresh = w.stack.kite.addApp();
      const body = { api_key: fresh.apiKey, api_secret: fresh.apiSecret, request_token: w.stack.kite.requestToken(fresh.apiKey) };
      await ok(post(w, `/v1/trading-accounts/${w.tradingAccount}/rotate-credentials`, body, w.trader.auth), 202);
      await settled(w.stack, w.trader, w.tradingAccount);
      rememberKite(w);
    },
    expect: (w) => [
      { type: 'trading_account.credentials_updated', userId: w.trader.id, data: { account_id: w.tradingAccount } },
      {
        type: 'trading_account.status_changed',
        userId: w.trader.id,
        data: { account_id: w.tradingAccount, from: 'active', to: 'verifying' },
      },
      {
        type: 'trading_account.status_changed',
        userId: w.trader.id,
        data: { account_id: w.tradingAccount, from: 'verifying', to: 'active' },
      },
    ],
  },
  {
    name: 'reveal the credentials (owner with MFA and a step-up token)',
    async setup(w) {
      const app = await enableMfa(w.t.url, w.trader);
      remember(w, app.secret);
      const step = await ok(post(w, '/v1/mfa/totp/verify', { code: await code(w, app) }, w.trader.auth), 200);
      remember(w, step.verification_token);
      w.traderStepUp = { ...w.trader.auth, 'X-Verification-Token': step.verification_token };
    },
    async run(w) {
      const url = `${w.t.url}/v1/trading-accounts/${w.tradingAccount}?include_credentials=true`;
      const { credentials } = await ok(call(url, { headers: w.traderStepUp }), 200);
      remember(w, credentials.api_key, credentials.api_secret, credentials.access_token);
    },
    expect: (w) => [
      { type: 'trading_account.credentials_revealed', userId: w.trader.id, data: { account_id: w.tradingAccount, by: 'owner' } },
    ],
  },
  {
    name: 'unlink a trading account (DELETE)',
    run: (w) => ok(call(`${w.t.url}/v1/trading-accounts/${w.tradingAccount}`, { method: 'DELETE', headers: w.trader.auth }), 204),
    expect: (w) => [{ type: 'trading_account.unlinked', userId: w.trader.id, data: { account_id: w.tradingAccount, broker: 'kite' } }],
  },
  {
    name: 'admin users: suspend (every session ends)',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
      w.suspendee = await signIn(w, await createUser(w.db));
    },
    run: (w) => ok(adminAct(w, 'POST', w.suspendee.id, '/suspend', { reason_code: 'fraud_suspected' }), 200),
    expect: (w) => [
      { type: 'user.suspended', userId: w.suspendee.id, data: { reason_code: 'fraud_suspected' } },
      { type: 'session.revoked', userId: w.suspendee.id, data: { session_id: w.suspendee.sessionId, reason: 'admin' } },
    ],
  },
  {
    name: 'admin users: reactivate',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
    },
    run: (w) => ok(adminAct(w, 'POST', w.suspendee.id, '/reactivate', {}), 200),
    expect: (w) => [{ type: 'user.reactivated', userId: w.suspendee.id }],
  },
  {
    name: 'admin users: add a role',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
    },
    run: (w) => ok(adminAct(w, 'POST', w.suspendee.id, '/roles', { role: 'viewer' }), 200),
    expect: (w) => [{ type: 'role.assigned', userId: w.suspendee.id, data: { role: 'viewer', via: 'admin' } }],
  },
  {
    name: 'admin users: remove a role',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
    },
    run: (w) => ok(adminAct(w, 'DELETE', w.suspendee.id, '/roles/viewer'), 204),
    expect: (w) => [{ type: 'role.removed', userId: w.suspendee.id, data: { role: 'viewer', via: 'admin' } }],
  },
  {
    name: 'admin users: MFA reset (every session ends)',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
      w.mfaLost = await mfaUser(w);
    },
    run: (w) => ok(adminAct(w, 'POST', w.mfaLost.user.id, '/mfa/reset', {}), 204),
    expect: (w) => [
      { type: 'mfa.disabled', userId: w.mfaLost.user.id, data: { by_admin: true } },
      { type: 'session.revoked', userId: w.mfaLost.user.id, data: { session_id: w.mfaLost.user.sessionId, reason: 'admin' } },
    ],
  },
  {
    name: 'admin users: unlock',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
      w.lockedOut = await createUser(w.db);
    },
    run: (w) => ok(adminAct(w, 'POST', w.lockedOut.id, '/unlock', {}), 204),
    expect: (w) => [{ type: 'user.unlocked', userId: w.lockedOut.id }],
  },
  {
    name: 'admin users: verify the email',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
      w.unverified = await createUser(w.db, { status: 'pending_verification' });
      await w.db('users').where({ id: w.unverified.id }).update({ email_verified: false });
    },
    run: (w) => ok(adminAct(w, 'POST', w.unverified.id, '/verify-email', {}), 200),
    expect: (w) => [{ type: 'user.email_verified', userId: w.unverified.id, data: { by_admin: true } }],
  },
  {
    name: 'admin users: send a password reset',
    async setup(w) {
      w.asSupport = await supportHeaders(w);
      w.resetByAdmin = await createUser(w.db);
    },
    async run(w) {
      await ok(adminAct(w, 'POST', w.resetByAdmin.id, '/password-reset', {}), 202);
      const mail = await w.stack.smtp.waitFor((m) => m.to.includes(w.resetByAdmin.email) && m.subject === 'Reset your password');
      remember(w, /reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail.text)![1]);
    },
    expect: (w) => [{ type: 'password.reset_requested', userId: w.resetByAdmin.id }],
  },
  {
    name: 'email change request',
    async setup(w) {
      w.mover = await signIn(w, await createUser(w.db));
      w.moverElsewhere = await signIn(w, w.mover);
      w.moverAddress = `moved-${crypto.randomBytes(4).toString('hex')}@example.org`;
    },
    run: (w) => ok(post(w, '/v1/users/me/email', { new_email: w.moverAddress, password: w.mover.password }, w.mover.auth), 202),
    expect: (w) => [{ type: 'user.email_change_requested', userId: w.mover.id }],
  },
  {
    name: 'email change confirmation (the other sessions end)',
    async setup(w) {
      const mail = await w.stack.smtp.waitFor((m) => m.to.includes(w.moverAddress) && /Confirm your new email address/.test(m.subject));
      w.moverToken = /token=([\w-]+)/.exec(mail.text)![1];
      remember(w, w.moverToken);
    },
    run: (w) => ok(post(w, '/v1/users/me/email/confirm', { token: w.moverToken }, w.mover.auth), 200),
    expect: (w) => [
      { type: 'user.email_changed', userId: w.mover.id },
      { type: 'session.revoked', userId: w.mover.id, data: { session_id: w.moverElsewhere.sessionId, reason: 'email_change' } },
    ],
  },
];

let stack: TestStack;
let google: FakeGoogle;
let w: World;
const checked = new Set<string>();

async function publishedCount(): Promise<number> {
  return (await streamEvents(w.t.context.redis, w.t.config.events.streamName)).length;
}

/** The stream's entries after `since`, once the outbox is empty and `count` (at least) arrived. */
async function entriesSince(since: number, count: number) {
  const unpublished = async () => Number((await w.db('events').whereNull('published_at').count({ n: '*' }))[0].n);
  await eventually(async () => (await unpublished()) === 0 && (await publishedCount()) >= since + count, { timeoutMs: 15_000 });
  // One more relay tick: anything the action caused late would land now.
  await new Promise((r) => setTimeout(r, 300));
  await eventually(async () => (await unpublished()) === 0);
  return (await streamEvents(w.t.context.redis, w.t.config.events.streamName)).slice(since);
}

beforeAll(async () => {
  google = await startFakeGoogle();
  stack = await startStack({ RATELIMIT_REGISTER_ATTEMPTS: '100', ...googleEnvironment(google) });
  const t = stack.app;
  w = { t, db: t.context.db, stack, google, secrets: new Set(), codes: new Set() };
});
afterAll(async () => {
  await stack.close();
  await google.close();
});

describe.each(FLOWS.map((flow) => [flow.name, flow] as const))('%s', (_name, flow) => {
  test('puts exactly its documented events on the stream, once each', async () => {
    await flow.setup?.(w);
    // Whatever the set-up caused is on the stream before the action starts.
    const settled = await entriesSince(0, 0);
    const since = settled.length;
    await flow.run(w);
    const expected = flow.expect(w);
    const entries = await entriesSince(since, expected.length);
    expect(entries.map((e) => e.type).sort()).toEqual(expected.map((e) => e.type).sort());
    const unmatched = [...entries];
    for (const want of expected) {
      const i = unmatched.findIndex(
        (e) =>
          e.type === want.type &&
          e.payload.user_id === want.userId &&
          Object.entries(want.data ?? {}).every(([k, v]) => JSON.stringify(e.payload.data[k]) === JSON.stringify(v)),
      );
      if (i < 0)
        throw new Error(
          `no ${want.type} for ${want.userId} with ${JSON.stringify(want.data ?? {})} among:\n${entries.map((e) => e.raw).join('\n')}`,
        );
      unmatched.splice(i, 1);
      checked.add(want.type);
    }
    for (const e of entries) {
      expect(e.id).toBe(e.payload.id);
      expect(Object.keys(e.payload).sort()).toEqual(['actor_id', 'data', 'id', 'ip', 'occurred_at', 'type', 'user_agent', 'user_id']);
    }
  });
});

test('no payload on the stream holds a password, token, code, secret or api key the flows used', async () => {
  const entries = await streamEvents(w.t.context.redis, w.t.config.events.streamName);
  expect(entries.length).toBeGreaterThan(FLOWS.length);
  expect(w.secrets.size).toBeGreaterThan(40);
  for (const entry of entries) {
    for (const secret of w.secrets) if (entry.raw.includes(secret)) throw new Error(`${entry.type} holds a secret: ${entry.raw}`);
    for (const c of w.codes) expect(entry.raw).not.toMatch(new RegExp(`(?<![0-9a-f])${c}(?![0-9a-f])`));
    expect(entry.raw).not.toContain('secret-envelope');
  }
  // The trail in PostgreSQL holds nothing more than the stream.
  const rows = JSON.stringify(await w.db('events').select('data', 'user_agent'));
  for (const secret of w.secrets) expect(rows.includes(secret)).toBe(false);
});

test('every type of EVENT_TYPES is checked by a flow', () => {
  expect(EVENT_TYPES.filter((type) => !checked.has(type))).toEqual([]);
});
