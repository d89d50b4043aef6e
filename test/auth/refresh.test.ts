// Refresh-token rotation: every use rotates; a rotated token presented again is reuse and ends
// every session of the user; within the grace window concurrent refreshes share one successor
// pair; sessions end after inactivity and at their absolute expiry.
import { call, eventually, startTestApp, type TestApp } from '../helpers/app';
import { createUser } from '../helpers/users';
import { login, streamEvents } from '../helpers/auth';

const refresh = (t: TestApp, token: string) => call(`${t.url}/v1/auth/refresh`, { body: { refresh_token: token } });

describe('with the default grace window (10 s)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RATELIMIT_REFRESH_ATTEMPTS: '1000' });
  });
  afterAll(() => t.close());

  test('every refresh rotates the token and returns a working pair', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user);
    const r1 = await refresh(t, a.refreshToken);
    expect(r1.status).toBe(200);
    expect(r1.body.refresh_token).not.toBe(a.refreshToken);
    expect(r1.body.session_id).toBe(a.sessionId);
    expect(r1.headers.get('set-cookie')).toContain(`__Secure-refresh_token=${r1.body.refresh_token}`);
    const r2 = await refresh(t, r1.body.refresh_token);
    expect(r2.status).toBe(200);
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: { Authorization: `Bearer ${r2.body.access_token}` } })).status).toBe(200);
    expect(r2.body.user.roles).toEqual(['trader']);
    // One chain: each token rotated once, its successor pointing back at it, the last one live.
    const rows: { id: string; parent_id: string | null; rotated_at: Date | null }[] = await t.context
      .db('refresh_tokens')
      .where({ session_id: a.sessionId })
      .select('id', 'parent_id', 'rotated_at');
    const first = rows.find((r) => r.parent_id === null)!;
    const second = rows.find((r) => r.parent_id === first.id)!;
    const third = rows.find((r) => r.parent_id === second.id)!;
    expect(rows).toHaveLength(3);
    expect([first.rotated_at, second.rotated_at, third.rotated_at].map(Boolean)).toEqual([true, true, false]);
    // Only hashes are stored.
    const stored = JSON.stringify(await t.context.db('refresh_tokens').select());
    for (const token of [a.refreshToken, r1.body.refresh_token, r2.body.refresh_token]) expect(stored).not.toContain(token);
  });

  test('the refresh cookie works when the body has no token', async () => {
    const a = await login(t.url, await createUser(t.context.db));
    const r = await call(`${t.url}/v1/auth/refresh`, { body: {}, headers: { Cookie: `__Secure-refresh_token=${a.refreshToken}` } });
    expect(r.status).toBe(200);
    expect((await call(`${t.url}/v1/auth/refresh`, { body: {} })).status).toBe(401);
  });

  test('ten concurrent refreshes with one token all get the same successor pair', async () => {
    const a = await login(t.url, await createUser(t.context.db));
    const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(t, a.refreshToken)));
    expect(answers.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(new Set(answers.map((r) => r.body.refresh_token)).size).toBe(1);
    expect(new Set(answers.map((r) => r.body.access_token)).size).toBe(1);
    // The shared successor works, and the session was not revoked.
    expect((await refresh(t, answers[0].body.refresh_token)).status).toBe(200);
    expect(
      await t.context
        .db('refresh_tokens')
        .join('sessions', 'sessions.id', 'refresh_tokens.session_id')
        .where('sessions.id', a.sessionId)
        .count('* as n')
        .first(),
    ).toEqual({ n: 3 });
  });

  test('within the window only the immediate parent of the current token gets the successor; an older one is reuse (red team #10)', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user);
    const b = await refresh(t, a.refreshToken);
    const c = await refresh(t, b.body.refresh_token);
    expect([b.status, c.status]).toEqual([200, 200]);
    // B is the parent of the current token C: the same pair again.
    const again = await refresh(t, b.body.refresh_token);
    expect(again.body.refresh_token).toBe(c.body.refresh_token);
    // A was rotated to B, which was rotated in turn: A is a stolen copy.
    const stale = await refresh(t, a.refreshToken);
    expect(stale.status).toBe(401);
    expect((await t.context.db('sessions').where({ id: a.sessionId }).first())!.revoked_reason).toBe('refresh_token_reuse');
    expect((await refresh(t, c.body.refresh_token)).status).toBe(401);
  });

  test('an unknown token is 401 and revokes nothing', async () => {
    const a = await login(t.url, await createUser(t.context.db));
    expect((await refresh(t, 'A'.repeat(43))).status).toBe(401);
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: a.auth })).status).toBe(200);
  });
});

