// Key material: development creates it (mode 600), production refuses to start without it, the
// JWKS publishes every public key so signing keys can rotate, and the KMS envelopes round-trip.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { call, createTestDatabase, dropTestDatabase, eventually, startTestApp, type TestApp } from '../helpers/app';
import { login, type SignedIn } from '../helpers/auth';
import { createUser } from '../helpers/users';
import { databaseUrl, PG_URL, REDIS_URL, ROOT } from '../helpers/env';
import { createMissingKeys, loadSigningKeys } from '../../shared/crypto/keys';
import { createLocalKms, DecryptionError, rewrapAll } from '../../shared/crypto/kms';
import { createAccessTokens, InvalidTokenError } from '../../shared/crypto/access-tokens';
import { scanKeys, unlinkKeys } from '../../shared/redis';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'us-keys-'));
const settingsIn = (dir: string, kid = 'key-001') => ({
  jwt: {
    keysDir: path.join(dir, 'jwt'),
    signingKeyId: kid,
    keysReloadMs: 0,
    issuer: 'user_service',
    audience: 'trading_platform',
    accessTtlSeconds: 900,
  },
  kms: { provider: 'local' as const, keyPath: path.join(dir, 'master.key'), previousKeyPaths: [] as string[] },
});

test('development creates the signing pair and master key once, readable by the owner only', () => {
  const dir = tmp();
  const created = createMissingKeys(settingsIn(dir));
  expect(created).toHaveLength(2);
  for (const file of [path.join(dir, 'jwt', 'key-001.pem'), path.join(dir, 'jwt', 'key-001.pub.pem'), path.join(dir, 'master.key')]) {
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  }
  const before = fs.readFileSync(path.join(dir, 'master.key'), 'utf8');
  expect(createMissingKeys(settingsIn(dir))).toEqual([]);
  expect(fs.readFileSync(path.join(dir, 'master.key'), 'utf8')).toBe(before);
});

test('production without keys stops with a clear error and exit code 1', () => {
  const dir = tmp();
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'api/server.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: process.env.PATH,
      ENVIRONMENT: 'production',
      // A database and a Redis that exist: the api checks both before it looks for its keys.
      DATABASE_URL: PG_URL,
      REDIS_URL,
      SMTP_HOST: '127.0.0.1',
      JWT_KEYS_DIR: path.join(dir, 'jwt'),
      LOCAL_KMS_KEY_PATH: path.join(dir, 'master.key'),
      PORT: '0',
    },
  });
  expect(result.status).toBe(1);
  expect(result.stderr).toMatch(/Signing key "key-001" not found at .*key-001\.pem/);
  expect(fs.existsSync(path.join(dir, 'jwt'))).toBe(false);
});

test('the JWKS serves every public key in the key directory, so keys can rotate', async () => {
  const dir = tmp();
  createMissingKeys(settingsIn(dir, 'key-001'));
  createMissingKeys(settingsIn(dir, 'key-002'));
  const oldKeys = loadSigningKeys(settingsIn(dir, 'key-001'));
  const tokenFromOldKey = await createAccessTokens(settingsIn(dir), oldKeys).sign({ sub: crypto.randomUUID(), roles: [], amr: ['pwd'] });

  const t = await startTestApp({ JWT_KEYS_DIR: path.join(dir, 'jwt'), JWT_SIGNING_KEY_ID: 'key-002' });
  try {
    const r = await call(`${t.url}/v1/auth/.well-known/jwks.json`);
    expect(r.status).toBe(200);
    expect(r.body.keys.map((k: { kid: string }) => k.kid).sort()).toEqual(['key-001', 'key-002']);
    for (const key of r.body.keys) {
      expect(key).toEqual({ kty: 'RSA', kid: key.kid, use: 'sig', alg: 'RS256', n: expect.any(String), e: 'AQAB' });
      expect(key).not.toHaveProperty('d');
    }
    // A token signed before the rotation still verifies; new ones carry the new kid.
    await expect(t.context.accessTokens.verify(tokenFromOldKey)).resolves.toMatchObject({ amr: ['pwd'] });
    const fresh = await t.context.accessTokens.sign({ sub: crypto.randomUUID(), roles: [], amr: ['pwd'] });
    expect(JSON.parse(Buffer.from(fresh.split('.')[0], 'base64url').toString())).toMatchObject({
      alg: 'RS256',
      kid: 'key-002',
      typ: 'at+jwt',
    });
  } finally {
    await t.close();
  }
});

