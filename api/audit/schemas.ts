// Request and response schemas of the audit endpoints.
import { Type, type Static } from '@sinclair/typebox';
import { Strict } from '../http/route';
import { EVENT_TYPES, type EventType } from '../../shared/events/outbox';
import { EXPORT_MAX_EVENTS } from '../../shared/audit/exports';

export const DEFAULT_LIMIT = 50;

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
const EventTypeName = Type.Unsafe<EventType>({ type: 'string', enum: [...EVENT_TYPES] });

export const EventsQuery = Strict({
  event_type: Type.Optional(
    Type.Union([EventTypeName, Type.Array(EventTypeName, { maxItems: 50 })], { description: 'Repeatable: any of these types' }),
  ),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Events at or after this time' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Events at or before this time' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_LIMIT })),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Not with cursor' })),
  cursor: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'The next_cursor of the previous page: a deep page costs what the first does',
    }),
  ),
  user_id: Type.Optional(
    Type.String({ format: 'uuid', description: 'Another user (events about them and events they caused); needs audit:read_any' }),
  ),
});

export const AuditEvent = Type.Object({
  id: Uuid,
  type: Type.String(),
  occurred_at: DateTime,
  user_id: Nullable(Uuid),
  actor_id: Nullable(Uuid),
  ip: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
  data: Type.Object({}, { additionalProperties: true, description: 'Ids and flags only; never a secret' }),
});

export const EventPage = Type.Object({
  events: Type.Array(AuditEvent),
  total: Type.Integer({ description: 'Events matching the filters, on every page' }),
  limit: Type.Integer(),
  offset: Type.Integer(),
  next_cursor: Nullable(Type.String({ description: 'Pass as cursor for the next page; null on the last' })),
});

export const ExportBody = Strict(
  {
    format: Type.Union([Type.Literal('json'), Type.Literal('csv')]),
    event_types: Type.Optional(Type.Array(EventTypeName, { maxItems: 50 })),
    from: Type.Optional(DateTime),
    to: Type.Optional(DateTime),
  },
  { examples: [{ format: 'csv', event_types: ['user.login', 'session.revoked'], from: '2026-11-01T00:00:00Z' }] },
);

export const ExportParams = Strict({ export_id: Uuid });

export const ExportStatus = Type.Object({
  export_id: Uuid,
  status: Type.String({ description: '`pending` until the file is ready' }),
});

export const ExportDescription = `The file: at most ${EXPORT_MAX_EVENTS.toLocaleString('en')} events, newest first; X-Export-Truncated: true when more matched`;

export type AuditEventBody = Static<typeof AuditEvent>;
export type EventPageBody = Static<typeof EventPage>;
