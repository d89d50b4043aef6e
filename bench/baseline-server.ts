// The ceilings the product is compared with, in their own process: bare Koa routes doing the
// same intrinsic work as a product endpoint (its PostgreSQL and Redis round trips and its RS256
// signature or verification) with nothing else, and a no-op BullMQ worker on the same Redis and
// concurrency as the product's. Settings come as JSON in BENCH_BASELINE; it answers "ready" on
// stdout once it listens.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Koa from 'koa';
import pg from 'pg';
import { Redis } from 'ioredis';
import { Worker } from 'bullmq';
import nodemailer from 'nodemailer';
import { importPKCS8, importSPKI, jwtVerify, SignJWT } from 'jose';
import knex from 'knex';
import { countQuery, cursorOf, matchingEvents, positionOf, type AuditRow } from '../shared/audit/query';

export interface BaselineSettings {
  port: number;
  databaseUrl: string;
  redisUrl: string;
  /** Prefix of the baseline's Redis keys. */
  keyPrefix: string;
  /** Prefix and queue of the no-op BullMQ workers. */
  bullPrefix: string;
  workers: { queue: string; concurrency: number }[];
  keysDir: string;
  kid: string;
  issuer: string;
  audience: string;
  poolSize: number;
}

const settings = JSON.parse(process.env.BENCH_BASELINE ?? '{}') as BaselineSettings;

async function readBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

