// The load generator, in its own process so that it never shares an event loop with the service,
// the baselines or the orchestrator. It reads one JSON LoadMessage a line on stdin, runs its jobs
// at once with autocannon, and answers one JSON LoadReply a line on stdout.
import readline from 'node:readline';
import autocannon, { type Request, type Result } from 'autocannon';
import type { LoadJob, LoadMessage, LoadReply, LoadResult } from './common';

function requestsOf(job: LoadJob): Request[] | undefined {
  if (job.logins) {
    const { emails, password } = job.logins;
    let next = 0;
    return [
      {
        setupRequest: (request) => ({ ...request, body: JSON.stringify({ email: emails[next++ % emails.length], password }) }),
      },
    ];
  }
  if (job.refresh) {
    const { prefix, count } = job.refresh;
    let next = 0;
    return [
      {
        // Past `count` (autocannon may start a few more than `amount`) the token is unknown: a 401.
        setupRequest: (request) => ({ ...request, body: JSON.stringify({ refresh_token: `${prefix}${next < count ? ++next : 'spent'}` }) }),
      },
    ];
  }
  return undefined;
}

function summary(result: Result, seconds: number, job: LoadJob): LoadResult {
  const requests = result.requests.total;
  // With a fixed `amount`, autocannon ends on its next one-second sampling tick, so wall time
  // overstates the run by up to a second; a closed loop's rate is its connections over the mean
  // latency (Little's law) instead.
  const closedLoopRps = job.amount && result.latency.mean > 0 ? (job.connections * 1000) / result.latency.mean : 0;
  return {
    requests,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    seconds,
    rps: closedLoopRps || (seconds > 0 ? requests / seconds : 0),
    p50: result.latency.p50,
    p99: result.latency.p99,
  };
}

async function run(job: LoadJob): Promise<LoadResult> {
  const started = process.hrtime.bigint();
  const result = await autocannon({
    url: job.url + job.path,
    method: job.method ?? 'GET',
    connections: job.connections,
    timeout: 30,
    headers: {
      'user-agent': 'user-service-bench',
      ...(job.body !== undefined || job.logins || job.refresh ? { 'content-type': 'application/json' } : {}),
      ...job.headers,
    },
    ...(job.body !== undefined && { body: JSON.stringify(job.body) }),
    ...(job.amount ? { amount: job.amount } : { duration: job.duration ?? 5 }),
    ...(job.overallRate && { overallRate: job.overallRate }),
    ...(requestsOf(job) && { requests: requestsOf(job) }),
  });
  // Wall time of the run: autocannon's own `duration` is rounded to whole seconds.
  return summary(result, Number(process.hrtime.bigint() - started) / 1e9, job);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const message = JSON.parse(line) as LoadMessage;
  Promise.all(message.jobs.map(run)).then(
    (results) => reply({ id: message.id, results }),
    (err: Error) => reply({ id: message.id, error: err.stack ?? String(err) }),
  );
});
lines.on('close', () => process.exit(0));

function reply(message: LoadReply): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}
