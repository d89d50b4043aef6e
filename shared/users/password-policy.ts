// The password policy, used by every flow that sets a password (register, reset, change, CLI).
// Length counts Unicode code points; bcrypt reads at most 72 bytes, so longer passwords are refused
// (rather than silently truncated: two passwords sharing 72 bytes must not both verify). The
// character-class rule can be turned off for deployments that follow NIST SP 800-63B; the length,
// personal-data and common-password checks always apply.
import { dictionary } from '@zxcvbn-ts/language-common';
import type { Config } from '../config';
import { BCRYPT_MAX_BYTES } from './passwords';
import { ValidationError } from '../errors';

export interface PolicyViolation {
  rule: 'min_length' | 'max_bytes' | 'uppercase' | 'lowercase' | 'digit' | 'special' | 'contains_email' | 'contains_name' | 'common';
  message: string;
}

// ~49,000 passwords seen most often in breaches, shipped with the package (no network).
const COMMON = new Set<string>((dictionary as Record<string, string[]>)['passwords-common'].map((p) => p.toLowerCase()));

function isCommon(password: string): boolean {
  const lower = password.toLowerCase();
  // "Password123!" is "password" with the decorations everyone adds.
  const core = lower.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '');
  return COMMON.has(lower) || (core.length >= 4 && COMMON.has(core));
}

function personalFragments(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((part) => [...part].length >= 3);
}

export function checkPassword(
  password: string,
  context: { email?: string | null; name?: string | null },
  policy: Pick<Config['password'], 'minLength' | 'requireCharacterClasses'>,
): PolicyViolation[] {
  const violations: PolicyViolation[] = [];
  if ([...password].length < policy.minLength)
    violations.push({ rule: 'min_length', message: `must be at least ${policy.minLength} characters long` });
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES)
    violations.push({
      rule: 'max_bytes',
      message: `must be at most ${BCRYPT_MAX_BYTES} bytes in UTF-8 (about ${BCRYPT_MAX_BYTES} plain letters or fewer accented or non-Latin ones)`,
    });
  if (policy.requireCharacterClasses) {
    if (!/\p{Lu}/u.test(password)) violations.push({ rule: 'uppercase', message: 'must contain an uppercase letter' });
    if (!/\p{Ll}/u.test(password)) violations.push({ rule: 'lowercase', message: 'must contain a lowercase letter' });
    if (!/\p{Nd}/u.test(password)) violations.push({ rule: 'digit', message: 'must contain a digit' });
    if (!/[^\p{L}\p{N}]/u.test(password))
      violations.push({ rule: 'special', message: 'must contain a special character (neither letter nor digit)' });
  }
  const lower = password.toLowerCase();
  const local = context.email?.split('@')[0]?.toLowerCase() ?? '';
  if ([...local].length >= 3 && lower.includes(local))
    violations.push({ rule: 'contains_email', message: 'must not contain your email address' });
  if (context.name && personalFragments(context.name).some((part) => lower.includes(part)))
    violations.push({ rule: 'contains_name', message: 'must not contain your name' });
  if (isCommon(password))
    violations.push({ rule: 'common', message: 'must not be a common password: it appears in lists of breached passwords' });
  return violations;
}

/** Rejects a password that breaks the policy with a 400 naming `field` once per broken rule. */
export function assertPasswordPolicy(
  password: string,
  field: string,
  who: { email?: string | null; name?: string | null },
  policy: Pick<Config['password'], 'minLength' | 'requireCharacterClasses'>,
): void {
  const violations = checkPassword(password, who, policy);
  if (violations.length)
    throw new ValidationError(
      violations.map((v) => ({ field, message: v.message })),
      'The password does not meet the password policy.',
    );
}
