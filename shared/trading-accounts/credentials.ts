// Broker credentials at rest: one JSON value per column, envelope-encrypted (shared/crypto/kms.ts:
// its own data key per value) and bound to its row and column, so a ciphertext copied to another
// account or column does not decrypt. The api key is also kept as a keyed hash (uniqueness per
// user) and masked (for display); neither gives the key back.
import crypto from 'node:crypto';
import type { Kms } from '../crypto/kms';

export interface Credentials {
  api_key: string;
  api_secret: string;
  /** Present once Kite gave one (or the user linked with one). */
  access_token?: string;
  /** Single use: present only until the exchange succeeded. */
  request_token?: string;
}

export type CredentialsColumn = 'credentials_encrypted' | 'pending_credentials_encrypted';

/** The associated data of an envelope: the table, the column and the row. */
export const credentialsContext = (accountId: string, column: CredentialsColumn) => `trading_accounts.${column}:${accountId}`;

export function sealCredentials(kms: Kms, accountId: string, column: CredentialsColumn, credentials: Credentials): string {
  return kms.encrypt(JSON.stringify(credentials), credentialsContext(accountId, column));
}

export function openCredentials(kms: Kms, accountId: string, column: CredentialsColumn, envelope: string): Credentials {
  return JSON.parse(kms.decrypt(envelope, credentialsContext(accountId, column))) as Credentials;
}

/**
 * A keyed hash of the api key: the same key of one user is found again without being stored. The
 * key derives from the master key, so after a master-key rotation existing fingerprints no longer
 * match new ones (docs/trading-accounts.md).
 */
export function apiKeyFingerprint(kms: Kms, apiKey: string): string {
  return crypto.createHmac('sha256', kms.deriveKey('trading-account-api-keys')).update(apiKey).digest('hex');
}

/** Enough of the key to recognise it: its last four characters (none of a short key). */
export function maskApiKey(apiKey: string): string {
  if (apiKey.length < 8) return '*'.repeat(8);
  return `${'*'.repeat(Math.max(4, apiKey.length - 4))}${apiKey.slice(-4)}`;
}
