// The one way the audit trail is read: the endpoint's pages and the exports both call this, so a
// filter means the same thing in both. Always PostgreSQL (the events table), never the stream.
//
// A subject's events are those about them (user_id) and those they caused about someone else
// (actor_id, where it differs from user_id). The two halves are disjoint and each is an ordered
// range scan of its own index (migrations/20261202000300_audit_trail.ts); PostgreSQL merges them
// in order and stops after the page, so a keyset page deep in the trail costs what the first does.
import type { Knex } from 'knex';
import { decodeCursor, encodeCursor, microsecondsSql, type Position } from '../keyset-cursor';
import type { EventRow } from '../events/outbox';

export interface EventFilter {
  /** Whose trail: events about this user and events this user caused. */
  subjectId: string;
  types?: string[];
  /** Inclusive bounds on occurred_at. */
  from?: Date;
  to?: Date;
}

const COLUMNS = ['id', 'seq', 'type', 'user_id', 'actor_id', 'ip', 'user_agent', 'data', 'occurred_at'];
const POSITION_SQL = `${microsecondsSql('occurred_at')} AS position_at`;

const NEWEST_FIRST = [
  { column: 'occurred_at', order: 'desc' },
  { column: 'seq', order: 'desc' },
];

function half(db: Knex, filter: EventFilter, side: 'about' | 'caused', after?: Position, counting = false): Knex.QueryBuilder {
  // Counting reads no column: an index-only scan then answers without touching the rows.
  const query = db('events').select(counting ? [db.raw('1 AS one')] : COLUMNS);
  if (side === 'about') query.where('user_id', filter.subjectId);
  // Written as the partial index's predicate, so the planner can use that index.
  else query.where('actor_id', filter.subjectId).whereRaw('actor_id IS DISTINCT FROM user_id');
  if (filter.types?.length) query.whereIn('type', filter.types);
  if (filter.from) query.where('occurred_at', '>=', filter.from);
  if (filter.to) query.where('occurred_at', '<=', filter.to);
  if (after) query.whereRaw('(occurred_at, seq) < (?::timestamptz, ?::bigint)', [after.at, after.key]);
  return query;
}

function bothHalves(db: Knex, filter: EventFilter, after?: Position, rows?: number): Knex.Raw {
  const halves = (['about', 'caused'] as const).map((side) => {
    const query = half(db, filter, side, after, rows === undefined);
    // Each half stops after the rows a page can need from it: PostgreSQL plans the merge of two
    // ordered, limited index scans only when each half says so itself.
    return rows === undefined ? query : query.orderBy(NEWEST_FIRST).limit(rows);
  });
  return db.raw('(? UNION ALL ?) AS e', halves);
}

/** The events matching `filter`, newest first: `limit` of them after `offset`, or after a cursor. */
export function matchingEvents(
  db: Knex,
  filter: EventFilter,
  page: { limit: number; offset?: number; after?: Position },
): Knex.QueryBuilder {
  const rows = page.limit + (page.offset ?? 0);
  return db
    .select([...COLUMNS.map((c) => `e.${c}`), db.raw(POSITION_SQL)])
    .from(bothHalves(db, filter, page.after, rows))
    .orderBy(NEWEST_FIRST)
    .limit(page.limit)
    .offset(page.offset ?? 0);
}

/** How many events match `filter` (the `total` of every page). */
export function countQuery(db: Knex, filter: EventFilter): Knex.QueryBuilder {
  return db.count({ count: '*' }).from(bothHalves(db, filter));
}

export async function countEvents(db: Knex, filter: EventFilter): Promise<number> {
  const [{ count }] = (await countQuery(db, filter)) as { count: string }[];
  return Number(count);
}

export type AuditRow = EventRow & { position_at: string };

export function cursorOf(row: AuditRow): string {
  return encodeCursor({ at: row.position_at, key: String(row.seq) });
}

/** The position a `next_cursor` names (a seq is the key); anything else is a 400 naming the parameter. */
export function positionOf(cursor: string): Position {
  return decodeCursor(cursor, /^\d{1,18}$/);
}

export interface EventPage {
  rows: AuditRow[];
  total: number;
  nextCursor: string | null;
}

/** One page of a subject's trail, with the total matching the filter and the cursor of the next page. */
export async function pageOfEvents(
  db: Knex,
  filter: EventFilter,
  page: { limit: number; offset?: number; cursor?: string },
): Promise<EventPage> {
  const after = page.cursor ? positionOf(page.cursor) : undefined;
  // One more than asked says whether a next page exists.
  const [rows, total] = await Promise.all([
    matchingEvents(db, filter, { limit: page.limit + 1, offset: page.offset, after }) as Promise<AuditRow[]>,
    countEvents(db, filter),
  ]);
  const more = rows.length > page.limit;
  const shown = rows.slice(0, page.limit);
  return { rows: shown, total, nextCursor: more ? cursorOf(shown[shown.length - 1]) : null };
}
