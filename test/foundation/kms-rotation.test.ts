// A master-key rotation without restarts (docs/operations.md, "Keys"): each process re-reads the
// master key files on the keys' timer and on SIGHUP, so a rotation is done with files alone —
// publish the new key in LOCAL_KMS_KEYS_DIR, then replace LOCAL_KMS_KEY_PATH, then `kms:rewrap`
// and retire the old key — and no process meets an envelope it cannot open on the way.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, eventually, processEnvironment, startTestApp, type TestApp } from '../helpers/app';
import { login } from '../helpers/auth';
import { cliEnvironment, runCli } from '../helpers/cli';
import { startServiceProcess, type ServiceProcess } from '../helpers/processes';
import { createUser, type TestUser } from '../helpers/users';
import { Authenticator } from '../mfa/rfc6238';
import { createLocalKms, DecryptionError, rewrapAll } from '../../shared/crypto/kms';
import { KeyError } from '../../shared/crypto/keys';

jest.setTimeout(90_000);

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'us-kms-'));
const newKey = () => `${crypto.randomBytes(32).toString('hex')}\n`;
/** As an operator should: another file, then a rename over the old one (never a half-written key). */
function replaceFile(file: string, contents: string): void {
  fs.writeFileSync(`${file}.tmp`, contents, { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
}
const keyIdOfFile = (file: string) => createLocalKms({ kms: { provider: 'local', keyPath: file, previousKeyPaths: [] } }).currentKeyId;
const keyIdOf = (envelope: string) => envelope.split('.')[1];

describe('reloading the master keys (one process)', () => {
  const dir = tmp();
  const current = path.join(dir, 'master.key');
  const folder = path.join(dir, 'kms');
  const settings = { kms: { provider: 'local' as const, keyPath: current, previousKeyPaths: [], keysDir: folder } };

  test('publish, seal, retire: each step takes effect at the next reload, and a file that does not load changes nothing', () => {
    const oldKey = newKey();
    const nextKey = newKey();
    fs.writeFileSync(current, oldKey);
    // The folder does not exist yet: it holds no key.
    const kms = createLocalKms(settings);
    const oldId = kms.currentKeyId;
    const rateKeyBefore = kms.deriveKey('rate-limit-keys');
    const sealedOld = kms.encrypt('JBSWY3DPEHPK3PXP', 'users.mfa_secret:1');

    // A key another process seals with is refused until it is published here.
    fs.writeFileSync(path.join(dir, 'next.key'), nextKey);
    const nextId = keyIdOfFile(path.join(dir, 'next.key'));
    const other = createLocalKms({ kms: { provider: 'local', keyPath: path.join(dir, 'next.key'), previousKeyPaths: [] } });
    const sealedNext = other.encrypt('secret-from-elsewhere', 'ctx');
    expect(() => kms.decrypt(sealedNext, 'ctx')).toThrow(KeyError);

    // Publish: into the folder, with the old key beside it; nothing else changes.
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'old.key'), oldKey);
    fs.writeFileSync(path.join(folder, 'next.key'), nextKey);
    expect(kms.reload()).toMatchObject({ changed: true, currentKeyId: oldId, keyIds: [oldId, nextId].sort(), failed: [] });
    expect(kms.decrypt(sealedNext, 'ctx')).toBe('secret-from-elsewhere');
    expect(keyIdOf(kms.encrypt('x', 'ctx'))).toBe(oldId);
    expect(kms.reload().changed).toBe(false);

    // Files that do not load (half copied, wrong length, not hex) are named, and change nothing.
    fs.writeFileSync(path.join(folder, 'broken.key'), nextKey.slice(0, 20));
    fs.writeFileSync(current, 'zz'.repeat(32));
    const broken = kms.reload();
    expect(broken.changed).toBe(false);
    expect(broken.failed.map((f) => path.basename(f.file)).sort()).toEqual(['broken.key', 'master.key']);
    // The reasons name files, never what is in them.
    for (const f of broken.failed) expect(f.reason).not.toMatch(/zzzz|[0-9a-f]{20}/);
    expect(kms.currentKeyId).toBe(oldId);
    expect(kms.decrypt(sealedOld, 'users.mfa_secret:1')).toBe('JBSWY3DPEHPK3PXP');
    fs.unlinkSync(path.join(folder, 'broken.key'));

    // Seal: the current key's file is replaced; sealing, its id and derived keys follow.
    replaceFile(current, nextKey);
    expect(kms.reload()).toMatchObject({ changed: true, currentKeyId: nextId, failed: [], heldInMemory: [] });
    expect(kms.currentKeyId).toBe(nextId);
    expect(keyIdOf(kms.encrypt('x', 'ctx'))).toBe(nextId);
    expect(kms.deriveKey('rate-limit-keys').equals(rateKeyBefore)).toBe(false);
    expect(kms.deriveKey('rate-limit-keys').equals(kms.deriveKey('rate-limit-keys'))).toBe(true);
    expect(kms.decrypt(sealedOld, 'users.mfa_secret:1')).toBe('JBSWY3DPEHPK3PXP');
    expect(keyIdOf(kms.rewrap(sealedOld))).toBe(nextId);

    // Retire: the old key's file goes. This process sealed with it, so it keeps opening what it
    // wrote until it restarts (and says so); a fresh process refuses it.
    fs.unlinkSync(path.join(folder, 'old.key'));
    expect(kms.reload()).toMatchObject({ changed: false, heldInMemory: [oldId] });
    expect(kms.decrypt(sealedOld, 'users.mfa_secret:1')).toBe('JBSWY3DPEHPK3PXP');
    const fresh = createLocalKms(settings);
    expect(fresh.currentKeyId).toBe(nextId);
    expect(() => fresh.decrypt(sealedOld, 'users.mfa_secret:1')).toThrow(KeyError);
    expect(fresh.decrypt(kms.rewrap(sealedOld), 'users.mfa_secret:1')).toBe('JBSWY3DPEHPK3PXP');
    expect(() => fresh.decrypt(kms.encrypt('x', 'ctx'), 'other')).toThrow(DecryptionError);

    // A decrypt-only key that was never current retires at the next reload.
    fs.writeFileSync(path.join(folder, 'spare.key'), newKey());
    const spare = createLocalKms({ kms: { provider: 'local', keyPath: path.join(folder, 'spare.key'), previousKeyPaths: [] } });
    const sealedSpare = spare.encrypt('y', 'ctx');
    fresh.reload();
    expect(fresh.decrypt(sealedSpare, 'ctx')).toBe('y');
    fs.unlinkSync(path.join(folder, 'spare.key'));
    expect(fresh.reload().changed).toBe(true);
    expect(() => fresh.decrypt(sealedSpare, 'ctx')).toThrow(KeyError);
  });

  test('at start a key file that does not load is an error naming it, as a missing key always was', () => {
    fs.writeFileSync(path.join(folder, 'half.key'), 'abc');
    expect(() => createLocalKms(settings)).toThrow(/half\.key must be 64 hex characters/);
    fs.unlinkSync(path.join(folder, 'half.key'));
    expect(() => createLocalKms(settings)).not.toThrow();
  });
});