describe('reuse detection (grace window off)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '0', RATELIMIT_REFRESH_ATTEMPTS: '1000' });
  });
  afterAll(() => t.close());

  test('a rotated token presented again is 401, and every session of the user dies, the newest token too', async () => {
    const user = await createUser(t.context.db);
    const a = await login(t.url, user);
    const other = await login(t.url, user);
    const rotated = await refresh(t, a.refreshToken);
    expect(rotated.status).toBe(200);

    const reused = await refresh(t, a.refreshToken);
    expect(reused.status).toBe(401);
    expect(reused.headers.get('content-type')).toMatch(/problem\+json/);
    expect((await refresh(t, rotated.body.refresh_token)).status).toBe(401);
    expect((await refresh(t, other.refreshToken)).status).toBe(401);
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: { Authorization: `Bearer ${rotated.body.access_token}` } })).status).toBe(
      401,
    );
    expect((await call(`${t.url}/v1/auth/sessions`, { headers: other.auth })).status).toBe(401);
    const sessions = await t.context.db('sessions').where({ user_id: user.id });
    expect(sessions.map((s) => s.revoked_reason)).toEqual(['refresh_token_reuse', 'refresh_token_reuse']);

    await t.startWorkers();
    const events = await eventually(async () => {
      const revoked = (await streamEvents(t.context.redis, t.config.events.streamName)).filter(
        (e) => e.type === 'session.revoked' && e.payload.user_id === user.id,
      );
      return revoked.length === 2 ? revoked : null;
    });
    expect(events.map((e) => e.payload.data.reason)).toEqual(['refresh_token_reuse', 'refresh_token_reuse']);
    expect(events.map((e) => e.payload.data.session_id).sort()).toEqual([a.sessionId, other.sessionId].sort());
    for (const e of events) expect(e.raw).not.toContain(a.refreshToken);
  });

  test('of ten concurrent refreshes with one token exactly one succeeds', async () => {
    const a = await login(t.url, await createUser(t.context.db));
    const answers = await Promise.all(Array.from({ length: 10 }, () => refresh(t, a.refreshToken)));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 401)).toHaveLength(9);
  });
});

describe('grace window expiry', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ REFRESH_TOKEN_REUSE_INTERVAL_SECONDS: '1', RATELIMIT_REFRESH_ATTEMPTS: '1000' });
  });
  afterAll(() => t.close());

  test('the same token after the window is reuse', async () => {
    const a = await login(t.url, await createUser(t.context.db));
    const first = await refresh(t, a.refreshToken);
    const replay = await refresh(t, a.refreshToken);
    expect(replay.body.refresh_token).toBe(first.body.refresh_token);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await refresh(t, a.refreshToken)).status).toBe(401);
    expect((await refresh(t, first.body.refresh_token)).status).toBe(401);
  });
});

describe('session lifetimes (short configured times)', () => {
  test('a session unused for the inactivity period ends; using it keeps it alive', async () => {
    // 3 seconds of inactivity.
    const t = await startTestApp({ REDIS_SESSION_INACTIVITY_DAYS: String(3 / 86400), RATELIMIT_REFRESH_ATTEMPTS: '1000' });
    try {
      const idle = await login(t.url, await createUser(t.context.db));
      const busy = await login(t.url, await createUser(t.context.db));
      let token = busy.refreshToken;
      for (let i = 0; i < 3; i += 1) {
        await new Promise((r) => setTimeout(r, 1200));
        const r = await refresh(t, token);
        expect(r.status).toBe(200);
        token = r.body.refresh_token;
      }
      // idle has now been unused for more than 3 seconds.
      expect((await refresh(t, idle.refreshToken)).status).toBe(401);
      expect((await call(`${t.url}/v1/auth/sessions`, { headers: idle.auth })).status).toBe(401);
      expect((await refresh(t, token)).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  test('a session ends at its absolute expiry however active it is', async () => {
    // Non-persistent sessions live 3 seconds; persistent ones a day.
    const t = await startTestApp({ SESSION_TTL_HOURS: String(3 / 3600), REDIS_SESSION_TTL_DAYS: '1', RATELIMIT_REFRESH_ATTEMPTS: '1000' });
    try {
      const user = await createUser(t.context.db);
      const short = await login(t.url, user);
      const persistent = await login(t.url, user, { remember_me: true });
      let token = short.refreshToken;
      let status = 200;
      for (let i = 0; i < 5 && status === 200; i += 1) {
        await new Promise((r) => setTimeout(r, 1000));
        const r = await refresh(t, token);
        status = r.status;
        if (status === 200) token = r.body.refresh_token;
      }
      expect(status).toBe(401);
      expect((await refresh(t, persistent.refreshToken)).status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('the refresh cookie against cross-site requests', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ RATELIMIT_REFRESH_ATTEMPTS: '1000' });
  });
  afterAll(() => t.close());

  test('a form post carrying the cookie is refused (JSON only)', async () => {
    const a = await login(t.url, await createUser(t.context.db));
    const r = await call(`${t.url}/v1/auth/refresh`, {
      method: 'POST',
      rawBody: 'x=1',
      headers: { 'content-type': 'application/x-www-form-urlencoded', Cookie: `__Secure-refresh_token=${a.refreshToken}` },
    });
    expect(r.status).toBe(415);
    expect((await refresh(t, a.refreshToken)).status).toBe(200);
  });

  test('a cookie refresh from a page of another origin is refused; from a configured one it works', async () => {
    const a = await login(t.url, await createUser(t.context.db));
    const cookie = `__Secure-refresh_token=${a.refreshToken}`;
    const evil = await call(`${t.url}/v1/auth/refresh`, { body: {}, headers: { Cookie: cookie, Origin: 'https://evil.example' } });
    expect(evil.status).toBe(403);
    const good = await call(`${t.url}/v1/auth/refresh`, { body: {}, headers: { Cookie: cookie, Origin: 'http://localhost:3000' } });
    expect(good.status).toBe(200);
  });
});
