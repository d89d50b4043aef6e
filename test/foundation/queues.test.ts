// Jobs: an email enqueued is processed; a job that keeps failing is retried with backoff and ends
// in the failed set, which an admin sees through Bull Board's JSON API (and nobody else does).
import crypto from 'node:crypto';
import { call, eventually, type TestApp } from '../helpers/app';
import type { TestSmtp } from '../helpers/smtp';
import { startStack, type TestStack } from '../helpers/stack';
import { basicAuth, createUser, type TestUser } from '../helpers/users';
import { writeEmail } from '../../shared/email/outbox';
import { enqueueEmail } from '../../shared/queues';
import { reconcileEmails } from '../../workers/processors/email';
import { hashPassword } from '../../shared/users/passwords';

let stack: TestStack;
let t: TestApp;
let smtp: TestSmtp;
let admin: TestUser;
let trader: TestUser;

beforeAll(async () => {
  stack = await startStack({ JOB_ATTEMPTS: '3', JOB_BACKOFF_MS: '100' });
  ({ app: t, smtp } = stack);
  admin = await createUser(t.context.db, { roles: ['admin'] });
  trader = await createUser(t.context.db, { roles: ['trader'] });
});
afterAll(() => stack.close());

async function queueEmail(to: string, name = 'Asha'): Promise<string> {
  const id = await t.context.db.transaction((trx) =>
    writeEmail(trx, t.context.kms, { template: 'password_changed', to, params: { name } }),
  );
  await enqueueEmail(t.context.queues, id);
  return id;
}

test('an enqueued email is rendered as text and HTML and delivered over SMTP', async () => {
  const to = `asha-${crypto.randomBytes(3).toString('hex')}@example.com`;
  const id = await queueEmail(to, 'Asha <b>');
  const mail = await smtp.waitFor((m) => m.to.includes(to));
  expect(mail.subject).toBe('Your password was changed');
  expect(mail.text).toContain('Hello Asha <b>,');
  expect(mail.html).toContain('Hello Asha &lt;b&gt;,');
  await eventually(async () => (await t.context.db('email_messages').where({ id }).first())?.status === 'sent');
});

test('the same email enqueued twice is sent once', async () => {
  const to = `twice-${crypto.randomBytes(3).toString('hex')}@example.com`;
  const id = await queueEmail(to);
  await enqueueEmail(t.context.queues, id);
  await smtp.waitFor((m) => m.to.includes(to));
  await eventually(async () => (await t.context.db('email_messages').where({ id }).first())?.status === 'sent');
  await new Promise((r) => setTimeout(r, 300));
  expect(smtp.messages.filter((m) => m.to.includes(to))).toHaveLength(1);
});

test('an email whose job was lost is re-enqueued by the reconciler and delivered', async () => {
  const to = `lost-${crypto.randomBytes(3).toString('hex')}@example.com`;
  // Committed but never enqueued, as after a crash between commit and enqueue or a Redis loss.
  const id = await t.context.db.transaction((trx) =>
    writeEmail(trx, t.context.kms, { template: 'mfa_enabled', to, params: { name: 'Lost' } }),
  );
  await t.context
    .db('email_messages')
    .where({ id })
    .update({ created_at: t.context.db.raw(`now() - interval '5 minutes'`) });
  expect((await reconcileEmails(t.context)).requeued).toBeGreaterThanOrEqual(1);
  await smtp.waitFor((m) => m.to.includes(to));
});

