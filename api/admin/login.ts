// The operators' sign-in (DESIGN.md, "Operators' access to Bull Board"): a small page at
// /admin/login whose script posts JSON (every body is JSON here), the password and then, for an
// operator with MFA, a code; success sets the operator session's cookie (HttpOnly, Secure,
// SameSite=Strict, path /admin) and the page moves on to the dashboard. /admin/logout ends it.
import Router from '@koa/router';
import { Type } from '@sinclair/typebox';
import type { Context as KoaContext } from 'koa';
import type { Context } from '../../shared/context';
import { completeOperatorChallenge, operatorSignIn } from '../../shared/auth/sign-in';
import { endOperatorSession, type OperatorSession } from '../../shared/auth/operator-sessions';
import { OneOf, Strict, type RouteRegistry } from '../http/route';
import { clientInfo } from '../http/request-context';
import { eventOrigin, type AppState } from '../http/state';
import { MfaChallenge } from '../auth/schemas';
import { BULL_BOARD_PATH, LOGIN_PATH, LOGOUT_PATH } from './paths';

const COOKIE_PATH = '/admin';

export const operatorCookieName = (app: Context) => (app.config.cookie.secure ? '__Secure-operator_session' : 'operator_session');

function setOperatorCookie(app: Context, ctx: KoaContext, session: OperatorSession | null): void {
  const secure = app.config.cookie.secure;
  // Koa refuses Secure cookies on what it sees as plain HTTP (TLS usually ends at a proxy).
  ctx.cookies.secure = ctx.cookies.secure || secure;
  ctx.cookies.set(operatorCookieName(app), session?.cookieToken ?? '', {
    path: COOKIE_PATH,
    secure,
    httpOnly: true,
    sameSite: 'strict',
    overwrite: true,
    expires: session?.expiresAt ?? new Date(0),
  });
}

