// Envelope encryption (AES-256-GCM): each value gets its own random data key, which is wrapped by
// the master key; the master key's id travels with the envelope so the master key can rotate
// (old keys stay listed for decryption only). A context string is bound as associated data, so a
// ciphertext copied to another row or field does not decrypt. The key files are read again on
// the signing keys' timer and on SIGHUP (shared/context.ts), so a rotation across many processes
// is done with files alone: publish the new key in LOCAL_KMS_KEYS_DIR everywhere, then replace
// LOCAL_KMS_KEY_PATH everywhere (docs/operations.md, "Keys").
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import type { Config } from '../config';
import { KeyError, readMasterKey } from './keys';

const VERSION = 'v1';

export interface Kms {
  /** The master key that seals now; it follows reloads, so read it at each use. */
  readonly currentKeyId: string;
  encrypt(plaintext: string, context: string): string;
  decrypt(envelope: string, context: string): string;
  /** Re-wraps an envelope under the current master key (for rotation); the data key is unchanged. */
  rewrap(envelope: string): string;
  /**
   * A 256-bit key for one purpose (HKDF from the current master key), for keyed hashes of values
   * that must not be stored as such. It changes when the master key rotates (and follows reloads:
   * derive it at each use rather than keeping it).
   */
  deriveKey(purpose: string): Buffer;
}

/** What one reload of the master key files found. */
export interface KmsReload {
  /** Whether the key that seals or the set of keys that open changed. */
  changed: boolean;
  currentKeyId: string;
  /** Every key id that opens envelopes (fingerprints, never key material). */
  keyIds: string[];
  /** Files that did not load, with why; the key last read from each (if any) stays in use. */
  failed: { file: string; reason: string }[];
  /** Keys this process sealed with that no file holds any more: they open until it restarts. */
  heldInMemory: string[];
}

export interface LocalKms extends Kms {
  /**
   * Reads the master key files again: LOCAL_KMS_KEY_PATH (seals), LOCAL_KMS_PREVIOUS_KEY_PATHS
   * and every `*.key` of LOCAL_KMS_KEYS_DIR (open only). Never throws: a running process keeps
   * the keys it has rather than stopping on a file half copied.
   */
  reload(): KmsReload;
}

