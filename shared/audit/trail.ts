// Reading the audit trail: whose trail a caller may read, and the filter they asked for.
import type { Context } from '../context';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors';
import { holds, type Caller } from '../authz/service';
import { pageOfEvents, type EventFilter, type EventPage } from './query';

export const READ_ANY = 'audit:read_any';

export interface TrailQuery {
  userId?: string;
  types?: string[];
  from?: string;
  to?: string;
}

/**
 * The caller's own trail, or, with audit:read_any, a named user's (deleted users included: their
 * row stays, anonymised, and so does their trail).
 */
export async function subjectOf(app: Context, caller: Caller, userId: string | undefined): Promise<string> {
  if (!userId || userId === caller.userId) return caller.userId;
  if (!holds(caller.permissions, READ_ANY)) throw new ForbiddenError(`Reading another user's events needs the ${READ_ANY} permission.`);
  if (!(await app.db('users').where({ id: userId }).first('id'))) throw new NotFoundError('No such user.');
  return userId;
}

/** The filter of a request, its bounds checked against each other. */
export function filterOf(subjectId: string, query: Omit<TrailQuery, 'userId'>): EventFilter {
  const from = query.from ? new Date(query.from) : undefined;
  const to = query.to ? new Date(query.to) : undefined;
  if (from && to && from > to) throw new ValidationError([{ field: 'to', message: 'must not be before from' }]);
  return { subjectId, types: query.types?.length ? [...new Set(query.types)] : undefined, from, to };
}

export async function readTrail(
  app: Context,
  caller: Caller,
  query: TrailQuery,
  page: { limit: number; offset?: number; cursor?: string },
): Promise<EventPage> {
  if (page.cursor && page.offset) throw new ValidationError([{ field: 'offset', message: 'cannot be combined with cursor' }]);
  const filter = filterOf(await subjectOf(app, caller, query.userId), query);
  return pageOfEvents(app.db, filter, page);
}
