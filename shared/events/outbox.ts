// Domain events are rows of the events table written in the caller's transaction (the
// transactional outbox): an event exists if and only if the change it describes committed. The
// relay publishes them to the Redis Stream afterwards.
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { ModelObject } from 'objection';
import type { Event } from '../models';

export const EVENT_TYPES = [
  'user.registered',
  'user.suspended',
  'user.reactivated',
  'service.secret_rotated',
  'user.email_verified',
  'user.login',
  'user.logout',
  'user.updated',
  'user.deleted',
  'password.changed',
  'password.reset_requested',
  'password.reset_completed',
  'session.created',
  'session.revoked',
  'mfa.enabled',
  'mfa.disabled',
  'trading_account.linked',
  'trading_account.unlinked',
  'trading_account.credentials_updated',
  'trading_account.status_changed',
  'trading_account.credentials_revealed',
  'permission.granted',
  'permission.revoked',
  'role.assigned',
  'role.removed',
  'queue.action',
  // Account lifecycle (admin API, email change).
  'user.email_change_requested',
  'user.email_changed',
  'user.unlocked',
  // Google sign-in (issue 13)
  'identity.linked',
  'identity.unlinked',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Who did it and from where; taken from the request, or empty for jobs and the CLI. */
export interface EventOrigin {
  actorId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
}

export interface NewEvent {
  type: EventType;
  userId?: string | null;
  /** Ids and flags only: never personal data or secrets (DESIGN.md, Events). */
  data?: Record<string, unknown>;
}

/** An events row as stored (the model's columns, with its type narrowed to the known ones). */
export type EventRow = ModelObject<Event>;

export async function recordEvent(trx: Knex.Transaction, event: NewEvent, origin: EventOrigin = {}): Promise<string> {
  const id = crypto.randomUUID();
  await trx('events').insert({
    id,
    type: event.type,
    user_id: event.userId ?? null,
    actor_id: origin.actorId ?? event.userId ?? null,
    ip: origin.ip ?? null,
    user_agent: origin.userAgent ?? null,
    data: event.data ?? {},
  });
  return id;
}

/** The JSON envelope published on the stream and served by the audit endpoints. */
export function envelopeOf(row: EventRow) {
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
