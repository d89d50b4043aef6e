// An independent RFC 6238 implementation for the tests (node:crypto only, no otplib), so the
// service is checked against the standard rather than against the library it uses.
import crypto from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Decode(text: string): Buffer {
  const clean = text.replace(/=+$/, '').toUpperCase();
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of clean) {
    const index = BASE32.indexOf(ch);
    if (index < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** HOTP (RFC 4226) with HMAC-SHA1 and dynamic truncation. */
export function hotp(key: Buffer, counter: number, digits = 6): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac('sha1', key).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(binary % 10 ** digits).padStart(digits, '0');
}

export const STEP_SECONDS = 30;
export const stepAt = (epochSeconds: number, step = STEP_SECONDS) => Math.floor(epochSeconds / step);
export const currentStep = () => stepAt(Date.now() / 1000);

/** TOTP code of a base32 secret for a given time step. */
export const totpForStep = (secretBase32: string, timeStep: number, digits = 6) => hotp(base32Decode(secretBase32), timeStep, digits);

/** A 6-digit code that is valid in none of the steps the server may accept right now. */
export function wrongCode(secretBase32: string): string {
  const now = currentStep();
  const valid = new Set([-2, -1, 0, 1, 2].map((d) => totpForStep(secretBase32, now + d)));
  for (let n = 0; ; n++) {
    const candidate = String((123456 + n * 7919) % 1_000_000).padStart(6, '0');
    if (!valid.has(candidate)) return candidate;
  }
}

/**
 * An authenticator app of a test: each `code()` is of a step newer than the last one used
 * (replay protection) and inside the server's ± one-step window, computed for an explicit step
 * rather than "now", so a step boundary between computing and checking cannot make it stale.
 * The step before the current one is used only with more than 3 s left in the current step;
 * a code newer than next step waits for the clock.
 */
export class Authenticator {
  private last = -Infinity;
  constructor(readonly secret: string) {}

  async code(): Promise<string> {
    for (;;) {
      const now = Date.now() / 1000;
      const cur = stepAt(now);
      const remaining = (cur + 1) * STEP_SECONDS - now;
      const step = Math.max(remaining > 3 ? cur - 1 : cur, this.last + 1);
      if (step <= cur + 1) {
        this.last = step;
        return totpForStep(this.secret, step);
      }
      await new Promise((r) => setTimeout(r, remaining * 1000 + 100));
    }
  }

  /** A code two steps old (refused by the window); only used with more than 3 s left in the step. */
  async staleCode(): Promise<string> {
    const now = Date.now() / 1000;
    const remaining = (stepAt(now) + 1) * STEP_SECONDS - now;
    if (remaining <= 3) await new Promise((r) => setTimeout(r, remaining * 1000 + 100));
    return totpForStep(this.secret, currentStep() - 2);
  }
}