describe('a rolling master-key rotation across two api processes and a worker', () => {
  const dir = tmp();
  const current = path.join(dir, 'master.key');
  const folder = path.join(dir, 'kms');
  const oldKey = newKey();
  const nextKey = newKey();
  let t: TestApp;
  let env: Record<string, string>;
  let a: ServiceProcess;
  let b: ServiceProcess;
  let worker: ServiceProcess;
  const started: ServiceProcess[] = [];

  beforeAll(async () => {
    fs.writeFileSync(current, oldKey, { mode: 0o600 });
    fs.mkdirSync(folder);
    const keys = { LOCAL_KMS_KEY_PATH: current, LOCAL_KMS_KEYS_DIR: folder, RATELIMIT_LOGIN_IP_ATTEMPTS: '1000' };
    t = await startTestApp(keys);
    env = processEnvironment(t, { ...keys, JWT_KEYS_RELOAD_SECONDS: '1' });
    // B reads its keys at start and on SIGHUP only: what it takes up, SIGHUP gave it.
    [a, b, worker] = await Promise.all([
      startServiceProcess('api', env),
      startServiceProcess('api', { ...env, JWT_KEYS_RELOAD_SECONDS: '0' }),
      startServiceProcess('worker', env),
    ]);
    started.push(a, b, worker);
  }, 60_000);

  afterAll(async () => {
    for (const p of started) p.child.kill('SIGKILL');
    await Promise.all(started.map((p) => p.exited()));
    await t?.close();
  });

  /** Resolves once `p` has logged a reload after which `currentId` seals and `ids` open. */
  const reloaded = (p: ServiceProcess, currentId: string, ids: string[]) =>
    eventually(
      () =>
        p
          .output()
          .split('\n')
          .filter((line) => line.includes('"master keys reloaded"'))
          .map((line) => JSON.parse(line) as { current: string; keys: string[] })
          .some((entry) => entry.current === currentId && entry.keys.join() === [...ids].sort().join()),
      { timeoutMs: 10_000 },
    );

  /** MFA set up on one api (the pending secret sealed into Redis), enabled on another (sealed into the database). */
  async function mfaAcross(setupOn: ServiceProcess, enableOn: ServiceProcess): Promise<{ user: TestUser; app: Authenticator }> {
    const user = await createUser(t.context.db);
    const signedIn = await login(setupOn.url, user);
    const setup = await call(`${setupOn.url}/v1/mfa/totp/setup`, { body: {}, headers: signedIn.auth });
    expect(setup.status).toBe(200);
    const app = new Authenticator(setup.body.secret);
    const enabled = await call(`${enableOn.url}/v1/mfa/totp/enable`, { body: { code: await app.code() }, headers: signedIn.auth });
    expect(enabled.status).toBe(200);
    return { user, app };
  }
  /** A sign-in with the second factor on `on`: it opens the secret stored by whichever process sealed it. */
  async function signInWithMfa(on: ServiceProcess, { user, app }: { user: TestUser; app: Authenticator }): Promise<void> {
    const first = await call(`${on.url}/v1/auth/login`, { body: { email: user.email, password: user.password } });
    expect(first.status).toBe(200);
    expect(first.body.mfa_required).toBe(true);
    const verified = await call(`${on.url}/v1/auth/mfa/verify`, { body: { mfa_token: first.body.mfa_token, code: await app.code() } });
    expect(verified.status).toBe(200);
  }
  const storedKeyId = async (user: TestUser) => {
    const row = await t.context.db('users').where({ email: user.email }).first<{ mfa_secret_encrypted: string }>('mfa_secret_encrypted');
    return keyIdOf(row.mfa_secret_encrypted);
  };
  /** Every email written so far reaches the worker, which opens its parameters, whoever sealed them. */
  const allEmailsSent = () =>
    eventually(async () => (await t.context.db('email_messages').whereNot({ status: 'sent' }).select('id')).length === 0, {
      timeoutMs: 15_000,
    });

  test('publish, seal and retire by files alone: every envelope opens on every process at every step', async () => {
    const oldId = keyIdOfFile(current);
    const before = await mfaAcross(a, b);
    expect(await storedKeyId(before.user)).toBe(oldId);

    // Publish: the new key (and the current one, for processes that start later) into the folder.
    fs.writeFileSync(path.join(folder, 'old.key'), oldKey, { mode: 0o600 });
    fs.writeFileSync(path.join(folder, 'next.key'), nextKey, { mode: 0o600 });
    const nextId = keyIdOfFile(path.join(folder, 'next.key'));
    b.child.kill('SIGHUP');
    worker.child.kill('SIGHUP');
    await Promise.all([a, b, worker].map((p) => reloaded(p, oldId, [oldId, nextId])));

    // Seal: the current key's file is replaced. A (on its timer) and the worker seal with the new
    // key while B (no SIGHUP yet) still seals with the old one: each opens what the other wrote.
    replaceFile(current, nextKey);
    await Promise.all([reloaded(a, nextId, [oldId, nextId]), reloaded(worker, nextId, [oldId, nextId])]);
    const sealedByA = await mfaAcross(b, a);
    const sealedByB = await mfaAcross(a, b);
    expect([await storedKeyId(sealedByA.user), await storedKeyId(sealedByB.user)]).toEqual([nextId, oldId]);
    await signInWithMfa(b, sealedByA);
    await signInWithMfa(a, sealedByB);
    await signInWithMfa(b, before);
    await allEmailsSent();

    b.child.kill('SIGHUP');
    await reloaded(b, nextId, [oldId, nextId]);
    const afterB = await mfaAcross(a, b);
    expect(await storedKeyId(afterB.user)).toBe(nextId);

    // A key file half copied into the folder: named in the log, and the keys in use stay.
    fs.writeFileSync(path.join(folder, 'copying.key'), nextKey.slice(0, 30));
    await eventually(() => a.output().includes('"master key file not loaded; the key last read from it stays in use"'));
    expect(a.output()).not.toContain(nextKey.slice(0, 30).trim());
    await signInWithMfa(a, afterB);
    fs.unlinkSync(path.join(folder, 'copying.key'));

    // Re-wrap, then retire the old key: a process started now knows the new key only, and opens everything.
    const rewrap = await runCli(['kms:rewrap', '--yes'], { env: cliEnvironment(t) });
    expect(rewrap.status).toBe(0);
    fs.unlinkSync(path.join(folder, 'old.key'));
    const c = await startServiceProcess('api', env);
    started.push(c);
    for (const flow of [before, sealedByB]) expect(await storedKeyId(flow.user)).toBe(nextId);
    await signInWithMfa(c, before);
    await signInWithMfa(c, sealedByB);
    await signInWithMfa(a, sealedByA);
    await signInWithMfa(b, afterB);
    await allEmailsSent();
    expect(await rewrapAll(t.context.db, createLocalKms({ kms: { provider: 'local', keyPath: current, previousKeyPaths: [] } }))).toEqual({
      rewrapped: 0,
      unchanged: 0,
    });
    for (const p of started) expect(p.output()).not.toMatch(/"level":(50|60)|"status":5\d\d/);
  });
});
