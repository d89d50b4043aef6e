// Envelope encryption (AES-256-GCM): each value gets its own random data key, which is wrapped by
// the master key; the master key's id travels with the envelope so the master key can rotate
// (old keys stay listed for decryption only). A context string is bound as associated data, so a
// ciphertext copied to another row or field does not decrypt.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Config } from '../config';
import { KeyError, readMasterKey } from './keys';

const VERSION = 'v1';

export interface Kms {
  readonly currentKeyId: string;
  encrypt(plaintext: string, context: string): string;
  decrypt(envelope: string, context: string): string;
  /** Re-wraps an envelope under the current master key (for rotation); the data key is unchanged. */
  rewrap(envelope: string): string;
  /**
   * A 256-bit key for one purpose (HKDF from the current master key), for keyed hashes of values
   * that must not be stored as such. It changes when the master key rotates.
   */
  deriveKey(purpose: string): Buffer;
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

export function createLocalKms(config: Pick<Config, 'kms'>): Kms {
  const current = readMasterKey(config.kms.keyPath);
  const currentKeyId = keyIdOf(current);
  const masterKeys = new Map<string, Buffer>([[currentKeyId, current]]);
  for (const file of config.kms.previousKeyPaths) {
    const key = readMasterKey(file);
    masterKeys.set(keyIdOf(key), key);
  }

  const parse = (envelope: string) => {
    const [version, keyId, wrapped, body] = envelope.split('.');
    if (version !== VERSION || !keyId || !wrapped || !body) throw new DecryptionError('not an envelope');
    const master = masterKeys.get(keyId);
    if (!master) throw new KeyError(`master key ${keyId} is not configured (LOCAL_KMS_PREVIOUS_KEY_PATHS)`);
    return { keyId, master, wrapped: Buffer.from(wrapped, 'base64url'), body: Buffer.from(body, 'base64url') };
  };

  return {
    currentKeyId,
    encrypt(plaintext, context) {
      const dataKey = crypto.randomBytes(32);
      const wrapped = seal(current, dataKey, `${VERSION}.${currentKeyId}`);
      const body = seal(dataKey, Buffer.from(plaintext, 'utf8'), context);
      dataKey.fill(0);
      return [VERSION, currentKeyId, wrapped.toString('base64url'), body.toString('base64url')].join('.');
    },
    decrypt(envelope, context) {
      const { keyId, master, wrapped, body } = parse(envelope);
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
      return Buffer.from(crypto.hkdfSync('sha256', current, Buffer.alloc(0), `user-service:${purpose}`, 32));
    },
    rewrap(envelope) {
      const { keyId, master, wrapped, body } = parse(envelope);
      if (keyId === currentKeyId) return envelope;
      const dataKey = open(master, wrapped, `${VERSION}.${keyId}`);
      const rewrapped = seal(current, dataKey, `${VERSION}.${currentKeyId}`);
      dataKey.fill(0);
      return [VERSION, currentKeyId, rewrapped.toString('base64url'), body.toString('base64url')].join('.');
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
