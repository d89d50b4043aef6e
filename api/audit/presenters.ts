// Answers of the audit endpoints, built field by field.
import type { EventPage } from '../../shared/audit/query';
import { envelopeOf, type EventRow } from '../../shared/events/outbox';
import type { AuditEventBody, EventPageBody } from './schemas';

/** The event as the stream carries it: one envelope for both, never two spellings of it. */
export function auditEventBody(row: EventRow): AuditEventBody {
  return envelopeOf(row);
}

export function eventPageBody(page: EventPage, limit: number, offset: number): EventPageBody {
  return { events: page.rows.map(auditEventBody), total: page.total, limit, offset, next_cursor: page.nextCursor };
}
