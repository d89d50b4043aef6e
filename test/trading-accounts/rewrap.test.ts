// A master-key rotation: after `kms:rewrap`, every account's credentials (in use and being
// verified) decrypt under the new key alone, and the api answers with them as before.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call } from '../helpers/app';
import { signedInUser } from '../helpers/auth';
import { cliEnvironment, runCli } from '../helpers/cli';
import { startStack, type TestStack } from '../helpers/stack';
import { createLocalKms } from '../../shared/crypto/kms';
import { openCredentials } from '../../shared/trading-accounts/credentials';
import { linked, row } from './flows';

let s: TestStack;
let keysDir: string;
beforeAll(async () => {
  s = await startStack();
  keysDir = fs.mkdtempSync(path.join(os.tmpdir(), 'us-kite-rewrap-'));
});
afterAll(async () => {
  await s.close();
  fs.rmSync(keysDir, { recursive: true, force: true });
});

test('kms:rewrap keeps every trading account readable under the new master key alone', async () => {
  const user = await signedInUser(s.app.context.db, s.app.url);
  const apps = [s.kite.addApp(), s.kite.addApp()];
  const accounts = [];
  for (const app of apps) accounts.push(await linked(s, user, app));
  // A rotation being verified: its envelope must survive too.
  const pendingApp = s.kite.addApp();
  s.kite.always('GET /user/profile', 'hold');
  await call(`${s.app.url}/v1/trading-accounts/${accounts[1].id}/rotate-credentials`, {
    headers: user.auth,
    body: { api_key: pendingApp.apiKey, api_secret: pendingApp.apiSecret, access_token: s.kite.accessToken(pendingApp.apiKey) },
  });
  await s.kite.held('GET /user/profile');

  const next = path.join(keysDir, 'next.key');
  fs.writeFileSync(next, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
  const env = cliEnvironment(s.app, { LOCAL_KMS_KEY_PATH: next, LOCAL_KMS_PREVIOUS_KEY_PATHS: s.app.config.kms.keyPath });
  const r = await runCli(['kms:rewrap', '--yes'], { env });
  expect(r.status).toBe(0);

  const nextOnly = createLocalKms({ kms: { provider: 'local', keyPath: next, previousKeyPaths: [] } });
  for (const [i, account] of accounts.entries()) {
    const stored = await row(s, account.id);
    expect(stored.credentials_encrypted).toMatch(new RegExp(`^v1\\.${nextOnly.currentKeyId}\\.`));
    const credentials = openCredentials(nextOnly, account.id, 'credentials_encrypted', stored.credentials_encrypted);
    expect(credentials).toMatchObject({ api_key: apps[i].apiKey, api_secret: apps[i].apiSecret });
  }
  const pending = (await row(s, accounts[1].id)).pending_credentials_encrypted;
  expect(openCredentials(nextOnly, accounts[1].id, 'pending_credentials_encrypted', pending).api_key).toBe(pendingApp.apiKey);
  s.kite.reset();
  s.kite.release();
});
