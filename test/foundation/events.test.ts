// The transactional outbox: an event exists on the stream if and only if its transaction
// committed, and exactly once, with two relays racing, with a relay that dies midway, and after
// Redis lost the stream.
import type { Knex } from 'knex';
import { knex as knexFactory } from 'knex';
import { startTestApp, type TestApp } from '../helpers/app';
import { recordEvent } from '../../shared/events/outbox';
import { relayAll, relayBatch, relaySettingsFor, type RelaySettings } from '../../shared/events/relay';
import { scanKeys, unlinkKeys } from '../../shared/redis';

let t: TestApp;
let settings: RelaySettings;
beforeAll(async () => {
  t = await startTestApp();
  settings = { ...relaySettingsFor(t.config), relayBatchSize: 50 };
});
afterAll(() => t.close());

async function streamEntries(): Promise<{ id: string; type: string; payload: any }[]> {
  const entries = await t.context.redis.xrange(t.config.events.streamName, '-', '+');
  return entries.map(([, fields]) => {
    const map = Object.fromEntries(fields.reduce<[string, string][]>((acc, v, i, a) => (i % 2 ? acc : [...acc, [v, a[i + 1]]]), []));
    return { id: map.id, type: map.type, occurred_at: map.occurred_at, payload: JSON.parse(map.payload) };
  });
}

async function writeEvents(n: number, userId = '00000000-0000-4000-8000-000000000001'): Promise<string[]> {
  return t.context.db.transaction(async (trx) => {
    const ids: string[] = [];
    for (let i = 0; i < n; i += 1)
      ids.push(
        await recordEvent(trx, { type: 'user.updated', userId, data: { fields: ['name'], i } }, { ip: '203.0.113.7', userAgent: 'jest' }),
      );
    return ids;
  });
}

test('an event committed reaches the stream once, with the envelope of DESIGN.md', async () => {
  const [id] = await writeEvents(1);
  await relayAll(t.context.db, t.context.redis, settings);
  await relayAll(t.context.db, t.context.redis, settings);
  const entries = (await streamEntries()).filter((e) => e.id === id);
  expect(entries).toHaveLength(1);
  expect(entries[0].type).toBe('user.updated');
  expect(entries[0].payload).toEqual({
    id,
    type: 'user.updated',
    occurred_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
    user_id: '00000000-0000-4000-8000-000000000001',
    actor_id: '00000000-0000-4000-8000-000000000001',
    ip: '203.0.113.7',
    user_agent: 'jest',
    data: { fields: ['name'], i: 0 },
  });
  const row = (await t.context.db('events').where({ id }).first())!;
  expect(row.published_at).not.toBeNull();
});

test('an event written in a transaction that rolls back never reaches the stream', async () => {
  let id = '';
  await expect(
    t.context.db.transaction(async (trx) => {
      id = await recordEvent(trx, { type: 'user.deleted', userId: '00000000-0000-4000-8000-000000000002' });
      throw new Error('the change failed');
    }),
  ).rejects.toThrow('the change failed');
  await relayAll(t.context.db, t.context.redis, settings);
  expect(await t.context.db('events').where({ id }).first()).toBeUndefined();
  expect((await streamEntries()).filter((e) => e.id === id)).toHaveLength(0);
});

test('two relays running at once publish each event exactly once', async () => {
  const ids = await writeEvents(300);
  await Promise.all([
    relayAll(t.context.db, t.context.redis, settings),
    relayAll(t.context.db, t.context.redis, settings),
    relayAll(t.context.db, t.context.redis, settings),
  ]);
  const published = (await streamEntries()).filter((e) => ids.includes(e.id));
  expect(published).toHaveLength(300);
  expect(new Set(published.map((e) => e.id)).size).toBe(300);
  expect(await t.context.db('events').whereIn('id', ids).whereNull('published_at').count('* as n').first()).toEqual({ n: 0 });
});

