// What support sees of accounts (GET /v1/admin/users and /{id}): a search paged by keyset, newest
// first, and one account in full. Reads only; the acts are in ./lifecycle.ts.
import type { Knex } from 'knex';
import type { Context } from '../context';
import { NotFoundError } from '../errors';
import { decodeCursor, encodeCursor, microsecondsSql } from '../keyset-cursor';
import type { UserStatus } from '../models';
import { listRoleNames } from '../authz/permissions';
import { whereLive } from '../auth/sessions';
import { listIdentities, type LinkedIdentity } from '../oauth/identities';

export interface UserSearch {
  /** An email prefix, or part of a name; case-insensitive. */
  q?: string;
  status?: UserStatus;
  role?: string;
  limit: number;
  cursor?: string;
}

export interface UserListItem {
  id: string;
  email: string;
  name: string;
  status: UserStatus;
  roles: string[];
  mfa_enabled: boolean;
  created_at: Date;
  last_login_at: Date | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Keyset pagination on (created_at, id), newest first: accounts created while a client pages sort
 * before its cursor, so they never shift the pages it has still to read.
 */
export async function searchUsers(
  app: Pick<Context, 'db'>,
  search: UserSearch,
): Promise<{ users: UserListItem[]; nextCursor: string | null }> {
  const { db } = app;
  const cursor = search.cursor ? decodeCursor(search.cursor, UUID) : null;
  const rows = await db('users as u')
    .where('u.kind', 'person')
    .modify((query: Knex.QueryBuilder) => {
      if (search.status) query.where('u.status', search.status);
      else query.whereNot('u.status', 'deleted');
      if (search.q) {
        const term = escapeLike(search.q.trim());
        query.where((w) => w.whereRaw('u.email ILIKE ?', [`${term}%`]).orWhereRaw('u.name ILIKE ?', [`%${term}%`]));
      }
      if (search.role) {
        query.whereExists(
          db('user_roles as ur').join('roles as r', 'r.id', 'ur.role_id').whereRaw('ur.user_id = u.id').where('r.name', search.role),
        );
      }
      if (cursor) query.whereRaw('(u.created_at, u.id) < (?::timestamptz, ?::uuid)', [cursor.at, cursor.key]);
    })
    .orderBy([
      { column: 'u.created_at', order: 'desc' },
      { column: 'u.id', order: 'desc' },
    ])
    .limit(search.limit + 1)
    .select<(UserListItem & { cursor_at: string })[]>(
      'u.id',
      'u.email',
      'u.name',
      'u.status',
      'u.mfa_enabled',
      'u.created_at',
      'u.last_login_at',
      db.raw(`${microsecondsSql('u.created_at')} AS cursor_at`),
      db.raw('ARRAY(SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id = u.id ORDER BY r.name) AS roles'),
    );
  const page = rows.slice(0, search.limit);
  const last = page[page.length - 1];
  const nextCursor = rows.length > search.limit && last ? encodeCursor({ at: last.cursor_at, key: last.id }) : null;
  return { users: page, nextCursor };
}

export interface AdminUserDetail {
  user: {
    id: string;
    email: string;
    email_verified: boolean;
    name: string;
    phone: string | null;
    timezone: string;
    locale: string;
    avatar_url: string | null;
    status: UserStatus;
    has_password: boolean;
    created_at: Date;
    updated_at: Date;
    last_login_at: Date | null;
  };
  roles: string[];
  grants: { id: string; permission: string; expires_at: Date | null; granted_by: string | null; granted_at: Date }[];
  identities: LinkedIdentity[];
  sessionCount: number;
  /** No credential, masked or not: support needs to know the accounts exist and their state. */
  tradingAccounts: { id: string; broker: string; nickname: string | null; status: string; created_at: Date }[];
  mfa: { enabled: boolean; enabled_at: Date | null; backup_codes_remaining: number };
}

export async function adminUserDetail(app: Pick<Context, 'db' | 'config'>, userId: string): Promise<AdminUserDetail> {
  const { db } = app;
  const user = await db('users')
    .where({ id: userId, kind: 'person' })
    .first(
      'id',
      'email',
      'email_verified',
      'name',
      'phone',
      'timezone',
      'locale',
      'avatar_url',
      'status',
      'password_hash',
      'mfa_enabled',
      'mfa_enabled_at',
      'created_at',
      'updated_at',
      'last_login_at',
    );
  if (!user) throw new NotFoundError('No such user.');
  const [roles, grants, identities, sessions, tradingAccounts, backupCodes] = await Promise.all([
    listRoleNames(db, userId),
    db('user_permissions as up')
      .join('permissions as p', 'p.id', 'up.permission_id')
      .where('up.user_id', userId)
      .where((w) => w.whereNull('up.expires_at').orWhere('up.expires_at', '>', db.fn.now()))
      .orderBy('up.granted_at', 'desc')
      .select('up.id', 'p.name as permission', 'up.expires_at', 'up.granted_by', 'up.granted_at'),
    listIdentities(db, userId),
    whereLive(db('sessions').where({ user_id: userId }), app.config.sessions.inactivitySeconds).count<{ n: string }[]>('* as n'),
    db('trading_accounts')
      .where({ user_id: userId })
      .whereNull('unlinked_at')
      .orderBy('created_at', 'desc')
      .select('id', 'broker', 'nickname', 'status', 'created_at'),
    db('mfa_backup_codes').where({ user_id: userId }).whereNull('used_at').count<{ n: string }[]>('* as n'),
  ]);
  const { password_hash: passwordHash, mfa_enabled: mfaEnabled, mfa_enabled_at: mfaEnabledAt, ...profile } = user;
  return {
    user: { ...profile, has_password: !!passwordHash },
    roles,
    grants: grants as AdminUserDetail['grants'],
    identities,
    sessionCount: Number(sessions[0]?.n ?? 0),
    tradingAccounts,
    mfa: { enabled: mfaEnabled, enabled_at: mfaEnabledAt, backup_codes_remaining: mfaEnabled ? Number(backupCodes[0]?.n ?? 0) : 0 },
  };
}