const Credentials = Strict(
  { email: Type.String({ format: 'email', maxLength: 254 }), password: Type.String({ minLength: 1, maxLength: 1024 }) },
  { examples: [{ email: 'ops@example.com', password: 'A long unique passphrase 9!' }] },
);
const CodeBody = Strict(
  { mfa_token: Type.String({ minLength: 16, maxLength: 512 }), code: Type.String({ minLength: 6, maxLength: 32 }) },
  { examples: [{ mfa_token: 'Qm9ndXMtZXhhbXBsZS10b2tlbi1vZi00My1jaGFycw', code: '492039' }] },
);
const SignedIn = Type.Object({ signed_in: Type.Literal(true), next: Type.String({ description: 'Where the page goes now' }) });

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const page = (title: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#151a21;color:#e6e9ee;display:flex;min-height:100vh;align-items:center;justify-content:center;margin:0}
form{background:#1f2630;padding:2rem;border-radius:8px;width:20rem;display:flex;flex-direction:column;gap:.75rem}
h1{font-size:1.2rem;margin:0 0 .5rem}label{display:flex;flex-direction:column;gap:.25rem;font-size:.9rem}
input{padding:.5rem;border-radius:4px;border:1px solid #3a4452;background:#151a21;color:inherit;font-size:1rem}
button{padding:.6rem;border:0;border-radius:4px;background:#3b82f6;color:#fff;font-size:1rem;cursor:pointer}
[hidden]{display:none!important}#message{color:#fca5a5;min-height:1.2em;font-size:.9rem;margin:0}
</style></head><body>
<form id="sign-in" novalidate>
  <h1>${escapeHtml(title)}</h1>
  <div id="password-step">
    <label>Email <input name="email" type="email" autocomplete="username" required></label>
    <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  </div>
  <div id="code-step" hidden>
    <label>Authentication code <input name="code" inputmode="numeric" autocomplete="one-time-code"></label>
  </div>
  <button type="submit">Sign in</button>
  <p id="message" role="alert"></p>
</form>
<script src="${LOGIN_PATH}.js"></script>
</body></html>`;

// Posts JSON (never a form body: the API takes JSON only), then follows the answer.
const script = `(() => {
  const form = document.getElementById('sign-in');
  const message = document.getElementById('message');
  let mfaToken = null;
  async function post(path, body) {
    const response = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), credentials: 'same-origin' });
    const answer = await response.json().catch(() => ({}));
    return { response, answer };
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.textContent = '';
    const data = new FormData(form);
    const { response, answer } = mfaToken
      ? await post('${LOGIN_PATH}/verify', { mfa_token: mfaToken, code: String(data.get('code')) })
      : await post('${LOGIN_PATH}', { email: String(data.get('email')), password: String(data.get('password')) });
    if (response.ok && answer.mfa_required) {
      mfaToken = answer.mfa_token;
      document.getElementById('password-step').hidden = true;
      document.getElementById('code-step').hidden = false;
      form.elements.code.focus();
      return;
    }
    if (response.ok) {
      window.location.assign(answer.next);
      return;
    }
    message.textContent = answer.detail || 'Sign-in failed.';
  });
})();`;

export function operatorLoginRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const title = `${app.config.appName} operators`;
  const signedIn = (ctx: KoaContext, session: OperatorSession) => {
    setOperatorCookie(app, ctx, session);
    ctx.body = { signed_in: true, next: BULL_BOARD_PATH };
  };

  registry.add(router, {
    method: 'get',
    path: LOGIN_PATH,
    summary: "The operators' sign-in page (Bull Board)",
    tags: ['admin'],
    security: 'none',
    responses: { 200: { description: 'HTML page', contentType: 'text/html' } },
    handler(ctx) {
      ctx.type = 'html';
      ctx.body = page(title);
    },
  });

  registry.add(router, {
    method: 'get',
    path: `${LOGIN_PATH}.js`,
    summary: "The sign-in page's script",
    tags: ['admin'],
    security: 'none',
    responses: { 200: { description: 'JavaScript', contentType: 'application/javascript' } },
    handler(ctx) {
      ctx.type = 'application/javascript';
      ctx.body = script;
    },
  });

  registry.add(router, {
    method: 'post',
    path: LOGIN_PATH,
    summary: "Sign in to the operators' console with email and password (the login's rules and limits)",
    tags: ['admin'],
    security: 'none',
    body: Credentials,
    responses: {
      200: { description: 'Signed in (the session cookie is set), or an MFA challenge', schema: OneOf([SignedIn, MfaChallenge]) },
      401: { description: 'Wrong email or password, or no operator (one answer for every cause)' },
      403: { description: 'Right password, but the email is unverified or (outside development) MFA is off' },
      429: { description: 'Too many failed attempts' },
    },
    async handler(ctx, { body }) {
      const result = await operatorSignIn(app, body, clientInfo(ctx, app.config));
      if (result.kind === 'session') return signedIn(ctx, result.session);
      ctx.body = { mfa_required: true, mfa_token: result.mfaToken, expires_in: result.expiresIn };
    },
  });

  registry.add(router, {
    method: 'post',
    path: `${LOGIN_PATH}/verify`,
    summary: "Complete the operators' sign-in with a TOTP or backup code",
    tags: ['admin'],
    security: 'none',
    body: CodeBody,
    responses: {
      200: { description: 'Signed in; the session cookie is set', schema: SignedIn },
      401: { description: 'Wrong code, or unknown or expired mfa_token' },
      429: { description: 'Too many wrong codes for the account; the challenge is deleted' },
    },
    async handler(ctx, { body }) {
      signedIn(ctx, await completeOperatorChallenge(app, body.mfa_token, body.code));
    },
  });

  registry.add(router, {
    method: 'get',
    path: LOGOUT_PATH,
    summary: "Sign out of the operators' console",
    tags: ['admin'],
    security: 'none',
    responses: { 302: { description: 'Signed out; back to the sign-in page' } },
    async handler(ctx) {
      // A GET, for a link in the dashboard: the cookie is SameSite=Strict, so no other site can
      // sign an operator out.
      const cookie = ctx.cookies.get(operatorCookieName(app));
      if (cookie) await endOperatorSession(app, cookie, eventOrigin(ctx.state));
      setOperatorCookie(app, ctx, null);
      ctx.redirect(LOGIN_PATH);
    },
  });

  return router;
}