function keyIdOf(key: Buffer): string {
  return `local-${crypto.createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(sealed.subarray(12, 28));
  return Buffer.concat([decipher.update(sealed.subarray(28)), decipher.final()]);
}

export class DecryptionError extends Error {}

/** One consistent view of the keys: every operation reads it once, so a reload never splits one. */
interface KeySet {
  current: Buffer;
  currentKeyId: string;
  /** Every key that opens, by id. */
  opening: Map<string, Buffer>;
  /** The key last read from each file, so a file that stops loading does not take its key away. */
  byFile: Map<string, Buffer>;
  /** Derived keys of `current`, computed once per purpose. */
  derived: Map<string, Buffer>;
}

type KmsSettings = Pick<Config, 'kms'>['kms'];

/** The decrypt-only folder's `*.key` files; a folder that does not exist holds none. */
function folderKeyFiles(dir: string | undefined): string[] {
  if (!dir) return [];
  try {
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.key'))
      .sort()
      .map((f) => path.join(dir, f));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new KeyError(`LOCAL_KMS_KEYS_DIR ${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

const isMissing = (file: string) => !fs.existsSync(file);

/**
 * Reads every key file. At start (`previous` absent) any file that does not load is an error, as
 * a missing key always was. On a reload a file that does not load keeps the key last read from
 * it; a decrypt-only file that is gone is dropped (that is how a key retires), whereas the current
 * key stays until another replaces it, since sealing needs one.
 */
function readKeySet(settings: KmsSettings, previous: KeySet | undefined, sealedWith: Map<string, Buffer>) {
  const failed: KmsReload['failed'] = [];
  const byFile = new Map<string, Buffer>();
  const load = (file: string, required: boolean) => {
    try {
      byFile.set(file, readMasterKey(file));
    } catch (err) {
      if (!previous) throw err;
      if (!required && isMissing(file)) return;
      failed.push({ file, reason: (err as Error).message });
      const kept = previous.byFile.get(file);
      if (kept) byFile.set(file, kept);
    }
  };
  load(settings.keyPath, true);
  const folder = (() => {
    try {
      return folderKeyFiles(settings.keysDir);
    } catch (err) {
      if (!previous) throw err;
      failed.push({ file: settings.keysDir!, reason: (err as Error).message });
      // The folder's keys as last read stay, since nothing says they went.
      return [...previous.byFile.keys()].filter((f) => path.dirname(f) === settings.keysDir);
    }
  })();
  for (const file of [...settings.previousKeyPaths, ...folder]) if (!byFile.has(file)) load(file, false);

  const current = byFile.get(settings.keyPath)!;
  const currentKeyId = keyIdOf(current);
  sealedWith.set(currentKeyId, current);
  const opening = new Map<string, Buffer>();
  for (const key of byFile.values()) opening.set(keyIdOf(key), key);
  const heldInMemory: string[] = [];
  for (const [id, key] of sealedWith) {
    if (opening.has(id)) continue;
    opening.set(id, key);
    heldInMemory.push(id);
  }
  const keys: KeySet = { current, currentKeyId, opening, byFile, derived: new Map() };
  return { keys, failed, heldInMemory };
}

const sameKeys = (a: KeySet, b: KeySet) =>
  a.currentKeyId === b.currentKeyId && [...a.opening.keys()].sort().join() === [...b.opening.keys()].sort().join();

/**
 * The master keys from files. What opens: the current key, the previous paths, the folder, and
 * every key this process has sealed with (until it restarts), so replacing LOCAL_KMS_KEY_PATH
 * never strands the envelopes this process wrote a moment before, even if nobody copied the old
 * key into the folder first (the reload names such keys; a restart would lose them).
 */
export function createLocalKms(config: Pick<Config, 'kms'>): LocalKms {
  const sealedWith = new Map<string, Buffer>();
  let keys = readKeySet(config.kms, undefined, sealedWith).keys;

  const parse = (set: KeySet, envelope: string) => {
    const [version, keyId, wrapped, body] = envelope.split('.');
    if (version !== VERSION || !keyId || !wrapped || !body) throw new DecryptionError('not an envelope');
    const master = set.opening.get(keyId);
    if (!master) throw new KeyError(`master key ${keyId} is not configured (LOCAL_KMS_KEYS_DIR or LOCAL_KMS_PREVIOUS_KEY_PATHS)`);
    return { keyId, master, wrapped: Buffer.from(wrapped, 'base64url'), body: Buffer.from(body, 'base64url') };
  };

  return {
    get currentKeyId() {
      return keys.currentKeyId;
    },
    encrypt(plaintext, context) {
      const { current, currentKeyId } = keys;
      const dataKey = crypto.randomBytes(32);
      const wrapped = seal(current, dataKey, `${VERSION}.${currentKeyId}`);
      const body = seal(dataKey, Buffer.from(plaintext, 'utf8'), context);
      dataKey.fill(0);
      return [VERSION, currentKeyId, wrapped.toString('base64url'), body.toString('base64url')].join('.');
    },
    decrypt(envelope, context) {
      const { keyId, master, wrapped, body } = parse(keys, envelope);
      try {
        const dataKey = open(master, wrapped, `${VERSION}.${keyId}`);
        const plaintext = open(dataKey, body, context).toString('utf8');
        dataKey.fill(0);
        return plaintext;
      } catch {
        throw new DecryptionError('envelope does not decrypt (wrong key or context, or tampered)');
      }
    },
    deriveKey(purpose) {
      const set = keys;
      let derived = set.derived.get(purpose);
      if (!derived) {
        derived = Buffer.from(crypto.hkdfSync('sha256', set.current, Buffer.alloc(0), `user-service:${purpose}`, 32));
        set.derived.set(purpose, derived);
      }
      return derived;
    },
    rewrap(envelope) {
      const set = keys;
      const { keyId, master, wrapped, body } = parse(set, envelope);
      if (keyId === set.currentKeyId) return envelope;
      const dataKey = open(master, wrapped, `${VERSION}.${keyId}`);
      const rewrapped = seal(set.current, dataKey, `${VERSION}.${set.currentKeyId}`);
      dataKey.fill(0);
      return [VERSION, set.currentKeyId, rewrapped.toString('base64url'), body.toString('base64url')].join('.');
    },
    reload() {
      const next = readKeySet(config.kms, keys, sealedWith);
      const changed = !sameKeys(keys, next.keys);
      // Unchanged: the derived keys computed so far stay valid.
      if (changed) keys = next.keys;
      else keys.byFile = next.keys.byFile;
      return {
        changed,
        currentKeyId: keys.currentKeyId,
        keyIds: [...keys.opening.keys()].sort(),
        failed: next.failed,
        heldInMemory: next.heldInMemory,
      };
    },
  };
}

/** Every column holding envelopes; each row's envelope is re-wrapped without being decrypted. */
const ENVELOPE_COLUMNS: Array<[table: string, column: string]> = [
  ['users', 'mfa_secret_encrypted'],
  ['trading_accounts', 'credentials_encrypted'],
  ['trading_accounts', 'pending_credentials_encrypted'],
  ['email_messages', 'params_encrypted'],
  ['address_requests', 'address_encrypted'],
];

/**
 * After a master-key rotation: re-wraps every stored data key under the current master key, so
 * the previous key can be retired. Values in Redis live minutes at most: keep the previous key
 * listed for a quarter of an hour after this runs.
 */
export async function rewrapAll(db: Knex, kms: Kms): Promise<{ rewrapped: number; unchanged: number }> {
  let rewrapped = 0;
  let unchanged = 0;
  for (const [table, column] of ENVELOPE_COLUMNS) {
    const rows: { id: string; value: string }[] = await db(table)
      .whereNotNull(column)
      .whereNot(column, 'like', `${VERSION}.${kms.currentKeyId}.%`)
      .select('id', `${column} as value`);
    for (const row of rows) {
      const next = kms.rewrap(row.value);
      if (next === row.value) unchanged += 1;
      else {
        await db(table)
          .where({ id: row.id, [column]: row.value })
          .update({ [column]: next });
        rewrapped += 1;
      }
    }
  }
  return { rewrapped, unchanged };
}
