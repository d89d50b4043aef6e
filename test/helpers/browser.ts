// A real headless Chromium for the pages (docs, the operators' sign-in, Bull Board): Debian's
// `chromium` driven by playwright-core, never a downloaded browser (DESIGN.md, "Browser checks").
// CHROMIUM_PATH points at another build. Background networking is off: this machine reaches
// nothing outside, and Chromium would keep trying.
import { chromium, type Browser } from 'playwright-core';
import { startTestApp, type TestApp } from './app';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A test app and a browser to look at its pages, started together and closed together. */
export async function startAppWithBrowser(): Promise<{ t: TestApp; browser: Browser; close: () => Promise<void> }> {
  const t = await startTestApp();
  const browser = await launchChromium();
  return {
    t,
    browser,
    async close() {
      await browser.close();
      await t.close();
    },
  };
}
