// Keyset pages, newest first, on (a timestamp, a tie-breaker): the admin users' search and the audit
// trail. A cursor is the last row's position, opaque to clients (base64url of a JSON pair).
import { ValidationError } from './errors';

/**
 * A timestamp column as text to the microsecond, as PostgreSQL keeps it: a JavaScript Date stops at
 * milliseconds, and a cursor rounded so would skip or repeat rows.
 */
export function microsecondsSql(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

export interface Position {
  /** The row's timestamp, as `microsecondsSql` renders it. */
  at: string;
  /** What orders rows of one timestamp (an id, a sequence number). */
  key: string;
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

export function encodeCursor(position: Position): string {
  return Buffer.from(JSON.stringify([position.at, position.key])).toString('base64url');
}

/** The position a cursor of ours names (its key matching `key`); anything else is a 400 naming the query parameter. */
export function decodeCursor(text: string, key: RegExp): Position {
  try {
    const [at, id] = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown[];
    if (typeof at === 'string' && typeof id === 'string' && TIMESTAMP.test(at) && key.test(id)) return { at, key: id };
  } catch {
    // Not ours: answered below like any other malformed cursor.
  }
  throw new ValidationError([{ field: 'query.cursor', message: 'is not a cursor this endpoint returned' }]);
}
