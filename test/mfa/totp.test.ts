// The TOTP check itself (shared/mfa/totp.ts) against an independent RFC 6238 implementation, which is
// first checked against the RFC's own SHA-1 test vectors.
import { matchTotpStep, newTotpSecret } from '../../shared/mfa/totp';
import { base32Decode, hotp, totpForStep } from './rfc6238';

const RFC_KEY = Buffer.from('12345678901234567890', 'ascii');
// RFC 6238, Appendix B (SHA-1 column): Unix time → 8-digit TOTP with a 30 s step.
const VECTORS: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];
// The same key in base32, as an authenticator app receives it.
const RFC_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

test('the test implementation reproduces the RFC 6238 SHA-1 vectors', () => {
  expect(base32Decode(RFC_SECRET)).toEqual(RFC_KEY);
  for (const [time, expected] of VECTORS) {
    expect([time, hotp(RFC_KEY, Math.floor(time / 30), 8)]).toEqual([time, expected]);
    expect(totpForStep(RFC_SECRET, Math.floor(time / 30), 8)).toBe(expected);
  }
});

test('the service accepts the 6-digit codes of the vectors at their time, within one step of drift', async () => {
  for (const [time, expected] of VECTORS) {
    const step = Math.floor(time / 30);
    const code = expected.slice(-6); // dynamic truncation mod 10^6 is the last six digits of mod 10^8
    expect(totpForStep(RFC_SECRET, step)).toBe(code);
    expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time })).toBe(step);
    expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time + 30 })).toBe(step);
    expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time - 30 })).toBe(step);
    // Two steps away: refused.
    expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time + 60 })).toBeNull();
    expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time - 60 })).toBeNull();
  }
});

test('replay protection: a code of a step at or before the last accepted one is refused', async () => {
  const time = 1111111111;
  const step = Math.floor(time / 30);
  const code = totpForStep(RFC_SECRET, step);
  expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time, afterStep: step - 1 })).toBe(step);
  expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time, afterStep: step })).toBeNull();
  expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time, afterStep: step + 1 })).toBeNull();
  // A last step beyond the window (a clock that went back) refuses instead of throwing.
  expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: time, afterStep: step + 50 })).toBeNull();
});

test('malformed codes are refused, not thrown', async () => {
  for (const code of ['', '12345', '1234567', 'abcdef', ' 12345', '１２３４５６']) {
    expect(await matchTotpStep(RFC_SECRET, code, { stepSeconds: 30, epochSeconds: 59 })).toBeNull();
  }
});

test('a new secret has 160 bits and is base32', () => {
  const a = newTotpSecret();
  expect(a).toMatch(/^[A-Z2-7]{32}$/);
  expect(base32Decode(a)).toHaveLength(20);
  expect(newTotpSecret()).not.toBe(a);
});
