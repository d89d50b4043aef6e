// Audit exports: a PostgreSQL row per request (owner, filters, status, counts, truncated flag,
// expiry), a job on the audit-export queue that writes the file, and the file itself in Redis until
// the row expires (DESIGN.md, Decision "Exports"). The row is the truth: a lost job is re-enqueued
// by the reconciler, a lost file is written again, and an expired row answers 410.
import type { Context } from '../context';
import { GoneError, NotFoundError } from '../errors';
import { enqueueAfterCommit, enqueueAuditExport, jobIds } from '../queues';
import { requeueLostJobs } from '../queues/reconcile';
import type { ModelObject } from 'objection';
import type { AuditExport as AuditExportModel, AuditExportFormat } from '../models';
import { envelopeOf } from '../events/outbox';
import { filterOf } from './trail';
import { matchingEvents, type AuditRow } from './query';
import { renderCsv, renderJson } from './formats';
import { unlinkKeys } from '../redis';

/** At most this many events, newest first, go into one export. */
export const EXPORT_MAX_EVENTS = 10_000;
/** How long a file is kept after the request (DESIGN.md: 24 hours). */
export const EXPORT_TTL_SECONDS = 24 * 3600;
/** Expired rows answer 410 for this long, then retention deletes them (and the answer becomes 404). */
export const EXPORT_ROW_GRACE_SECONDS = 7 * 24 * 3600;

export const CONTENT_TYPES: Record<AuditExportFormat, string> = { json: 'application/json', csv: 'text/csv; charset=utf-8' };

export interface ExportRequest {
  format: AuditExportFormat;
  types?: string[];
  from?: string;
  to?: string;
}

export type AuditExport = ModelObject<AuditExportModel>;

/** Enqueues the export's job again; its completed predecessor (same job id) is removed first. */
async function requeueExport(app: Context, exportId: string): Promise<void> {
  const queue = app.queues['audit-export'];
  await requeueLostJobs({
    queue,
    pendingRowIds: [exportId],
    jobId: jobIds.auditExport,
    enqueue: (id) => enqueueAuditExport(app.queues, id),
  });
}

const bodyKey = (app: Context, exportId: string) => app.key('audit-export', exportId);

/** Records the request and queues its job; the job's loss is the reconciler's to repair. */
export async function requestExport(app: Context, userId: string, request: ExportRequest): Promise<AuditExport> {
  const filter = filterOf(userId, request);
  await app.limits.auditExportPerUser.hit(userId);
  const [row] = (await app
    .db('audit_exports')
    .insert({
      user_id: userId,
      format: request.format,
      event_types: filter.types ?? null,
      from_at: filter.from ?? null,
      to_at: filter.to ?? null,
      expires_at: app.db.raw(`now() + make_interval(secs => ?)`, [EXPORT_TTL_SECONDS]) as unknown as Date,
    })
    .returning('*')) as AuditExport[];
  await enqueueAfterCommit(app.logger, () => enqueueAuditExport(app.queues, row.id), { exportId: row.id });
  return row;
}

export type ExportAnswer = { kind: 'pending'; row: AuditExport } | { kind: 'ready'; row: AuditExport; body: string; filename: string };

/** What `GET /v1/audit/export/{id}` answers: 404 unless it is the caller's, 410 once expired or failed. */
export async function exportFor(app: Context, userId: string, exportId: string): Promise<ExportAnswer> {
  const row = await app.db('audit_exports').where({ id: exportId, user_id: userId }).first();
  if (!row) throw new NotFoundError('No such export.');
  if (row.expires_at.getTime() <= Date.now()) throw new GoneError('This export has expired; request a new one.', 'export_expired');
  if (row.status === 'failed') throw new GoneError('This export failed; request a new one.', 'export_failed');
  if (row.status === 'pending') return { kind: 'pending', row };
  const body = await app.redis.get(bodyKey(app, row.id));
  if (body !== null) return { kind: 'ready', row, body, filename: `audit-events-${row.id}.${row.format}` };
  // Redis lost the file (a restart without persistence): the row says what to write again.
  await app.db('audit_exports').where({ id: row.id, status: 'ready' }).update({ status: 'pending', completed_at: null });
  await enqueueAfterCommit(app.logger, () => requeueExport(app, row.id), { exportId: row.id });
  return { kind: 'pending', row: { ...row, status: 'pending' } };
}

/**
 * The job: reads the events, stores the file, then marks the row ready. Idempotent: a worker killed
 * anywhere in between leaves the row pending, and the retry writes the same file again.
 */
export async function runExport(app: Context, exportId: string): Promise<{ events: number; truncated: boolean } | null> {
  // The primary, never the replica: the reconciler may enqueue a row the replica still shows pending.
  const row = await app.db('audit_exports').where({ id: exportId }).first();
  if (!row || row.status !== 'pending') return null;
  const ttlMs = row.expires_at.getTime() - Date.now();
  if (ttlMs <= 0) return null;
  const filter = {
    subjectId: row.user_id,
    types: row.event_types ?? undefined,
    from: row.from_at ?? undefined,
    to: row.to_at ?? undefined,
  };
  // One more than the cap says whether the cap cut anything off.
  const rows = (await matchingEvents(app.db, filter, { limit: EXPORT_MAX_EVENTS + 1 })) as AuditRow[];
  const truncated = rows.length > EXPORT_MAX_EVENTS;
  const envelopes = rows.slice(0, EXPORT_MAX_EVENTS).map(envelopeOf);
  const body = row.format === 'csv' ? renderCsv(envelopes) : renderJson(envelopes);
  await app.redis.set(bodyKey(app, row.id), body, 'PX', ttlMs);
  await app
    .db('audit_exports')
    .where({ id: row.id, status: 'pending' })
    .update({
      status: 'ready',
      event_count: envelopes.length,
      truncated,
      completed_at: app.db.fn.now() as unknown as Date,
    });
  return { events: envelopes.length, truncated };
}

export async function markExportFailed(app: Context, exportId: string, error: string): Promise<void> {
  await app
    .db('audit_exports')
    .where({ id: exportId, status: 'pending' })
    .update({ status: 'failed', last_error: error.slice(0, 500) });
}

/**
 * Pending rows old enough that their job should have run; the reconciler checks each has a job.
 * Read on the replica when there is one: a row it still shows pending after the export finished
 * only costs a job that re-reads the row on the primary (runExport) and does nothing.
 */
export async function pendingExportIds(app: Context, olderThanSeconds: number): Promise<string[]> {
  return app.readReplica(async (db): Promise<string[]> =>
    db('audit_exports')
      .where({ status: 'pending' })
      .where('created_at', '<', db.raw(`now() - make_interval(secs => ?)`, [olderThanSeconds]))
      .where('expires_at', '>', db.fn.now())
      .orderBy('created_at')
      .limit(1000)
      .pluck('id'),
  );
}

/**
 * Retention: deletes export rows that expired more than the grace period ago, and their files
 * (Redis expires them on its own; this also covers a file whose TTL was lost). Never an event row:
 * the events table refuses deletes (its append-only trigger).
 */
export async function purgeExpiredExports(app: Context): Promise<{ deleted: number }> {
  const ids = await app
    .db('audit_exports')
    .where('expires_at', '<', app.db.raw(`now() - make_interval(secs => ?)`, [EXPORT_ROW_GRACE_SECONDS]))
    .delete()
    .returning('id');
  // One by one: on a Redis Cluster the bodies are in different slots.
  await unlinkKeys(
    app.redis,
    ids.map(({ id }) => bodyKey(app, id)),
  );
  return { deleted: ids.length };
}
