// The operators' console as an operator uses it, in a real headless Chromium (DESIGN.md, "Browser
// checks", "Operators' access to Bull Board"): sign-in with a password and then a TOTP code, the
// four queues with their labels rendered, a queue paused and resumed (each recorded as
// queue.action), sign-out; one refusal for a wrong password and for a trader; and, outside
// development, an admin without MFA told to turn it on.
import type { Browser, Page } from 'playwright-core';
import { eventually, startTestApp, type TestApp } from '../helpers/app';
import { enableMfa, signedInUser, type SignedIn } from '../helpers/auth';
import { startAppWithBrowser } from '../helpers/browser';
import { createUser, type TestUser } from '../helpers/users';

jest.setTimeout(120_000);

let t: TestApp;
let browser: Browser;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ t, browser, close } = await startAppWithBrowser());
});
afterAll(() => close?.());

/** Fills the sign-in page's password step and submits it. */
async function submitPassword(page: Page, user: TestUser): Promise<void> {
  await page.fill('input[name=email]', user.email);
  await page.fill('input[name=password]', user.password);
  await page.click('button[type=submit]');
}

const refusal = async (page: Page) => (await page.locator('#message').filter({ hasText: /\S/ }).textContent())!.trim();

test('an admin with MFA signs in with password and code, pauses and resumes a queue, and signs out', async () => {
  const admin: SignedIn = await signedInUser(t.context.db, t.url, { roles: ['admin'] });
  const authenticator = await enableMfa(t.url, admin);
  const page = await browser.newPage();
  try {
    // The dashboard sends a stranger to the sign-in page.
    await page.goto(`${t.url}/admin/queues`);
    await page.waitForURL(/\/admin\/login$/);
    await submitPassword(page, admin);
    await page.locator('input[name=code]').waitFor({ state: 'visible' });
    await page.fill('input[name=code]', await authenticator.code());
    await page.click('button[type=submit]');
    await page.waitForURL(/\/admin\/queues$/);

    // The four queues, and labels rendered rather than translation keys.
    for (const queue of ['email', 'kite', 'audit-export', 'events']) {
      await page.locator('nav').getByRole('link', { name: queue, exact: true }).waitFor();
    }
    await page.getByText('ALL', { exact: true }).waitFor();
    expect(await page.locator('body').innerText()).not.toMatch(/[A-Z]+\.[A-Z_]+\.[A-Z_]+/);

    // Pause and resume the email queue from its menu.
    await page.locator('nav').getByRole('link', { name: 'email', exact: true }).click();
    await page.waitForURL(/\/queue\/email$/);
    await page.getByText('LATEST', { exact: true }).waitFor();
    // The queue's menu opens from the first menu button after its status tabs.
    const queueMenu = page.getByRole('link', { name: 'DELAYED' }).locator('xpath=following::button[@aria-haspopup="menu"][1]');
    for (const action of ['Pause', 'Resume']) {
      await queueMenu.click();
      await page.getByRole('menuitem', { name: action }).click();
      await page.getByRole('button', { name: 'Confirm' }).click();
      await eventually(async () => (await t.context.queues.email.isPaused()) === (action === 'Pause'));
    }
    // The action is recorded once the dashboard's request has succeeded, so just after the queue changes.
    const recorded = async () =>
      (await t.context.db('events').where({ type: 'queue.action', actor_id: admin.id }).orderBy('seq').select('data')).map((e) => e.data);
    await eventually(async () => (await recorded()).length === 2);
    expect(await recorded()).toEqual([
      { queue: 'email', action: 'pause', job_id: null },
      { queue: 'email', action: 'resume', job_id: null },
    ]);

    // Sign out from the user menu: back to the sign-in page, and the dashboard is closed again.
    await page.locator('header button').last().click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await page.waitForURL(/\/admin\/login$/);
    await page.goto(`${t.url}/admin/queues`);
    await page.waitForURL(/\/admin\/login$/);
  } finally {
    await page.close();
  }
});

test('a trader with the right password gets the answer a wrong password gets', async () => {
  const trader = await createUser(t.context.db, { roles: ['trader'] });
  const page = await browser.newPage();
  try {
    await page.goto(`${t.url}/admin/login`);
    await submitPassword(page, { ...trader, password: 'Not-The-Password-1!' });
    const wrong = await refusal(page);
    await page.goto(`${t.url}/admin/login`);
    await submitPassword(page, trader);
    expect(await refusal(page)).toBe(wrong);
    expect(wrong).toMatch(/incorrect/);
  } finally {
    await page.close();
  }
});

test('outside development an admin without MFA is told to turn it on', async () => {
  const staging = await startTestApp(
    { ENVIRONMENT: 'staging', SMTP_HOST: '127.0.0.1', PASSWORD_BCRYPT_COST: '10' },
    { databaseUrl: t.config.database.url },
  );
  const page = await browser.newPage();
  try {
    const admin = await createUser(staging.context.db, { roles: ['admin'] });
    await page.goto(`${staging.url}/admin/login`);
    await submitPassword(page, admin);
    expect(await refusal(page)).toMatch(/Turn on two-factor authentication/);
    await page.goto(`${staging.url}/admin/queues`);
    await page.waitForURL(/\/admin\/login$/);
  } finally {
    await page.close();
    await staging.close();
  }
});