test('a relay that dies after publishing, before recording it, causes no duplicate', async () => {
  const ids = await writeEvents(5);
  // A relay on its own connection, so that connection can be killed like a crashed process.
  const relayDb: Knex = knexFactory({
    client: 'pg',
    connection: { connectionString: t.config.database.url, application_name: 'relay-under-test' },
    pool: { min: 0, max: 1 },
  });
  const blocker = await t.context.db.transaction();
  try {
    // SHARE mode lets the relay lock rows and publish, but blocks its UPDATE: it stops right
    // between XADD and commit.
    await blocker.raw('LOCK TABLE events IN SHARE MODE');
    const dying = relayBatch(relayDb, t.context.redis, settings).catch((err: Error) => err);
    for (let i = 0; i < 200 && (await streamEntries()).filter((e) => ids.includes(e.id)).length < 5; i += 1)
      await new Promise((r) => setTimeout(r, 25));
    await t.context.db.raw(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'relay-under-test'`);
    expect(await dying).toBeInstanceOf(Error);
  } finally {
    await blocker.rollback();
    await relayDb.destroy();
  }
  expect(await t.context.db('events').whereIn('id', ids).whereNull('published_at').count('* as n').first()).toEqual({ n: 5 });
  await relayAll(t.context.db, t.context.redis, settings);
  const published = (await streamEntries()).filter((e) => ids.includes(e.id));
  expect(published.map((e) => e.id).sort()).toEqual([...ids].sort());
  expect(await t.context.db('events').whereIn('id', ids).whereNull('published_at').count('* as n').first()).toEqual({ n: 0 });
});

/** What a Redis restarted empty no longer has: the stream, the "published" markers, the epoch key. */
async function loseTheStream(): Promise<void> {
  const markers = await scanKeys(t.context.redis, `${settings.markerPrefix}*`);
  await unlinkKeys(t.context.redis, [settings.streamName, settings.epochKey, ...markers]);
}

test('after Redis lost the stream, the newest published events are put back once, in order, before new ones', async () => {
  const before = await writeEvents(30);
  await relayAll(t.context.db, t.context.redis, settings);
  await loseTheStream();
  const after = await writeEvents(3);
  // A stream kept to 20 entries gets the newest 20 published events back, not the whole table.
  const kept = { ...settings, streamMaxLen: 20, relayBatchSize: 7 };

  expect(await relayAll(t.context.db, t.context.redis, kept)).toEqual({ published: 3, republished: 20 });
  expect((await streamEntries()).map((e) => e.id)).toEqual([...before.slice(-20), ...after]);
  // The epoch key is back: the next run republishes nothing.
  expect(await relayAll(t.context.db, t.context.redis, kept)).toEqual({ published: 0, republished: 0 });

  // Three relays meeting the same loss at once: each event is added once.
  await loseTheStream();
  await Promise.all([1, 2, 3].map(() => relayAll(t.context.db, t.context.redis, kept)));
  const again = (await streamEntries()).map((e) => e.id);
  expect(again).toHaveLength(20);
  expect(new Set(again)).toEqual(new Set([...before.slice(-17), ...after]));
});

test('the events table is append-only', async () => {
  const [id] = await writeEvents(1);
  await expect(t.context.db('events').where({ id }).del()).rejects.toThrow(/append-only/);
  await expect(t.context.db('events').where({ id }).update({ type: 'user.deleted' })).rejects.toThrow(/append-only/);
  await t.context.db('events').where({ id }).update({ published_at: new Date() });
  await expect(
    t.context
      .db('events')
      .where({ id })
      .update({ published_at: new Date(0) }),
  ).rejects.toThrow(/append-only/);
});

test('the worker relays committed events to the stream on its own', async () => {
  await t.startWorkers();
  const [id] = await writeEvents(1);
  for (let i = 0; i < 200; i += 1) {
    if ((await streamEntries()).some((e) => e.id === id)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect((await streamEntries()).filter((e) => e.id === id)).toHaveLength(1);
});
