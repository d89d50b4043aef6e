// Password hashing. bcrypt reads at most 72 bytes, so longer passwords are refused by the policy
// before they get here; the assertion below makes sure no caller forgets.
//
// bcrypt runs on the libuv threadpool, which RS256 signing and verification (WebCrypto) and DNS
// share. A gate keeps the hashes in flight below the pool's size, so token checks always find a
// free thread while logins saturate the CPU; a bounded queue sheds load beyond it (503).
import bcrypt from 'bcrypt';
import { UnavailableError } from '../errors';

export const BCRYPT_MAX_BYTES = 72;

const gate = { limit: Number.POSITIVE_INFINITY, maxQueue: Number.POSITIVE_INFINITY, running: 0, waiting: [] as Array<() => void> };

/** Called once per process from its configuration (BCRYPT_MAX_CONCURRENCY, BCRYPT_MAX_QUEUE). */
export function limitBcrypt(limit: number, maxQueue: number): void {
  gate.limit = limit;
  gate.maxQueue = maxQueue;
}

async function gated<T>(work: () => Promise<T>): Promise<T> {
  if (gate.running < gate.limit) {
    gate.running += 1;
  } else {
    if (gate.waiting.length >= gate.maxQueue) throw new UnavailableError('Too many sign-ins are in progress; retry in a moment.');
    // A finishing hash hands its slot straight to the next in line (running stays counted).
    await new Promise<void>((resolve) => gate.waiting.push(resolve));
  }
  try {
    return await work();
  } finally {
    const next = gate.waiting.shift();
    if (next) next();
    else gate.running -= 1;
  }
}

export async function hashPassword(password: string, cost: number): Promise<string> {
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES) throw new Error('password longer than 72 bytes reached bcrypt');
  return gated(() => bcrypt.hash(password, cost));
}

export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (Buffer.byteLength(password, 'utf8') > BCRYPT_MAX_BYTES) return false;
  return gated(() => bcrypt.compare(password, hash));
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
