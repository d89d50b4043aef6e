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
  // Trading accounts on Kite Connect (issue 14)
  /** Verifies a trading account's new or current credentials (exchanging a request token first). */
  verifyTradingAccount: 'verify-trading-account',
  /** Ends an unlinked account's Kite session, best effort. */
  kiteLogout: 'kite-logout',
  /** Marks accounts whose access token ended as expired (scheduled, Asia/Kolkata). */
  expireTradingAccounts: 'expire-trading-accounts',
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
  // Trading accounts on Kite Connect (issue 14)
  /** One job per verification round of an account: a double click queues one verification. */
  kiteVerify: (accountId: string, round: number) => `kite-verify-${accountId}-${round}`,
  kiteLogout: (accountId: string) => `kite-logout-${accountId}`,
  // Audit trail (issue 15)
  auditExport: (exportId: string) => `audit-export-${exportId}`,
};
