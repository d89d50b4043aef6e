// HTTP endpoints of MFA: TOTP set-up, enable, step-up verify, disable, backup codes, and the
// completion of the sign-in challenge (POST /v1/auth/mfa/verify). With FEATURE_MFA_TOTP=false,
// set-up, enable, verify and regenerate are not registered (404); signing in with MFA and turning
// it off keep working for users who already have it (DESIGN.md, "MFA challenge").
import Router from '@koa/router';
import type { Context } from '../../shared/context';
import { completeMfaChallenge } from '../../shared/auth/sign-in';
import { disableTotp, enableTotp, regenerateBackupCodes, setupTotp, stepUp } from '../../shared/mfa/service';
import type { RouteRegistry } from '../http/route';
import { actorOf, eventOrigin, type AppState } from '../http/state';
import { requirePerson, requireRecentSignIn } from '../auth/authenticate';
import { sendTokens } from '../auth/presenters';
import { TokenPair } from '../auth/schemas';
import { passwordlessProof } from './step-up';
import * as schemas from './schemas';

export function mfaRoutes(app: Context, registry: RouteRegistry): Router<AppState> {
  const router = new Router<AppState>();
  const person = requirePerson(app);
  const recentSignIn = requireRecentSignIn();

  registry.add(router, {
    method: 'post',
    path: '/v1/auth/mfa/verify',
    summary: 'Complete an MFA sign-in challenge with a TOTP or backup code',
    tags: ['auth', 'mfa'],
    security: 'none',
    body: schemas.LoginVerifyBody,
    responses: {
      200: { description: 'A token pair (amr contains mfa)', schema: TokenPair },
      401: { description: 'Wrong code, or unknown or expired mfa_token' },
      429: { description: 'Too many wrong codes for the account; the challenge is deleted' },
    },
    async handler(ctx, { body }) {
      sendTokens(app, ctx, await completeMfaChallenge(app, body.mfa_token, body.code));
    },
  });

  if (app.config.features.mfaTotp) {
    registry.add(router, {
      method: 'post',
      path: '/v1/mfa/totp/setup',
      summary: 'Start TOTP set-up: a new secret, its otpauth URI and QR code (needs a sign-in less than 5 minutes old)',
      tags: ['mfa'],
      security: 'bearer',
      // A stolen access token must not be enough to enrol the thief's authenticator.
      guard: [person, recentSignIn],
      body: schemas.SetupBody,
      responses: {
        200: { description: 'The pending secret (15 minutes; a new set-up replaces it)', schema: schemas.Setup },
        403: { description: 'The sign-in is older than 5 minutes' },
        409: { description: 'MFA is already enabled' },
      },
      async handler(ctx) {
        const setup = await setupTotp(app, actorOf(ctx.state).userId);
        ctx.body = { secret: setup.secret, otpauth_uri: setup.otpauthUri, qr_code: setup.qrCode, expires_in: setup.expiresIn };
      },
    });

    registry.add(router, {
      method: 'post',
      path: '/v1/mfa/totp/enable',
      summary: 'Confirm the pending secret with a code and turn MFA on',
      tags: ['mfa'],
      security: 'bearer',
      guard: person,
      body: schemas.EnableBody,
      responses: {
        200: { description: 'MFA is on; the backup codes are shown this once', schema: schemas.Enabled },
        400: { description: 'Wrong code, or no pending set-up' },
        401: { description: 'The fifth wrong code of a session signs it out (session_revoked)' },
        409: { description: 'MFA is already enabled' },
      },
      async handler(ctx, { body }) {
        ctx.body = { enabled: true, backup_codes: await enableTotp(app, actorOf(ctx.state), body.code, eventOrigin(ctx.state)) };
      },
    });

    registry.add(router, {
      method: 'post',
      path: '/v1/mfa/totp/verify',
      summary: 'Step-up: a verification token for sensitive operations (X-Verification-Token)',
      tags: ['mfa'],
      security: 'bearer',
      guard: person,
      body: schemas.CodeBody,
      responses: {
        200: { description: 'A token valid for 5 minutes in this session', schema: schemas.Verification },
        401: { description: 'Wrong code; the fifth wrong code of a session signs it out (session_revoked)' },
        409: { description: 'MFA is not enabled' },
      },
      async handler(ctx, { body }) {
        const verification = await stepUp(app, actorOf(ctx.state), body.code, eventOrigin(ctx.state));
        ctx.body = { verification_token: verification.verificationToken, expires_in: verification.expiresIn };
      },
    });

    registry.add(router, {
      method: 'post',
      path: '/v1/mfa/backup-codes/regenerate',
      summary: 'Replace the backup codes (the old ones stop working)',
      tags: ['mfa'],
      security: 'bearer',
      guard: person,
      body: schemas.CodeBody,
      responses: {
        200: { description: 'The new backup codes, shown this once', schema: schemas.Regenerated },
        401: { description: 'Wrong code; the fifth wrong code of a session signs it out (session_revoked)' },
        409: { description: 'MFA is not enabled' },
      },
      async handler(ctx, { body }) {
        ctx.body = { backup_codes: await regenerateBackupCodes(app, actorOf(ctx.state), body.code, eventOrigin(ctx.state)) };
      },
    });
  }

  registry.add(router, {
    method: 'post',
    path: '/v1/mfa/totp/disable',
    summary: 'Turn MFA off (password and a TOTP or backup code; without a password: a fresh sign-in or step-up token)',
    tags: ['mfa'],
    security: 'bearer',
    guard: person,
    body: schemas.DisableBody,
    responses: {
      204: { description: 'MFA is off and the backup codes are deleted' },
      401: { description: 'Wrong password or code; the fifth wrong attempt of a session signs it out (session_revoked)' },
      403: { description: 'An account without a password, without a sign-in of the last 5 minutes or a verification token' },
      409: { description: 'MFA is not enabled' },
    },
    async handler(ctx, { body }) {
      await disableTotp(app, actorOf(ctx.state), { ...body, ...passwordlessProof(ctx) }, eventOrigin(ctx.state));
      ctx.status = 204;
    },
  });

  return router;
}