describe('a rolling rotation of the signing key across two api copies', () => {
  const dir = tmp();
  const keysDir = path.join(dir, 'jwt');
  const tag = crypto.randomBytes(4).toString('hex');
  // Every copy shares one database and one set of Redis prefixes, as copies behind a load balancer do.
  const shared = { REDIS_KEY_PREFIX: `t${tag}:`, BULLMQ_PREFIX: `tbull${tag}`, EVENTS_STREAM_NAME: `t${tag}:events` };
  let database: string;
  const copies: TestApp[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    const redis = copies[0]?.context.redis;
    for (const prefix of redis ? Object.values(shared) : []) {
      await unlinkKeys(redis, await scanKeys(redis, `${prefix}*`));
    }
    await Promise.all(copies.map((c) => c.close()));
    await dropTestDatabase(database);
  });

  /** An api copy signing with `kid`, reading the key folder every second. */
  async function startCopy(kid: string): Promise<TestApp> {
    const copy = await startTestApp(
      { ...shared, JWT_KEYS_DIR: keysDir, JWT_SIGNING_KEY_ID: kid, JWT_KEYS_RELOAD_SECONDS: '1' },
      { databaseUrl: databaseUrl(database) },
    );
    copies.push(copy);
    return copy;
  }
  async function restart(copy: TestApp, kid: string): Promise<TestApp> {
    copies.splice(copies.indexOf(copy), 1);
    await copy.close();
    return startCopy(kid);
  }
  const kidOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()) as { kid: string }).kid;
  const publishes = async (copy: TestApp, kid: string) =>
    ((await call(`${copy.url}/v1/auth/.well-known/jwks.json`)).body as { keys: { kid: string }[] }).keys.some((k) => k.kid === kid);
  const meStatus = async (copy: TestApp, user: SignedIn) => (await call(`${copy.url}/v1/users/me`, { headers: user.auth })).status;

  test('publish everywhere first, sign later: no copy refuses a token signed by either key; a retired key is refused', async () => {
    createMissingKeys(settingsIn(dir, 'key-001'));
    const a = await startCopy('key-001');
    let b = await startCopy('key-001');
    const user = await createUser(a.context.db);
    const signedOnA = await login(a.url, user);

    // Publish: the new pair lands in each machine's folder; every copy takes it up without a restart.
    createMissingKeys(settingsIn(dir, 'key-002'));
    for (const copy of [a, b]) await eventually(() => publishes(copy, 'key-002'));

    // Sign: B restarts signing with the new key while A still signs with the old one.
    b = await restart(b, 'key-002');
    const signedOnB = await login(b.url, user);
    expect([kidOf(signedOnA.accessToken), kidOf(signedOnB.accessToken)]).toEqual(['key-001', 'key-002']);
    for (const copy of [a, b]) {
      for (const signed of [signedOnA, signedOnB]) expect(await meStatus(copy, signed)).toBe(200);
    }

    // Retire: once every copy signs with the new key and the old key's tokens would have expired,
    // its files go; each copy refuses it from its next reload, even a token it had verified before.
    const a2 = await restart(a, 'key-002');
    expect(await meStatus(a2, signedOnA)).toBe(200);
    fs.unlinkSync(path.join(keysDir, 'key-001.pem'));
    fs.unlinkSync(path.join(keysDir, 'key-001.pub.pem'));
    for (const copy of [a2, b]) {
      await eventually(async () => !(await publishes(copy, 'key-001')));
      expect(await meStatus(copy, signedOnA)).toBe(401);
      expect(await meStatus(copy, signedOnB)).toBe(200);
    }
  });

  test('a key folder that does not load (a file half copied) leaves the keys in use as they were', async () => {
    const copy = copies[copies.length - 1];
    const before = copy.context.keys.generation;
    fs.writeFileSync(path.join(keysDir, 'key-003.pub.pem'), '-----BEGIN PUBLIC KEY-----\nMIIB');
    await eventually(() => copy.logs.text.includes('signing keys not reloaded'));
    expect(copy.context.keys.generation).toBe(before);
    expect(await publishes(copy, 'key-002')).toBe(true);
    fs.unlinkSync(path.join(keysDir, 'key-003.pub.pem'));
  });
});

