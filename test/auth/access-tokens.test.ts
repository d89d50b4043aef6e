// Access tokens as an outsider sees them: they verify with node:crypto and the published JWKS (not
// only with the `jose` the service uses), and the protected api refuses every forged, tampered,
// expired, misdirected or revoked token. Forged tokens are built by hand here, never with the
// service's own code, so a shared mistake cannot hide; one hand-signed valid token gets 200,
// proving the hand-signing is right and each negative fails for the reason it names.
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { call, startTestApp, type Reply, type TestApp } from '../helpers/app';
import { KEYS_DIR } from '../helpers/env';
import { createUser } from '../helpers/users';
import { login, type SignedIn } from '../helpers/auth';
import type { UserStatus } from '../../shared/models';

let t: TestApp;
let privateKey: KeyObject;
let jwks: { keys: (crypto.JsonWebKey & { kid: string })[] };
let attacker: { privateKey: KeyObject; publicKey: KeyObject };

beforeAll(async () => {
  t = await startTestApp();
  privateKey = crypto.createPrivateKey(fs.readFileSync(path.join(KEYS_DIR, 'jwt', 'key-001.pem'), 'utf8'));
  attacker = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const r = await call(`${t.url}/v1/auth/.well-known/jwks.json`);
  expect(r.status).toBe(200);
  jwks = r.body;
});
afterAll(async () => {
  await t.close();
});

// ---------------------------------------------------------------------------------------------
// JWS by hand.

type Json = Record<string, unknown>;

const b64u = (value: Json | Buffer | string) =>
  (Buffer.isBuffer(value) || typeof value === 'string' ? Buffer.from(value) : Buffer.from(JSON.stringify(value))).toString('base64url');

