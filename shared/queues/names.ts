// The queues, their job names and job ids, written once: the api enqueues with them, the workers
// process and reconcile with them, the configuration checks WORKER_QUEUES against them.

export const QUEUE_NAMES = ['email', 'kite', 'audit-export', 'events'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export const JOB_NAMES = {
  sendEmail: 'send-email',
  /** Handles an address_requests row: looks the address up, writes the email or nothing. */
  addressRequest: 'address-request',
  relayEvents: 'relay-events',
  /** The scheduled job of a queue's reconciler (workers/worker.ts). */
  reconcile: 'reconcile',
  // Audit trail (issue 15): writes one audit_exports row's file; deletes expired exports.
  auditExport: 'audit-export',
  auditRetention: 'audit-retention',
} as const;

/**
 * Deterministic job ids: the same work enqueued twice (a retry, or the reconciler after a Redis
 * loss) is one job.
 */
export const jobIds = {
  email: (emailId: string) => `email-${emailId}`,
  addressRequest: (requestId: string) => `address-request-${requestId}`,
  // Audit trail (issue 15)
  auditExport: (exportId: string) => `audit-export-${exportId}`,
};
