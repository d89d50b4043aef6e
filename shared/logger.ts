// pino with the redaction list every process shares: no password, token, code, secret or key may
// reach a log line, however deep in an object it sits.
import pino, { type DestinationStream, type Logger } from 'pino';
import type { Config } from './config';

/** Field names whose values are secrets wherever they appear. */
export const SECRET_FIELDS = [
  'password',
  'new_password',
  'current_password',
  'password_hash',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'mfa_token',
  'verification_token',
  'request_token',
  'state',
  'code',
  'backup_codes',
  'secret',
  'totp_secret',
  'otpauth_uri',
  'qr_code',
  'api_key',
  'api_secret',
  'client_secret',
  'data_key',
  'ciphertext',
  'authorization',
  'cookie',
  'set-cookie',
  'x-verification-token',
  // Google sign-in (issue 13)
  'code_verifier',
  'nonce',
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const field of SECRET_FIELDS) {
    const key = /^[a-z_]+$/.test(field) ? field : `["${field}"]`;
    const dot = key.startsWith('[') ? '' : '.';
    paths.push(key, `*${dot}${key}`, `*.*${dot}${key}`, `*.*.*${dot}${key}`);
  }
  return paths;
}

export function createLogger(config: Pick<Config, 'log' | 'appName'>, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.log.level,
    base: { service: config.appName },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths(), censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  if (destination) return pino(options, destination);
  if (config.log.format === 'text') return pino({ ...options, transport: { target: 'pino-pretty' } });
  return pino(options);
}

export type { Logger };
