// Password hashing. bcrypt reads at most 72 bytes, so longer passwords are refused by the policy
// before they get here; the assertion below makes sure no caller forgets.
import bcrypt from 'bcrypt';

export const BCRYPT_MAX_BYTES = 72;

export async function hashPassword(password: string, cost: number): Promise<string> {
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES) throw new Error('password longer than 72 bytes reached bcrypt');
  return bcrypt.hash(password, cost);
}

export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES) return false;
  return bcrypt.compare(password, hash);
}

export function costOf(hash: string): number {
  return Number.parseInt(hash.split('$')[2] ?? '0', 10);
}

// Compared against when the account does not exist, so that an unknown email costs the same time
// as a wrong password. Created lazily at the configured cost.
const dummyHashes = new Map<number, Promise<string>>();
export function dummyHash(cost: number): Promise<string> {
  let hash = dummyHashes.get(cost);
  if (!hash) {
    hash = bcrypt.hash('not-a-real-password-but-the-same-cost', cost);
    dummyHashes.set(cost, hash);
  }
  return hash;
}
