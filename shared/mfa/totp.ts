// TOTP (RFC 6238) as Google Authenticator expects it: SHA-1, 6 digits, MFA_TOTP_WINDOW_SECONDS
// steps, one step of tolerance either way for clock drift. Every TOTP check of every endpoint goes
// through `verifyTotp`, which also enforces replay protection: the step of each accepted code is
// stored in users.mfa_last_used_step, and a code of an earlier or equal step is refused.
import type { Knex } from 'knex';
import { generateSecret, generateURI, verify } from 'otplib';

export const TOTP_DIGITS = 6;
/** 20 random bytes (160 bits, RFC 4226's recommendation), base32: what authenticator apps expect. */
const SECRET_BYTES = 20;
const TOTP_CODE = /^\d{6}$/;

export function newTotpSecret(): string {
  return generateSecret({ length: SECRET_BYTES });
}

export function totpUri(secret: string, options: { issuer: string; account: string; stepSeconds: number }): string {
  return generateURI({
    issuer: options.issuer,
    label: options.account,
    secret,
    algorithm: 'sha1',
    digits: TOTP_DIGITS,
    period: options.stepSeconds,
  });
}

/**
 * The time step a code belongs to, when it is valid now (± one step) and newer than `afterStep`;
 * null otherwise. Pure, and never throws on bad input: otplib throws on malformed codes and on an
 * `afterTimeStep` beyond its window, both of which simply mean "not valid" here.
 */
export async function matchTotpStep(
  secret: string,
  code: string,
  options: { stepSeconds: number; afterStep?: number | null; epochSeconds?: number },
): Promise<number | null> {
  if (!TOTP_CODE.test(code)) return null;
  const { stepSeconds } = options;
  const epoch = options.epochSeconds ?? Math.floor(Date.now() / 1000);
  const afterStep = options.afterStep ?? undefined;
  // The newest step the window can reach; a last step at or past it leaves nothing to accept.
  if (afterStep !== undefined && afterStep >= Math.floor(epoch / stepSeconds) + 1) return null;
  try {
    const result = await verify({
      secret,
      token: code,
      algorithm: 'sha1',
      digits: TOTP_DIGITS,
      period: stepSeconds,
      epoch,
      epochTolerance: stepSeconds,
      ...(afterStep !== undefined && { afterTimeStep: afterStep }),
    });
    // The functional API's result type also covers HOTP; a TOTP result carries its timeStep.
    return result.valid ? (result as { timeStep: number }).timeStep : null;
  } catch {
    return null;
  }
}

/**
 * Checks a TOTP code of `userId` against `secret` and, when it matches, records its step with a
 * conditional UPDATE: of two concurrent requests carrying one code, only one finds the stored
 * step still older and passes. Runs on `db`, which may be the caller's transaction.
 */
export async function verifyTotp(
  db: Knex,
  check: { userId: string; secret: string; code: string; stepSeconds: number; lastUsedStep: number | string | null },
): Promise<boolean> {
  const lastUsedStep = check.lastUsedStep === null ? null : Number(check.lastUsedStep);
  const step = await matchTotpStep(check.secret, check.code, { stepSeconds: check.stepSeconds, afterStep: lastUsedStep });
  if (step === null) return false;
  const updated = await db('users')
    .where({ id: check.userId })
    .where((q) => q.whereNull('mfa_last_used_step').orWhere('mfa_last_used_step', '<', step))
    .update({ mfa_last_used_step: step });
  return updated === 1;
}
