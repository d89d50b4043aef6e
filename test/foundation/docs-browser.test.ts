// /docs (Swagger UI) and /redoc (ReDoc) rendered in a real headless Chromium, everything served
// from here: the API's own operations come first (auth before admin, docs and health last), and
// "Try it out" talks to this very api.
import type { Browser } from 'playwright-core';
import type { TestApp } from '../helpers/app';
import { startAppWithBrowser } from '../helpers/browser';

jest.setTimeout(120_000);

let t: TestApp;
let browser: Browser;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ t, browser, close } = await startAppWithBrowser());
});
afterAll(() => close?.());

test('Swagger UI lists the auth operations first and the docs and health ones last', async () => {
  const page = await browser.newPage();
  const outside: string[] = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(t.url) && !request.url().startsWith('data:')) outside.push(request.url());
  });
  try {
    await page.goto(`${t.url}/docs`);
    const tags = page.locator('.opblock-tag-section h3 .nostyle span');
    await tags.first().waitFor();
    const names = await tags.allTextContents();
    expect(names[0]).toBe('auth');
    expect(names.slice(-2)).toEqual(['docs', 'health']);
    expect(await page.locator('.opblock-summary-path').first().textContent()).toMatch(/^\/v1\/auth\//);
    expect(outside).toEqual([]);
  } finally {
    await page.close();
  }
});

test('ReDoc shows the auth operations first', async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${t.url}/redoc`);
    const items = page.locator('li[data-item-id^="tag/"]:not([data-item-id*="/operation/"]) > label');
    await items.first().waitFor();
    const labels = (await items.allTextContents()).map((label) => label.trim().toLowerCase());
    expect(labels[0]).toBe('auth');
    expect(labels.slice(-2)).toEqual(['docs', 'health']);
  } finally {
    await page.close();
  }
});
