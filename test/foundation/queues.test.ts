// Jobs: an email enqueued is processed; a job that keeps failing is retried with backoff and ends
// in the failed set, which an admin sees through Bull Board's JSON API (and nobody else does).
import crypto from 'node:crypto';
import { call, eventually, type TestApp } from '../helpers/app';
import type { TestSmtp } from '../helpers/smtp';
import { startStack, type TestStack } from '../helpers/stack';
import { createUser, type TestUser } from '../helpers/users';
import { login, operatorSignIn } from '../helpers/auth';
import { writeEmail } from '../../shared/email/outbox';
import { enqueueEmail, jobIds } from '../../shared/queues';
import { reconcileEmails } from '../../workers/processors/email';

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

test('a message sent again after a crash carries the same Message-ID, so the receiver can tell it is a duplicate', async () => {
  const to = `again-${crypto.randomBytes(3).toString('hex')}@example.com`;
  const id = await queueEmail(to);
  const first = await smtp.waitFor((m) => m.to.includes(to));
  await eventually(async () => (await t.context.db('email_messages').where({ id }).first())?.status === 'sent');
  // What a worker killed between the SMTP answer and its update leaves behind: a pending row that was sent.
  await t.context.db('email_messages').where({ id }).update({ status: 'pending', sent_at: null });
  await t.context.queues.email.remove(jobIds.email(id));
  await enqueueEmail(t.context.queues, id);
  await eventually(() => smtp.messages.filter((m) => m.to.includes(to)).length === 2);
  const [a, b] = smtp.messages.filter((m) => m.to.includes(to));
  expect(a.messageId).toBe(`<${id}@user-service.test>`);
  expect(b.messageId).toBe(a.messageId);
  expect(first.messageId).toBe(a.messageId);
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

  test("is visible to a signed-in operator through Bull Board's JSON API", async () => {
    const { cookie } = await operatorSignIn(t.url, admin);
    const r = await call(`${t.url}/admin/queues/api/queues?activeQueue=email&status=failed&page=1`, { headers: { Cookie: cookie! } });
    expect(r.status).toBe(200);
    const email = r.body.queues.find((q: { name: string }) => q.name === 'email');
    expect(email.counts.failed).toBeGreaterThanOrEqual(1);
    expect(email.jobs.map((j: { id: string }) => j.id)).toContain(`email-${emailId}`);
    // Jobs carry ids, never the message or its token.
    expect(JSON.stringify(email.jobs)).not.toMatch(/refused-/);
  });
});

describe('Bull Board is for operators signed in at /admin/login', () => {
  const api = '/admin/queues/api/queues?activeQueue=email&status=latest&page=1';

  test('without a session the page goes to the sign-in page and the API answers 401', async () => {
    const page = await call(`${t.url}/admin/queues`);
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toBe('/admin/login');
    const r = await call(`${t.url}${api}`);
    expect(r.status).toBe(401);
    expect(r.headers.get('content-type')).toMatch(/problem\+json/);
    // No Basic challenge, and Basic credentials open nothing.
    expect(r.headers.get('www-authenticate')).not.toMatch(/Basic/);
    const basic = `Basic ${Buffer.from(`${admin.email}:${admin.password}`).toString('base64')}`;
    expect((await call(`${t.url}${api}`, { headers: { Authorization: basic } })).status).toBe(401);
  });

  test('a wrong password and an account without the permission get one and the same answer', async () => {
    const wrong = await operatorSignIn(t.url, { ...admin, password: 'Wrong-Password-1A!' });
    const notOperator = await operatorSignIn(t.url, trader);
    for (const { reply, cookie } of [wrong, notOperator]) {
      expect(cookie).toBeNull();
      expect(reply.status).toBe(401);
    }
    expect(notOperator.reply.body.detail).toBe(wrong.reply.body.detail);
    expect(notOperator.reply.body.type).toBe(wrong.reply.body.type);
    // A bearer token with a forged roles claim opens nothing either: the board reads no bearer.
    const token = await t.context.accessTokens.sign({ sub: trader.id, roles: ['admin'], amr: ['pwd'] });
    expect((await call(`${t.url}${api}`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  test("sign-ins count against the login limits: guessing an operator's password is throttled", async () => {
    const target = await createUser(t.context.db, { roles: ['admin'] });
    for (let i = 0; i < 5; i += 1)
      expect((await operatorSignIn(t.url, { ...target, password: `Wrong-guess-${i}-A1!` })).reply.status).toBe(401);
    const blocked = await operatorSignIn(t.url, target);
    expect(blocked.reply.status).toBe(429);
    expect(blocked.reply.headers.get('retry-after')).toMatch(/^\d+$/);
    // The same counter as the API's login.
    expect((await call(`${t.url}/v1/auth/login`, { body: { email: target.email, password: target.password } })).status).toBe(429);
  });

  test('the session is a real one: listed, and ended when the operator signs out everywhere', async () => {
    const op = await createUser(t.context.db, { roles: ['admin'] });
    const { cookie, reply } = await operatorSignIn(t.url, op);
    expect(reply.status).toBe(200);
    const attributes = reply.headers.getSetCookie().join().toLowerCase().split('; ');
    expect(attributes).toEqual(expect.arrayContaining(['path=/admin', 'secure', 'samesite=strict', 'httponly']));
    expect((await call(`${t.url}/admin/queues`, { headers: { Cookie: cookie! } })).status).toBe(200);
    const signedIn = await login(t.url, op);
    const sessions = await call(`${t.url}/v1/auth/sessions`, { headers: signedIn.auth });
    expect(sessions.body.sessions).toHaveLength(2);
    expect((await call(`${t.url}/v1/auth/logout`, { body: { all_devices: true }, headers: signedIn.auth })).status).toBe(204);
    expect((await call(`${t.url}/admin/queues`, { headers: { Cookie: cookie! } })).status).toBe(302);
  });

  test('the page loads for an operator, with its fonts from here; pausing and resuming is recorded', async () => {
    const { cookie } = await operatorSignIn(t.url, admin);
    const page = await call(`${t.url}/admin/queues`, { headers: { Cookie: cookie! } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text).not.toContain('googleapis');
    const font = /href="(\/admin\/fonts\/[^"]+\.css)"/.exec(page.text)![1];
    expect((await call(`${t.url}${font}`)).status).toBe(200);
    for (const action of ['pause', 'resume']) {
      expect(
        (await call(`${t.url}/admin/queues/api/queues/events/${action}`, { method: 'PUT', headers: { Cookie: cookie! } })).status,
      ).toBe(200);
    }
    const recorded = await t.context.db('events').where({ type: 'queue.action', actor_id: admin.id }).orderBy('seq').select('data');
    expect(recorded.map((e) => e.data)).toEqual([
      { queue: 'events', action: 'pause', job_id: null },
      { queue: 'events', action: 'resume', job_id: null },
    ]);
  });
});
