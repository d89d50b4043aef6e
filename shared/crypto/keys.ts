// Key material on disk: the RS256 signing keys (one pair per `kid`, every public key published in
// the JWKS so keys can rotate) and the KMS master key. Development creates what is missing;
// every other environment refuses to start without it.
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config';

export class KeyError extends Error {}

export interface Jwk {
  kty: string;
  kid: string;
  use: 'sig';
  alg: 'RS256';
  n: string;
  e: string;
}

export interface SigningKeys {
  signingKid: string;
  privateKey: KeyObject;
  publicKeys: Map<string, KeyObject>;
  jwks: { keys: Jwk[] };
  /** Counts the reloads that changed the key set: what was derived from an older set is stale. */
  generation: number;
}

const privatePath = (dir: string, kid: string) => path.join(dir, `${kid}.pem`);
const publicPath = (dir: string, kid: string) => path.join(dir, `${kid}.pub.pem`);

function writeSecretFile(file: string, contents: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // 'wx': never overwrite a key another process wrote a moment ago.
  try {
    fs.writeFileSync(file, contents, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/** Creates the signing key pair and master key when missing. Returns the files it created. */
export function createMissingKeys(config: Pick<Config, 'jwt' | 'kms'>): string[] {
  const created: string[] = [];
  const { keysDir, signingKeyId } = config.jwt;
  if (!/^[A-Za-z0-9._-]+$/.test(signingKeyId))
    throw new KeyError(`JWT_SIGNING_KEY_ID "${signingKeyId}" may hold only letters, digits, '.', '_' and '-'`);
  if (!fs.existsSync(privatePath(keysDir, signingKeyId))) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeSecretFile(privatePath(keysDir, signingKeyId), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    writeSecretFile(publicPath(keysDir, signingKeyId), publicKey.export({ type: 'spki', format: 'pem' }).toString());
    created.push(privatePath(keysDir, signingKeyId));
  }
  if (!fs.existsSync(config.kms.keyPath)) {
    writeSecretFile(config.kms.keyPath, `${crypto.randomBytes(32).toString('hex')}\n`);
    created.push(config.kms.keyPath);
  }
  return created;
}

function readKey(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    throw new KeyError(
      `${what} not found at ${file}. In development \`npm start\` creates it; elsewhere provision it (see README, "Keys").`,
    );
  }
}

export function loadSigningKeys(config: Pick<Config, 'jwt'>): SigningKeys {
  const { keysDir, signingKeyId } = config.jwt;
  const privateKey = crypto.createPrivateKey(readKey(privatePath(keysDir, signingKeyId), `Signing key "${signingKeyId}"`));
  if (privateKey.asymmetricKeyType !== 'rsa') throw new KeyError(`Signing key "${signingKeyId}" is not an RSA key`);
  const publicKeys = new Map<string, KeyObject>();
  for (const file of fs.readdirSync(keysDir).sort()) {
    if (!file.endsWith('.pub.pem')) continue;
    const kid = file.slice(0, -'.pub.pem'.length);
    const key = crypto.createPublicKey(fs.readFileSync(path.join(keysDir, file), 'utf8'));
    if (key.asymmetricKeyType === 'rsa') publicKeys.set(kid, key);
  }
  // The signing key's public half is always published, even when its .pub.pem is missing.
  if (!publicKeys.has(signingKeyId)) publicKeys.set(signingKeyId, crypto.createPublicKey(privateKey));
  const keys = [...publicKeys].map(([kid, key]) => {
    const { n, e, kty } = key.export({ format: 'jwk' });
    return { kty: kty as string, kid, use: 'sig' as const, alg: 'RS256' as const, n: n as string, e: e as string };
  });
  return { signingKid: signingKeyId, privateKey, publicKeys, jwks: { keys }, generation: 0 };
}

/**
 * Reads the key folder again into `keys`, the one object every holder reads at each use. A
 * rotation across several processes is then safe without restarts in between: put the new pair
 * in every copy's folder, wait for every copy to publish and accept it, then sign with it
 * (JWT_SIGNING_KEY_ID, a rolling restart); a public key removed is refused from the next reload.
 * Returns whether the set changed. A folder that does not load (a file half copied) throws and
 * leaves `keys` as they were.
 */
export function reloadSigningKeys(keys: SigningKeys, config: Pick<Config, 'jwt'>): boolean {
  const next = loadSigningKeys(config);
  if (next.signingKid === keys.signingKid && JSON.stringify(next.jwks) === JSON.stringify(keys.jwks)) return false;
  Object.assign(keys, next, { generation: keys.generation + 1 });
  return true;
}

export function readMasterKey(file: string): Buffer {
  const hex = readKey(file, 'KMS master key').trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new KeyError(`KMS master key at ${file} must be 64 hex characters (32 bytes)`);
  return Buffer.from(hex, 'hex');
}
