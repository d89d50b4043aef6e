// The kite queue: verification rounds of trading accounts (exchange a request token, check the
// profile), best-effort Kite logouts after an unlink, the daily expiry of access tokens (06:00
// Asia/Kolkata, scheduled in that zone), and the reconciler of rounds whose job was lost. Kite
// limits calls per api key: a job over its key's budget goes back delayed, so other keys go on and
// the queue is never throttled as a whole.
import { DelayedError, type Job } from 'bullmq';
import type { Context } from '../../shared/context';
import { enqueueVerification, JOB_NAMES, jobIds } from '../../shared/queues';
import { requeueLostJobs } from '../../shared/queues/reconcile';
import { createKiteClient } from '../../shared/trading-accounts/kite-client';
import { IN_FLIGHT, logoutUnlinked, recordStatusChange, type AccountRow } from '../../shared/trading-accounts/service';
import {
  createKiteBudget,
  expireAccounts,
  KiteBudgetSpent,
  roundsInFlight,
  runVerification,
  type VerificationDeps,
} from '../../shared/trading-accounts/verification';
import type { QueueDeclaration } from '../declaration';

interface RoundData {
  accountId: string;
  round: number;
}

async function verify(app: Context, deps: VerificationDeps, job: Job, token: string | undefined): Promise<void> {
  const { accountId, round } = job.data as RoundData;
  try {
    await runVerification(app, deps, accountId, round);
  } catch (err) {
    if (!(err instanceof KiteBudgetSpent)) throw err;
    await job.moveToDelayed(Date.now() + err.delayMs, token);
    throw new DelayedError();
  }
}

/** A round whose job used every attempt (the database or Redis failing, not Kite) ends in `error`. */
async function failRound(app: Context, { accountId, round }: RoundData): Promise<void> {
  await app.db.transaction(async (trx) => {
    const account = (await trx('trading_accounts')
      .where({ id: accountId, verification_round: round })
      .whereNull('unlinked_at')
      .forUpdate()
      .first()) as AccountRow | undefined;
    if (!account || !IN_FLIGHT.includes(account.status)) return;
    await trx('trading_accounts').where({ id: accountId }).update({
      status: 'error',
      last_error: 'The verification could not run; try again.',
      pending_credentials_encrypted: null,
      updated_at: trx.fn.now(),
    });
    await recordStatusChange(trx, account, account.status, 'error');
  });
}

const splitRound = (key: string): RoundData => {
  const [accountId, round] = key.split('/');
  return { accountId, round: Number(round) };
};

export async function reconcileKite(app: Context): Promise<{ requeued: number }> {
  return requeueLostJobs({
    queue: app.queues.kite,
    pendingRowIds: await roundsInFlight(app),
    jobId: (key) => {
      const { accountId, round } = splitRound(key);
      return jobIds.kiteVerify(accountId, round);
    },
    enqueue: (key) => {
      const { accountId, round } = splitRound(key);
      return enqueueVerification(app.queues, accountId, round);
    },
  });
}

export const kite: QueueDeclaration = {
  name: 'kite',
  start(app) {
    const deps: VerificationDeps = { kite: createKiteClient(app.config), budget: createKiteBudget(app) };
    return {
      async process(job, token) {
        if (job.name === JOB_NAMES.verifyTradingAccount) return verify(app, deps, job, token);
        if (job.name === JOB_NAMES.kiteLogout) return logoutUnlinked(app, (job.data as { accountId: string }).accountId, deps.kite);
        if (job.name === JOB_NAMES.expireTradingAccounts) return expireAccounts(app);
        throw new Error(`unknown kite job ${job.name}`);
      },
    };
  },
  schedules: (app) => [
    {
      id: 'expire-trading-accounts',
      pattern: app.config.tradingAccounts.expirySchedule,
      tz: 'Asia/Kolkata',
      jobName: JOB_NAMES.expireTradingAccounts,
    },
  ],
  async onFinalFailure(app, job) {
    if (job.name === JOB_NAMES.verifyTradingAccount) await failRound(app, job.data as RoundData);
  },
  reconcile: reconcileKite,
  workerOptions: (app) => ({ lockDuration: app.config.tradingAccounts.jobLockMs, stalledInterval: app.config.tradingAccounts.jobLockMs }),
};