test('a verified token is remembered only until it expires, and only byte for byte', async () => {
  const dir = tmp();
  createMissingKeys(settingsIn(dir));
  const keys = loadSigningKeys(settingsIn(dir));
  let clock = Date.now();
  const tokens = createAccessTokens(settingsIn(dir), keys, () => clock);
  const token = await tokens.sign({ sub: crypto.randomUUID(), roles: ['viewer'], amr: ['pwd'] });
  const first = await tokens.verify(token);
  expect(await tokens.verify(token)).toBe(first);
  // Shared by every request presenting the token, so nobody may change it.
  expect(() => first.roles.push('admin')).toThrow(TypeError);

  const [header, payload, signature] = token.split('.');
  const flipped = `${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;
  await expect(tokens.verify(`${header}.${payload}.${flipped}`)).rejects.toThrow(InvalidTokenError);
  const otherClaims = Buffer.from(JSON.stringify({ ...first, roles: ['admin'] })).toString('base64url');
  await expect(tokens.verify(`${header}.${otherClaims}.${signature}`)).rejects.toThrow(InvalidTokenError);

  clock = first.exp! * 1000;
  await expect(tokens.verify(token)).rejects.toThrow(InvalidTokenError);
});

describe('envelope encryption', () => {
  const dir = tmp();
  createMissingKeys(settingsIn(dir));
  const kms = createLocalKms(settingsIn(dir));

  test('round-trips, with a fresh data key and IV each time', () => {
    const a = kms.encrypt('api-secret-value', 'trading_accounts:1');
    const b = kms.encrypt('api-secret-value', 'trading_accounts:1');
    expect(a).not.toBe(b);
    expect(a).not.toContain('api-secret-value');
    expect(kms.decrypt(a, 'trading_accounts:1')).toBe('api-secret-value');
  });

  test('refuses another context and any tampering', () => {
    const sealed = kms.encrypt('secret', 'users.mfa_secret:1');
    expect(() => kms.decrypt(sealed, 'users.mfa_secret:2')).toThrow(DecryptionError);
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3], 'base64url');
    body[body.length - 1] ^= 1;
    parts[3] = body.toString('base64url');
    expect(() => kms.decrypt(parts.join('.'), 'users.mfa_secret:1')).toThrow(DecryptionError);
  });

  test('the master key can rotate: old envelopes still open and can be re-wrapped', () => {
    const sealed = kms.encrypt('secret', 'ctx');
    const next = tmp();
    const newKeyPath = path.join(next, 'master.key');
    fs.writeFileSync(newKeyPath, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
    const rotated = createLocalKms({ kms: { provider: 'local', keyPath: newKeyPath, previousKeyPaths: [path.join(dir, 'master.key')] } });
    expect(rotated.decrypt(sealed, 'ctx')).toBe('secret');
    const rewrapped = rotated.rewrap(sealed);
    expect(rewrapped.split('.')[1]).toBe(rotated.currentKeyId);
    const onlyNew = createLocalKms({ kms: { provider: 'local', keyPath: newKeyPath, previousKeyPaths: [] } });
    expect(onlyNew.decrypt(rewrapped, 'ctx')).toBe('secret');
    expect(() => onlyNew.decrypt(sealed, 'ctx')).toThrow(/not configured/);
  });
});

test('kms:rewrap moves every stored envelope under the new master key, so the old one can retire', async () => {
  const t = await startTestApp();
  try {
    const [{ id }] = await t.context.db('users').insert({ email: 'rewrap@example.com', name: 'R' }).returning('id');
    const sealed = t.context.kms.encrypt('JBSWY3DPEHPK3PXP', `users.mfa_secret:${id}`);
    await t.context.db('users').where({ id }).update({ mfa_enabled: true, mfa_secret_encrypted: sealed });
    const next = tmp();
    const newKeyPath = path.join(next, 'master.key');
    fs.writeFileSync(newKeyPath, crypto.randomBytes(32).toString('hex'), { mode: 0o600 });
    const rotated = createLocalKms({ kms: { provider: 'local', keyPath: newKeyPath, previousKeyPaths: [t.config.kms.keyPath] } });
    expect(await rewrapAll(t.context.db, rotated)).toEqual({ rewrapped: 1, unchanged: 0 });
    expect(await rewrapAll(t.context.db, rotated)).toEqual({ rewrapped: 0, unchanged: 0 });
    const onlyNew = createLocalKms({ kms: { provider: 'local', keyPath: newKeyPath, previousKeyPaths: [] } });
    const stored = (await t.context.db('users').where({ id }).first())!.mfa_secret_encrypted!;
    expect(onlyNew.decrypt(stored, `users.mfa_secret:${id}`)).toBe('JBSWY3DPEHPK3PXP');
  } finally {
    await t.close();
  }
});
