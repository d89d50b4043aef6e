// One test file's world, started and stopped together: an SMTP server that captures mail (the
// mail provider), a fake Kite Connect API, the app on its own database and prefixes, and its queue
// workers. The fake third parties of later features (a local OpenID provider) join here.
import { startTestApp, type TestApp } from './app';
import { startSmtp, type TestSmtp } from './smtp';
import { startFakeKite, type FakeKite } from './kite';

export interface TestStack {
  app: TestApp;
  smtp: TestSmtp;
  kite: FakeKite;
  close(): Promise<void>;
}

/**
 * `env` overrides the app's environment. `smtp` shares another stack's mail server (a second app in
 * one file), `kite` another stack's fake Kite; `workers: false` leaves the queues to a worker the
 * test starts itself.
 */
export async function startStack(
  env: Record<string, string> = {},
  options: { smtp?: TestSmtp; kite?: FakeKite; workers?: boolean } = {},
): Promise<TestStack> {
  const smtp = options.smtp ?? (await startSmtp());
  const kite = options.kite ?? (await startFakeKite());
  // Kite calls fail fast in tests: a short timeout and backoff, the same code paths.
  const kiteEnv = { ...kite.env(), KITE_API_TIMEOUT_SECONDS: '1', KITE_API_RETRY_BACKOFF_MS: '20' };
  const app = await startTestApp({ ...smtp.env(), ...kiteEnv, ...env });
  if (options.workers !== false) await app.startWorkers();
  return {
    app,
    smtp,
    kite,
    async close() {
      await app.close();
      if (!options.smtp) await smtp.close();
      if (!options.kite) await kite.close();
    },
  };
}