function decode(token: string): { header: Json; payload: Json; signingInput: string; signature: Buffer } {
  const [h, p, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

function rs256(header: Json, payload: Json, key: KeyObject = privateKey): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${crypto.sign('RSA-SHA256', Buffer.from(input), key).toString('base64url')}`;
}

function hs256(header: Json, payload: Json, secret: string | Buffer): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const HEADER = { alg: 'RS256', kid: 'key-001', typ: 'at+jwt' };
const now = () => Math.floor(Date.now() / 1000);

/** Perfect claims for a signed-in session, freshly dated. */
function claimsFor(s: SignedIn, overrides: Json = {}): Json {
  const iat = now();
  return {
    iss: 'user_service',
    aud: 'trading_platform',
    sub: s.id,
    sid: s.sessionId,
    jti: crypto.randomUUID(),
    iat,
    exp: iat + 900,
    roles: ['trader'],
    amr: ['pwd'],
    auth_time: iat,
    ...overrides,
  };
}

const probe = (headers: Record<string, string> = {}) => call(`${t.url}/v1/auth/sessions`, { headers });
const bearer = (token: string) => probe({ Authorization: `Bearer ${token}` });

function expectRefused(r: Reply, code = 'invalid_token'): void {
  expect({ status: r.status, type: r.body?.type }).toEqual({ status: 401, type: `urn:user-service:problem:${code}` });
  expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(r.headers.get('www-authenticate')).toBe('Bearer');
}

async function signedIn(status?: string): Promise<SignedIn> {
  return login(t.url, await createUser(t.context.db, status ? { status } : {}));
}

// ---------------------------------------------------------------------------------------------

describe('an issued access token', () => {
  test('verifies with node:crypto and the published JWKS, and carries the documented header and claims', async () => {
    const s = await signedIn();
    const { header, payload, signingInput, signature } = decode(s.accessToken);
    expect(header).toEqual({ alg: 'RS256', kid: expect.any(String), typ: 'at+jwt' });

    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    expect(jwk).toBeDefined();
    expect(jwk).toMatchObject({ kty: 'RSA', use: 'sig', alg: 'RS256' });
    const publicKey = crypto.createPublicKey({ key: jwk!, format: 'jwk' });
    expect(crypto.verify('RSA-SHA256', Buffer.from(signingInput), publicKey, signature)).toBe(true);
    // The same check with the streaming API, and a one-bit change breaks it.
    expect(crypto.createVerify('RSA-SHA256').update(signingInput).verify(publicKey, signature)).toBe(true);
    const flipped = Buffer.from(signature);
    flipped[0] ^= 1;
    expect(crypto.verify('RSA-SHA256', Buffer.from(signingInput), publicKey, flipped)).toBe(false);
    // The published key is the private key's public half.
    expect(publicKey.equals(crypto.createPublicKey(privateKey))).toBe(true);

    expect(payload).toEqual({
      iss: 'user_service',
      aud: 'trading_platform',
      sub: s.id,
      sid: s.sessionId,
      jti: expect.any(String),
      iat: expect.any(Number),
      exp: expect.any(Number),
      roles: ['trader'],
      amr: ['pwd'],
      auth_time: expect.any(Number),
    });
    expect(payload.exp).toBe((payload.iat as number) + 900);
    expect(Math.abs((payload.iat as number) - now())).toBeLessThanOrEqual(5);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(decode((await signedIn()).accessToken).payload.jti).not.toBe(payload.jti);

    expect((await bearer(s.accessToken)).status).toBe(200);
  });

  test('a hand-signed token with every claim right is accepted (the control for the forgeries below)', async () => {
    const s = await signedIn();
    const r = await bearer(rs256(HEADER, claimsFor(s)));
    expect(r.status).toBe(200);
    expect(r.body.sessions.find((x: { current: boolean }) => x.current)?.id).toBe(s.sessionId);
  });
});

describe('forged and broken tokens get 401 problem+json', () => {
  let s: SignedIn;
  let valid: Json;
  beforeAll(async () => {
    s = await signedIn();
    valid = claimsFor(s);
  });

  test('alg none, with and without a signature', async () => {
    for (const alg of ['none', 'None', 'NONE']) {
      const unsigned = `${b64u({ alg, typ: 'at+jwt', kid: 'key-001' })}.${b64u(valid)}.`;
      expectRefused(await bearer(unsigned));
    }
    // alg none carrying a genuine RS256 signature of the same bytes.
    const input = `${b64u({ alg: 'none', typ: 'at+jwt', kid: 'key-001' })}.${b64u(valid)}`;
    expectRefused(await bearer(`${input}.${crypto.sign('RSA-SHA256', Buffer.from(input), privateKey).toString('base64url')}`));
  });

  test('HS256 keyed with the RSA public key (key confusion)', async () => {
    const jwk = jwks.keys.find((k) => k.kid === 'key-001')!;
    const publicKey = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    const secrets = [
      publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      publicKey.export({ type: 'spki', format: 'der' }),
      fs.readFileSync(path.join(KEYS_DIR, 'jwt', 'key-001.pub.pem'), 'utf8'),
      JSON.stringify(jwk),
    ];
    for (const secret of secrets) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        const header = { alg, typ: 'at+jwt', kid: 'key-001' };
        const input = `${b64u(header)}.${b64u(valid)}`;
        const hash = `sha${alg.slice(2)}`;
        expectRefused(await bearer(`${input}.${crypto.createHmac(hash, secret).update(input).digest('base64url')}`));
      }
    }
    expectRefused(await bearer(hs256({ alg: 'HS256', typ: 'at+jwt' }, valid, secrets[0])));
  });

  test('other asymmetric algorithms over the same key are refused (RS256 is pinned)', async () => {
    for (const [alg, sign] of [
      ['RS512', (input: string) => crypto.sign('RSA-SHA512', Buffer.from(input), privateKey)],
      [
        'PS256',
        (input: string) =>
          crypto.sign('sha256', Buffer.from(input), { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }),
      ],
    ] as const) {
      const input = `${b64u({ ...HEADER, alg })}.${b64u(valid)}`;
      expectRefused(await bearer(`${input}.${sign(input).toString('base64url')}`));
    }
  });

  test('a tampered payload under the original signature', async () => {
    const other = await signedIn();
    const [h, , sig] = s.accessToken.split('.');
    const original = decode(s.accessToken).payload;
    for (const change of [
      { sub: other.id },
      { sub: other.id, sid: other.sessionId },
      { roles: ['trader', 'admin'] },
      { roles: ['admin'] },
      { exp: (original.exp as number) + 3600 },
      { amr: ['pwd', 'mfa'] },
    ]) {
      expectRefused(await bearer(`${h}.${b64u({ ...original, ...change })}.${sig}`));
    }
    // The untouched token still works: the refusals above were the tampering.
    expect((await bearer(s.accessToken)).status).toBe(200);
  });

  test('an expired token, otherwise perfect', async () => {
    const iat = now() - 1000;
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { iat, exp: now() - 60 }))));
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { iat, exp: iat + 900 }))));
  });

  test('a lifetime longer than ours, or an issue time in the future, though signed with our key (red team #11)', async () => {
    // Ten years ahead: a token no key of ours should ever have signed.
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { iat: now(), exp: now() + 10 * 365 * 86400 }))));
    // Just over the configured lifetime plus the 60 s allowance.
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { iat: now(), exp: now() + 900 + 61 }))));
    // Issued five minutes from now.
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { iat: now() + 300, exp: now() + 300 + 900 }))));
    // Within the allowances: a clock 30 s ahead of ours, the full lifetime.
    expect((await bearer(rs256(HEADER, claimsFor(s, { iat: now() + 30, exp: now() + 30 + 900 })))).status).toBe(200);
  });

  test('wrong or missing audience', async () => {
    for (const aud of ['other_platform', 'trading_platform ', 'TRADING_PLATFORM', ['other_platform'], '']) {
      expectRefused(await bearer(rs256(HEADER, claimsFor(s, { aud }))));
    }
    const { aud: _aud, ...withoutAud } = valid;
    expectRefused(await bearer(rs256(HEADER, withoutAud)));
  });

  test('wrong or missing issuer', async () => {
    for (const iss of ['evil_service', 'user_service ', 'USER_SERVICE', '']) {
      expectRefused(await bearer(rs256(HEADER, claimsFor(s, { iss }))));
    }
    const { iss: _iss, ...withoutIss } = valid;
    expectRefused(await bearer(rs256(HEADER, withoutIss)));
  });

  test('an unknown kid signed with another key, and a missing kid', async () => {
    expectRefused(await bearer(rs256({ ...HEADER, kid: 'key-999' }, valid, attacker.privateKey)));
    expectRefused(await bearer(rs256({ alg: 'RS256', typ: 'at+jwt' }, valid, attacker.privateKey)));
    // Our own key under a kid we do not publish is refused as well: the kid picks from our set only.
    expectRefused(await bearer(rs256({ ...HEADER, kid: 'key-999' }, valid)));
    for (const kid of ['../key-001', 'key-001.pub', '__proto__', 'constructor']) {
      expectRefused(await bearer(rs256({ ...HEADER, kid }, valid)));
    }
  });

  test('key material embedded in the header (jwk, jku, x5c) is never trusted', async () => {
    const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'key-001', alg: 'RS256', use: 'sig' };
    expectRefused(await bearer(rs256({ ...HEADER, jwk: attackerJwk }, valid, attacker.privateKey)));
    expectRefused(await bearer(rs256({ alg: 'RS256', typ: 'at+jwt', jwk: attackerJwk }, valid, attacker.privateKey)));
    expectRefused(await bearer(rs256({ ...HEADER, jku: 'http://127.0.0.1:1/jwks.json' }, valid, attacker.privateKey)));
    const der = attacker.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    expectRefused(await bearer(rs256({ ...HEADER, x5c: [der] }, valid, attacker.privateKey)));
  });

  test('a typ other than at+jwt, or none', async () => {
    for (const typ of ['JWT', 'jwt', 'at+JWT+x', 'application/jwt', 'refresh+jwt']) {
      expectRefused(await bearer(rs256({ ...HEADER, typ }, valid)));
    }
    expectRefused(await bearer(rs256({ alg: 'RS256', kid: 'key-001' }, valid)));
  });

  test('required claims missing, or roles/amr not arrays', async () => {
    for (const drop of ['sub', 'jti', 'exp', 'iat', 'roles', 'amr']) {
      const { [drop]: _dropped, ...rest } = valid;
      expectRefused(await bearer(rs256(HEADER, rest)));
    }
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { roles: 'trader' }))));
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { amr: 'pwd' }))));
  });

  test('unknown critical header parameters are refused', async () => {
    expectRefused(await bearer(rs256({ ...HEADER, crit: ['exp-policy'], 'exp-policy': 'lenient' }, valid)));
  });

  test("a signed token naming a session that is not the subject's", async () => {
    const other = await signedIn();
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { sid: other.sessionId }))));
    expectRefused(await bearer(rs256(HEADER, claimsFor(s, { sid: crypto.randomUUID() }))));
  });

  test('the refresh token presented as an access token', async () => {
    expectRefused(await bearer(s.refreshToken));
    expect((await bearer(s.accessToken)).status).toBe(200);
  });

  test('garbage, a missing or wrong scheme, an empty token', async () => {
    for (const garbage of [
      'garbage',
      'a.b.c',
      '..',
      `${s.accessToken}x`,
      `${s.accessToken}.extra`,
      s.accessToken.split('.').slice(0, 2).join('.'),
      '%%%.%%%.%%%',
      'x'.repeat(5000),
    ]) {
      expectRefused(await bearer(garbage));
    }
    // No credentials at all, or not in Bearer form: a plain 401 with the Bearer challenge.
    for (const Authorization of [s.accessToken, `Token ${s.accessToken}`, `Basic ${s.accessToken}`, 'Bearer', 'Bearer ', '']) {
      expectRefused(await probe({ Authorization }), 'unauthorized');
    }
    expectRefused(await probe(), 'unauthorized');
    // The scheme name is case-insensitive (RFC 9110), and the very same token still works.
    expect((await probe({ Authorization: `bearer ${s.accessToken}` })).status).toBe(200);
  });
});

describe('a valid token stops working when its session or user does', () => {
  test('logout: 401 on the very next request, also for a freshly hand-signed token of that session', async () => {
    const s = await signedIn();
    expect((await bearer(s.accessToken)).status).toBe(200);
    expect((await call(`${t.url}/v1/auth/logout`, { body: {}, headers: s.auth })).status).toBe(204);
    expectRefused(await bearer(s.accessToken));
    expectRefused(await bearer(rs256(HEADER, claimsFor(s))));
  });

  test('a session revoked from another session: 401 on the very next request', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user);
    const b = await login(t.url, user);
    expect((await bearer(b.accessToken)).status).toBe(200);
    expect((await call(`${t.url}/v1/auth/sessions/${b.sessionId}`, { method: 'DELETE', headers: a.auth })).status).toBe(204);
    expectRefused(await bearer(b.accessToken));
    expect((await bearer(a.accessToken)).status).toBe(200);
  });

  test('a session past its end, or idle too long, is refused', async () => {
    const ended = await signedIn();
    await t.context
      .db('sessions')
      .where({ id: ended.sessionId })
      .update({ expires_at: t.context.db.raw(`now() - interval '1 second'`) });
    expectRefused(await bearer(ended.accessToken));
    const idle = await signedIn();
    await t.context
      .db('sessions')
      .where({ id: idle.sessionId })
      .update({ last_active_at: t.context.db.raw(`now() - make_interval(secs => ?)`, [t.config.sessions.inactivitySeconds + 1]) });
    expectRefused(await bearer(idle.accessToken));
  });

  test('a user suspended or deleted straight in the database is refused once the liveness hint lapses (at once with it off)', async () => {
    // Through the service, deletion revokes the sessions and is refused at once (test/users). A
    // status changed behind the service's back is seen when the one-minute hint lapses; with
    // SESSION_LIVENESS_CACHE_SECONDS=0, at once.
    const strict = await startTestApp({ SESSION_LIVENESS_CACHE_SECONDS: '0' }, { databaseUrl: t.config.database.url });
    try {
      // An endpoint open to tokens without a session (services): those for people refuse them (403).
      const strictBearer = (token: string) => call(`${strict.url}/v1/authz/permissions`, { headers: { Authorization: `Bearer ${token}` } });
      for (const status of ['suspended', 'deleted']) {
        const s = await signedIn();
        const { sid: _sid, ...sessionless } = claimsFor(s);
        expect((await strictBearer(s.accessToken)).status).toBe(200);
        expect((await strictBearer(rs256(HEADER, sessionless))).status).toBe(200);
        await t.context
          .db('users')
          .where({ id: s.id })
          .update({ status: status as UserStatus });
        expectRefused(await strictBearer(s.accessToken));
        expectRefused(await strictBearer(rs256(HEADER, sessionless)));
      }
    } finally {
      await strict.close();
    }
  });
});