async function main(): Promise<void> {
  const privateKey = await importPKCS8(fs.readFileSync(path.join(settings.keysDir, `${settings.kid}.pem`), 'utf8'), 'RS256');
  const publicKey = await importSPKI(fs.readFileSync(path.join(settings.keysDir, `${settings.kid}.pub.pem`), 'utf8'), 'RS256');
  const pool = new pg.Pool({ connectionString: settings.databaseUrl, max: settings.poolSize });
  const redis = new Redis(settings.redisUrl, { enableOfflineQueue: true, maxRetriesPerRequest: 1 });
  const bull = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
  const verify = async (header: string | undefined) => {
    const token = header?.startsWith('Bearer ') ? header.slice(7) : '';
    const { payload } = await jwtVerify(token, publicKey, { algorithms: ['RS256'], issuer: settings.issuer, audience: settings.audience });
    return payload as { sub: string; sid?: string };
  };

  const app = new Koa();
  app.use(async (ctx) => {
    const route = `${ctx.method} ${ctx.path}`;
    if (route === 'GET /hello') {
      ctx.body = { hello: 'world' };
    } else if (route === 'POST /refresh') {
      ctx.body = await refresh(String(((await readBody(ctx.req)).refresh_token as string | undefined) ?? ''));
    } else if (route === 'POST /authz/check') {
      const [claims, body] = await Promise.all([verify(ctx.get('authorization')), readBody(ctx.req)]);
      const cached = await redis.get(`${settings.keyPrefix}perms:${claims.sub}`);
      ctx.body = { allowed: cached !== null && (JSON.parse(cached) as string[]).includes(String(body.permission)) };
    } else if (route === 'POST /smtp') {
      const { count, concurrency, port } = (await readBody(ctx.req)) as { count: number; concurrency: number; port: number };
      ctx.body = { seconds: await smtpAlone(count, concurrency, port) };
    } else if (route === 'GET /users/me') {
      ctx.body = await me(await verify(ctx.get('authorization')));
    } else if (route === 'GET /audit/events') {
      // Audit trail (issue 15)
      ctx.body = await auditEvents(await verify(ctx.get('authorization')), ctx.query as Record<string, string>);
    } else {
      ctx.status = 404;
    }
  });

  /** The refresh rotation's round trips: lock the row, rotate, record, read roles, sign, cache. */
  async function refresh(presented: string) {
    const hash = crypto.createHash('sha256').update(presented).digest('hex');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const {
        rows: [row],
      } = await client.query(
        `SELECT rt.id AS token_id, s.id AS session_id, s.user_id, s.amr, u.email
           FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id
          WHERE rt.token_hash = $1 AND rt.rotated_at IS NULL FOR UPDATE OF rt`,
        [hash],
      );
      if (!row) throw Object.assign(new Error('invalid refresh token'), { status: 401, expose: true });
      const next = crypto.randomBytes(32).toString('base64url');
      await client.query('UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1', [row.token_id]);
      await client.query('INSERT INTO refresh_tokens (session_id, token_hash, parent_id) VALUES ($1, $2, $3)', [
        row.session_id,
        crypto.createHash('sha256').update(next).digest('hex'),
        row.token_id,
      ]);
      await client.query('UPDATE sessions SET last_active_at = now() WHERE id = $1', [row.session_id]);
      const roles = (
        await client.query('SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = $1 ORDER BY r.name', [
          row.user_id,
        ])
      ).rows.map((r) => r.name as string);
      const access = await new SignJWT({ roles, amr: row.amr, sid: row.session_id })
        .setProtectedHeader({ alg: 'RS256', kid: settings.kid, typ: 'at+jwt' })
        .setIssuer(settings.issuer)
        .setAudience(settings.audience)
        .setSubject(row.user_id)
        .setJti(crypto.randomUUID())
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(privateKey);
      const pair = { access_token: access, refresh_token: next, token_type: 'Bearer', session_id: row.session_id, roles };
      await redis.set(`${settings.keyPrefix}successor:${hash}`, JSON.stringify(pair), 'EX', 10);
      await client.query('COMMIT');
      return pair;
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * The SMTP exchange alone: `count` messages of an email's size through a pooled nodemailer
   * transport at the email queue's concurrency, no queue, no database. Seconds taken.
   */
  async function smtpAlone(count: number, concurrency: number, port: number): Promise<number> {
    const transport = nodemailer.createTransport({
      pool: true,
      maxConnections: concurrency,
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
    });
    const text = 'A new sign-in to your account. '.repeat(10);
    const t0 = process.hrtime.bigint();
    let sent = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (sent++ < count)
          await transport.sendMail({
            from: 'bench@bench.test',
            to: 'user@bench.test',
            subject: 'New sign-in',
            text,
            html: `<p>${text}</p>`,
          });
      }),
    );
    transport.close();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  }

  /** What GET /v1/users/me needs: a live session, the user, roles, effective permissions, accounts. */
  async function me(claims: { sub: string; sid?: string }) {
    const live = await pool.query(
      `SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
          AND s.last_active_at > now() - interval '14 days' AND u.status IN ('active', 'pending_verification')`,
      [claims.sid, claims.sub],
    );
    if (!live.rowCount) throw Object.assign(new Error('invalid token'), { status: 401, expose: true });
    const [user, roles, permissions, accounts] = await Promise.all([
      pool.query(
        'SELECT id, email, name, phone, timezone, locale, avatar_url, status, email_verified, mfa_enabled, created_at FROM users WHERE id = $1',
        [claims.sub],
      ),
      pool.query('SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = $1 ORDER BY r.name', [claims.sub]),
      pool.query(
        `WITH RECURSIVE tree AS (
           SELECT r.id, r.inherits_role_id FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = $1
           UNION SELECT p.id, p.inherits_role_id FROM tree t JOIN roles p ON p.id = t.inherits_role_id)
         SELECT DISTINCT p.name FROM tree t JOIN role_permissions rp ON rp.role_id = t.id JOIN permissions p ON p.id = rp.permission_id
         UNION SELECT p.name FROM user_permissions up JOIN permissions p ON p.id = up.permission_id
          WHERE up.user_id = $1 AND (up.expires_at IS NULL OR up.expires_at > now())`,
        [claims.sub],
      ),
      pool.query('SELECT id, broker, nickname, status, api_key_masked FROM trading_accounts WHERE user_id = $1 AND unlinked_at IS NULL', [
        claims.sub,
      ]),
    ]);
    return {
      ...user.rows[0],
      roles: roles.rows.map((r) => r.name),
      permissions: permissions.rows.map((p) => p.name),
      trading_accounts: accounts.rows,
    };
  }

  // Audit trail (issue 15): the very statements of GET /v1/audit/events, built by the same query
  // object, run on a plain pool; a page of envelopes with the total and the next cursor.
  const sql = knex({ client: 'pg' });
  async function auditEvents(claims: { sub: string }, query: Record<string, string>) {
    const limit = Number(query.limit ?? 50);
    const filter = { subjectId: claims.sub };
    const page = matchingEvents(sql, filter, { limit: limit + 1, after: query.cursor ? positionOf(query.cursor) : undefined })
      .toSQL()
      .toNative();
    const count = countQuery(sql, filter).toSQL().toNative();
    const [rows, total] = await Promise.all([
      pool.query<AuditRow>(page.sql, page.bindings as unknown[]),
      pool.query<{ count: string }>(count.sql, count.bindings as unknown[]),
    ]);
    const shown = rows.rows.slice(0, limit);
    return {
      events: shown.map((r) => ({
        id: r.id,
        type: r.type,
        occurred_at: r.occurred_at.toISOString(),
        user_id: r.user_id,
        actor_id: r.actor_id,
        ip: r.ip,
        user_agent: r.user_agent,
        data: r.data,
      })),
      total: Number(total.rows[0].count),
      limit,
      offset: 0,
      next_cursor: rows.rows.length > limit ? cursorOf(shown[shown.length - 1]) : null,
    };
  }

  const workers = settings.workers.map(
    ({ queue, concurrency }) =>
      new Worker(queue, () => Promise.resolve(undefined), { connection: bull, prefix: settings.bullPrefix, concurrency }),
  );
  const server = http.createServer(app.callback());
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(settings.port, '127.0.0.1', resolve));
  process.stdout.write('ready\n');

  const stop = async () => {
    server.close();
    await Promise.allSettled(workers.map((w) => w.close()));
    await Promise.allSettled([pool.end(), redis.quit(), bull.quit()]);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((err) => {
  process.stderr.write(`baseline server failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
