// A real SMTP server on a free local port that captures every message, standing in for the mail
// provider; the service reaches it through SMTP_HOST/SMTP_PORT like any other.
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';

export interface CapturedMail {
  from: string;
  to: string[];
  subject: string;
  messageId: string;
  text: string;
  html: string;
}

export interface TestSmtp {
  port: number;
  messages: CapturedMail[];
  /** Delays each message's acceptance (to test work in flight at shutdown). */
  delayMs: number;
  /** Refuses each message with a temporary error while set. */
  refuse: boolean;
  /** Resolves on the first message that `match` accepts. */
  waitFor(match: (mail: CapturedMail) => boolean, timeoutMs?: number): Promise<CapturedMail>;
  env(): Record<string, string>;
  close(): Promise<void>;
}

/** `port`: listen there (a sink started again where a stopped one was); a free port otherwise. */
export async function startSmtp(port = 0): Promise<TestSmtp> {
  const messages: CapturedMail[] = [];
  const waiters: Array<{ match: (m: CapturedMail) => boolean; resolve: (m: CapturedMail) => void }> = [];
  const state = { delayMs: 0, refuse: false };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(async (parsed) => {
        if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
        if (state.refuse) return callback(Object.assign(new Error('try again later'), { responseCode: 451 }));
        const mail: CapturedMail = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: parsed.subject ?? '',
          messageId: parsed.messageId ?? '',
          text: parsed.text ?? '',
          html: typeof parsed.html === 'string' ? parsed.html : '',
        };
        messages.push(mail);
        for (const waiter of [...waiters]) {
          if (waiter.match(mail)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(mail);
          }
        }
        callback();
      }, callback);
    },
  });
  // A client killed mid-session (a SIGKILLed worker) resets its connection: its failure, not the
  // sink's, and no reason to fail the test file with an unhandled 'error'.
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const listening = (server.server.address() as { port: number }).port;
  return {
    port: listening,
    messages,
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    get refuse() {
      return state.refuse;
    },
    set refuse(v: boolean) {
      state.refuse = v;
    },
    waitFor(match, timeoutMs = 10_000) {
      const found = messages.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no matching email arrived')), timeoutMs);
        waiters.push({
          match,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    },
    env: () => ({ SMTP_HOST: '127.0.0.1', SMTP_PORT: String(listening), SMTP_TLS: 'false', SMTP_FROM: 'noreply@user-service.test' }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
