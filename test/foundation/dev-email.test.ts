// Development without SMTP_HOST (DESIGN.md, "Email in development"): each email is an .eml file in
// EMAIL_DEV_DIR, and a newcomer can finish a registration from that file alone. The log names the
// file and never carries the link's token.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { call, eventually, startTestApp, type TestApp } from '../helpers/app';
import { parseConfig } from '../../shared/config';
import { createMailer, sendEmailMessage } from '../../shared/email/sender';

let t: TestApp;
let dir: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'us-dev-mail-'));
  // A folder that does not exist yet: the first email creates it.
  t = await startTestApp({ SMTP_HOST: '', EMAIL_DEV_DIR: path.join(dir, 'mail'), EMAIL_LINK_BASE_URL: 'https://app.example' });
  await t.startWorkers();
});
afterAll(async () => {
  await t.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const emlFiles = () => {
  const mail = path.join(dir, 'mail');
  return fs.existsSync(mail) ? fs.readdirSync(mail).filter((name) => name.endsWith('.eml')) : [];
};

test('EMAIL_DEV_DIR defaults to tmp/mail; outside development an empty SMTP_HOST is refused', () => {
  expect(parseConfig({}).smtp.devDir).toBe(path.resolve('tmp/mail'));
  expect(() => parseConfig({ ENVIRONMENT: 'staging' })).toThrow(/SMTP_HOST: is required outside development/);
});

test('a registration is completed from the .eml file alone; the log names the file, never the token', async () => {
  const email = 'newcomer@example.com';
  const registered = await call(`${t.url}/v1/auth/register`, {
    body: { email, password: 'Correct-Horse-42-Battery', name: 'New Comer' },
  });
  expect(registered.status).toBe(201);

  const [name] = await eventually(() => (emlFiles().length ? emlFiles() : undefined));
  const file = path.join(dir, 'mail', name);
  const row = (await t.context.db('email_messages').where({ user_id: registered.body.user_id }).first())!;
  expect(name).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z-${row.id}\\.eml$`));
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);

  const parsed = await simpleParser(fs.readFileSync(file));
  expect(parsed.subject).toBe('Confirm your email address');
  const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to;
  expect(to?.value.map((a) => a.address)).toEqual([email]);
  const link = /https:\/\/app\.example\/verify-email\?[^\s"<>]+/.exec(parsed.text ?? '')?.[0];
  expect(link).toBeDefined();
  const token = new URL(link!).searchParams.get('token')!;
  expect(token.length).toBeGreaterThanOrEqual(32);
  expect(parsed.html).toContain(token);

  const verified = await call(`${t.url}/v1/auth/verify-email`, { body: { token } });
  expect(verified.status).toBe(200);
  expect(verified.body).toEqual({ status: 'active' });

  const written = await eventually(() => t.logs.entries().find((e) => e.emailId === row.id && e.file));
  expect(written).toMatchObject({ file, template: 'verify_email', to: 'n***@example.com' });
  expect(t.logs.text).not.toContain(token);
  expect(t.logs.text).not.toContain('verify-email?token');
  expect(await t.context.db('email_messages').where({ id: row.id }).first()).toMatchObject({ status: 'sent' });
});

test('a row already sent is skipped: running its job again writes no second file', async () => {
  const row = (await t.context.db('email_messages').where({ status: 'sent' }).first())!;
  const before = emlFiles();
  const deps = {
    db: t.context.db,
    kms: t.context.kms,
    mailer: createMailer(t.config),
    logger: t.context.logger,
    appName: t.config.appName,
  };
  expect(await sendEmailMessage(deps, row.id)).toBe('skipped');
  expect(emlFiles()).toEqual(before);
});
