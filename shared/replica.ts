// Reads that tolerate lag, on the optional read replica (DATABASE_REPLICA_URL): a public profile,
// the session list, the reconcilers' scans of pending rows. Only those: each can show the state of
// a moment ago without harm (docs/scaling.md, "Read replica"), and none is followed by a write
// that trusts what it read. Everything else (sign-in, tokens, permissions, a job's own row) reads
// the primary, where the writes are.
//
// The replica is an optimisation, never a dependency: when it cannot be reached those reads go to
// the primary, with one warning per outage, rather than failing a request that the primary can
// answer (a 503 for a public profile because an optional copy died would be a new way to fail).
import type { Knex } from 'knex';
import { isDatabaseUnavailable } from './db';
import type { Logger } from './logger';

/** How often a replica found down is probed again (in the background, by the next read after that). */
const PROBE_EVERY_MS = 5000;
const CHECK_TIMEOUT_MS = 2000;

export type ReplicaState = 'off' | 'ok' | 'down';

export interface ReplicaReads {
  /** The replica's pool; the primary's own object when no replica is configured (no second pool). */
  db: Knex;
  /**
   * Runs `query` on the replica, or on the primary when there is none or it cannot be reached.
   * `query` builds its statement from the knex it is given, so it can run on either.
   */
  read<T>(query: (db: Knex) => Promise<T>): Promise<T>;
  /** For readiness: whether the replica answers now. */
  check(): Promise<ReplicaState>;
}

class ReplicaHangs extends Error {
  code = 'ETIMEDOUT';
}

/** The work's answer, or ReplicaHangs once `ms` have passed (the work goes on; its answer is dropped). */
async function withDeadline<T>(work: Promise<T>, ms: number | null): Promise<T> {
  if (ms === null) return work;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ReplicaHangs(`no answer from the read replica in ${ms} ms`)), ms);
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A standby cancels a query whose rows replay must remove ("conflict with recovery", 40001). */
const isRecoveryConflict = (err: unknown) => (err as { code?: string } | null)?.code === '40001';

/** Connection-level failures only: a statement timeout (57014) would take as long on the primary. */
const isReplicaUnavailable = (err: unknown) => isDatabaseUnavailable(err) && (err as { code?: string } | null)?.code !== '57014';

/**
 * `giveUpAfterMs`: a replica that hangs rather than refuses (a frozen host, a partition) never
 * answers, and its statement timeout cannot fire; a read still waiting after this long is run on
 * the primary and the replica counts as down. Null: no bound (no statement timeout either).
 */
export function createReplicaReads(primary: Knex, replica: Knex | null, logger: Logger, giveUpAfterMs: number | null): ReplicaReads {
  if (!replica) {
    return { db: primary, read: (query) => query(primary), check: () => Promise.resolve('off') };
  }
  let downSince: number | null = null;
  let nextProbe = 0;
  let probing = false;

  const markDown = (err: unknown) => {
    if (downSince !== null) return;
    downSince = Date.now();
    nextProbe = downSince + PROBE_EVERY_MS;
    const { code, message } = err as { code?: string; message?: string };
    // `errorCode`: the logger redacts any field named `code` (it may be a TOTP code elsewhere).
    logger.warn(
      { errorCode: code, error: message },
      'read replica unavailable: reads that tolerate lag go to the primary until it answers again',
    );
  };
  const markUp = () => {
    if (downSince === null) return;
    logger.info({ downMs: Date.now() - downSince }, 'read replica answers again');
    downSince = null;
  };

  const check = async (): Promise<ReplicaState> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer in time')), CHECK_TIMEOUT_MS);
      });
      await Promise.race([replica.raw('SELECT 1'), timeout]);
      markUp();
      return 'ok';
    } catch (err) {
      markDown(err);
      return 'down';
    } finally {
      clearTimeout(timer);
    }
  };

  /** While it is down, one probe in the background now and then; no request waits on a dead host. */
  const probeNowAndThen = () => {
    if (probing || Date.now() < nextProbe) return;
    probing = true;
    nextProbe = Date.now() + PROBE_EVERY_MS;
    void check().finally(() => {
      probing = false;
    });
  };

  return {
    db: replica,
    async read(query) {
      if (downSince !== null) {
        probeNowAndThen();
        return query(primary);
      }
      try {
        return await withDeadline(query(replica), giveUpAfterMs);
      } catch (err) {
        if (isRecoveryConflict(err)) return query(primary);
        if (!isReplicaUnavailable(err)) throw err;
        markDown(err);
        return query(primary);
      }
    },
    check,
  };
}