describe('a job that keeps failing', () => {
  let emailId: string;
  beforeAll(async () => {
    smtp.refuse = true;
    emailId = await queueEmail(`refused-${crypto.randomBytes(3).toString('hex')}@example.com`);
    await eventually(async () => (await t.context.queues.email.getJob(`email-${emailId}`))?.isFailed(), { timeoutMs: 15_000 });
    smtp.refuse = false;
  });

  test('is retried with exponential backoff until its attempts run out, then kept in the failed set', async () => {
    const job = await t.context.queues.email.getJob(`email-${emailId}`);
    expect(job?.attemptsMade).toBe(3);
    expect(job?.opts.backoff).toMatchObject({ type: 'exponential', delay: 100 });
    expect(job?.failedReason).toMatch(/try again later/);
    expect(await t.context.queues.email.getFailedCount()).toBeGreaterThanOrEqual(1);
    const row = await t.context.db('email_messages').where({ id: emailId }).first();
    expect(row).toMatchObject({ status: 'failed', attempts: 3 });
  });

  test("is visible to an admin through Bull Board's JSON API", async () => {
    const r = await call(`${t.url}/admin/queues/api/queues?activeQueue=email&status=failed&page=1`, {
      headers: { Authorization: basicAuth(admin) },
    });
    expect(r.status).toBe(200);
    const email = r.body.queues.find((q: { name: string }) => q.name === 'email');
    expect(email.counts.failed).toBeGreaterThanOrEqual(1);
    expect(email.jobs.map((j: { id: string }) => j.id)).toContain(`email-${emailId}`);
    // Jobs carry ids, never the message or its token.
    expect(JSON.stringify(email.jobs)).not.toMatch(/refused-/);
  });

  test('and to an admin holding a bearer access token', async () => {
    const token = await t.context.accessTokens.sign({ sub: admin.id, roles: ['admin'], amr: ['pwd'] });
    const r = await call(`${t.url}/admin/queues/api/queues?activeQueue=email&status=failed&page=1`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(r.status).toBe(200);
  });
});

describe('Bull Board is for operators only', () => {
  const paths = ['/admin/queues', '/admin/queues/api/queues?activeQueue=email&status=latest&page=1'];

  test.each(paths)('%s: 401 with a Basic challenge without credentials', async (path) => {
    const r = await call(`${t.url}${path}`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect(r.headers.get('content-type')).toMatch(/problem\+json/);
  });

  test.each(paths)('%s: 401 with a wrong password', async (path) => {
    const r = await call(`${t.url}${path}`, { headers: { Authorization: basicAuth({ ...admin, password: 'wrong-password-1A!' }) } });
    expect(r.status).toBe(401);
  });

  test.each(paths)('%s: 403 for a non-admin', async (path) => {
    const r = await call(`${t.url}${path}`, { headers: { Authorization: basicAuth(trader) } });
    expect(r.status).toBe(403);
    const token = await t.context.accessTokens.sign({ sub: trader.id, roles: ['admin'], amr: ['pwd'] });
    // The roles claim alone never grants anything: permissions come from the database.
    const forged = await call(`${t.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(forged.status).toBe(403);
  });

  test("Basic credentials count against the login limits: guessing an operator's password is throttled", async () => {
    const target = await createUser(t.context.db, { roles: ['admin'] });
    for (let i = 0; i < 5; i += 1) {
      const r = await call(`${t.url}/admin/queues`, {
        headers: { Authorization: basicAuth({ ...target, password: `Wrong-guess-${i}-A1!` }) },
      });
      expect(r.status).toBe(401);
    }
    const blocked = await call(`${t.url}/admin/queues`, { headers: { Authorization: basicAuth(target) } });
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('retry-after')).toMatch(/^\d+$/);
  });

  test('a cached Basic credential stops working once the password changes', async () => {
    const op = await createUser(t.context.db, { roles: ['admin'] });
    expect((await call(`${t.url}/admin/queues`, { headers: { Authorization: basicAuth(op) } })).status).toBe(200);
    await t.context
      .db('users')
      .where({ id: op.id })
      .update({ password_hash: await hashPassword('Another-Password-99!', 4) });
    expect((await call(`${t.url}/admin/queues`, { headers: { Authorization: basicAuth(op) } })).status).toBe(401);
  });

  test('the page itself loads for an admin', async () => {
    const r = await call(`${t.url}/admin/queues`, { headers: { Authorization: basicAuth(admin) } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/text\/html/);
  });
});
