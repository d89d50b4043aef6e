// Answers of the audit endpoints, built field by field.
import type { EventPage } from '../../shared/audit/query';
import type { EventRow } from '../../shared/events/outbox';
import type { AuditEventBody, EventPageBody } from './schemas';

export function auditEventBody(row: EventRow): AuditEventBody {
  return {
    id: row.id,
    type: row.type,
    occurred_at: row.occurred_at.toISOString(),
    user_id: row.user_id,
    actor_id: row.actor_id,
    ip: row.ip,
    user_agent: row.user_agent,
    data: row.data,
  };
}

export function eventPageBody(page: EventPage, limit: number, offset: number): EventPageBody {
  return { events: page.rows.map(auditEventBody), total: page.total, limit, offset, next_cursor: page.nextCursor };
}
