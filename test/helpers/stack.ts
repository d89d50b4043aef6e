// One test file's world, started and stopped together: an SMTP server that captures mail (the
// mail provider), the app on its own database and prefixes, and its queue workers. The fake
// third parties of later features (a Kite Connect server, a local OpenID provider) join here.
import { startTestApp, type TestApp } from './app';
import { startSmtp, type TestSmtp } from './smtp';

export interface TestStack {
  app: TestApp;
  smtp: TestSmtp;
  close(): Promise<void>;
}

/**
 * `env` overrides the app's environment. `smtp` shares another stack's mail server (a second app in
 * one file); `workers: false` leaves the queues to a worker the test starts itself.
 */
export async function startStack(
  env: Record<string, string> = {},
  options: { smtp?: TestSmtp; workers?: boolean } = {},
): Promise<TestStack> {
  const smtp = options.smtp ?? (await startSmtp());
  const app = await startTestApp({ ...smtp.env(), ...env });
  if (options.workers !== false) await app.startWorkers();
  return {
    app,
    smtp,
    async close() {
      await app.close();
      if (!options.smtp) await smtp.close();
    },
  };
}
