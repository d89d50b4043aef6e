// The password policy (one module for every flow that sets a password) and bcrypt's limits.
import bcrypt from 'bcrypt';
import { checkPassword } from '../../shared/users/password-policy';
import { costOf, hashPassword, limitBcrypt, verifyPassword } from '../../shared/users/passwords';
import { UnavailableError } from '../../shared/errors';
import { parseConfig } from '../../shared/config';

const classic = { minLength: 12, requireCharacterClasses: true };
const nist = { minLength: 12, requireCharacterClasses: false };
const rules = (password: string, policy = classic, who = { email: 'asha.rao@example.com', name: 'Asha Rao' }) =>
  checkPassword(password, who, policy).map((v) => v.rule);

test('a good password passes', () => {
  expect(rules('Correct-Horse-42-Battery')).toEqual([]);
  expect(rules('zebra canyon lantern violet', nist)).toEqual([]);
});

test('each broken rule is named', () => {
  expect(rules('Sh0rt!')).toEqual(['min_length']);
  expect(rules('all-lowercase-words-42')).toEqual(['uppercase']);
  expect(rules('ALL-UPPERCASE-WORDS-42')).toEqual(['lowercase']);
  expect(rules('No-Digits-In-Here-At-All')).toEqual(['digit']);
  expect(rules('NoSpecials1234567')).toEqual(['special']);
  expect(rules('My-asha.rao-Pass-42', classic, { email: 'asha.rao@example.com', name: 'Priya' })).toEqual(['contains_email']);
  expect(rules('Rao-Is-My-Name-42!')).toEqual(['contains_name']);
  for (const v of checkPassword('short', {}, classic)) expect(v.message).toMatch(/^must /);
});

test('length counts Unicode code points, not UTF-16 units or bytes', () => {
  // Eleven emoji are 22 UTF-16 units and 44 bytes, but only 11 characters.
  expect(rules('😀'.repeat(11), nist)).toContain('min_length');
  expect(rules('😀'.repeat(12), nist)).not.toContain('min_length');
});

test('common and breached passwords are refused, decorated or not', () => {
  expect(rules('password', nist)).toContain('common');
  expect(rules('Password123!', classic)).toContain('common');
  expect(rules('qwertyuiop', nist)).toContain('common');
  expect(rules('iloveyou12345', nist)).toContain('common');
});

test('the character-class rule can be turned off (NIST SP 800-63B); length and lists still apply', () => {
  expect(rules('orange kettle marching slowly', nist)).toEqual([]);
  expect(rules('orange kettle marching slowly', classic)).toEqual(['uppercase', 'digit']);
  expect(rules('Zq8!vb', nist)).toEqual(['min_length']);
  expect(rules('short', nist)).toEqual(['min_length', 'common']);
  expect(parseConfig({ PASSWORD_REQUIRE_CHARACTER_CLASSES: 'false' }).password.requireCharacterClasses).toBe(false);
});

test('at most 72 bytes reach bcrypt: longer passwords are refused, so two sharing 72 bytes cannot both verify', async () => {
  const base = `Aa1!${'x'.repeat(68)}`; // 72 bytes
  expect(rules(base, classic, { email: '', name: '' })).toEqual([]);
  expect(rules(`${base}y`, classic, { email: '', name: '' })).toEqual(['max_bytes']);
  // Multi-byte characters count by their UTF-8 bytes: 25 × 3 bytes = 75.
  expect(rules(`Aa1!${'€'.repeat(25)}`, classic, { email: '', name: '' })).toContain('max_bytes');
  const hash = await hashPassword(base, 4);
  expect(await verifyPassword(base, hash)).toBe(true);
  expect(await verifyPassword(`${base}y`, hash)).toBe(false);
  await expect(hashPassword(`${base}y`, 4)).rejects.toThrow(/72 bytes/);
  // What raw bcrypt would have done: accept the longer password.
  expect(await bcrypt.compare(`${base}y`, hash)).toBe(true);
});

test('the production default cost is 12', async () => {
  const cost = parseConfig({}).password.bcryptCost;
  expect(cost).toBe(12);
  const hash = await hashPassword('Correct-Horse-42-Battery', cost);
  expect(costOf(hash)).toBe(12);
  expect(hash).toMatch(/^\$2b\$12\$/);
});

test('bcrypt work is gated: at most the configured number at once, a bounded queue, then 503', async () => {
  limitBcrypt(1, 1);
  try {
    const started = [hashPassword('Gate-Test-Password-1', 6), hashPassword('Gate-Test-Password-2', 6)];
    await expect(
      verifyPassword('Gate-Test-Password-3', '$2b$06$abcdefghijklmnopqrstuu5zA0uR7e1mPqX8mM4b2yq8q3t2yqGa'),
    ).rejects.toBeInstanceOf(UnavailableError);
    const hashes = await Promise.all(started);
    expect(hashes.map(costOf)).toEqual([6, 6]);
    // The gate reopens once the work is done.
    expect(await verifyPassword('Gate-Test-Password-1', hashes[0])).toBe(true);
  } finally {
    limitBcrypt(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  }
});
