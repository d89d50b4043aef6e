// The admin user answers, built field by field from what the services return.
import type { AdminUserDetail, UserListItem } from '../../shared/users/admin-users';
import type { UserDetailBody, UserPageBody } from './schemas';

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
const isoOf = (d: Date) => new Date(d).toISOString();

export function userPageBody(users: UserListItem[], nextCursor: string | null): UserPageBody {
  return {
    users: users.map((u) => ({
      id: u.id,
      email: u.email,
      name: u.name,
      status: u.status,
      roles: u.roles,
      mfa_enabled: u.mfa_enabled,
      created_at: isoOf(u.created_at),
      last_login_at: iso(u.last_login_at),
    })),
    next_cursor: nextCursor,
  };
}

export function userDetailBody(detail: AdminUserDetail): UserDetailBody {
  const { user } = detail;
  return {
    id: user.id,
    email: user.email,
    email_verified: user.email_verified,
    name: user.name,
    phone: user.phone,
    timezone: user.timezone,
    locale: user.locale,
    avatar_url: user.avatar_url,
    status: user.status,
    has_password: user.has_password,
    created_at: isoOf(user.created_at),
    updated_at: isoOf(user.updated_at),
    last_login_at: iso(user.last_login_at),
    roles: detail.roles,
    direct_grants: detail.grants.map((g) => ({
      id: g.id,
      permission: g.permission,
      expires_at: iso(g.expires_at),
      granted_by: g.granted_by,
      granted_at: isoOf(g.granted_at),
    })),
    identities: detail.identities.map((i) => ({
      provider: i.provider,
      email: i.email,
      created_at: isoOf(i.linkedAt),
      last_used_at: iso(i.lastUsedAt),
    })),
    session_count: detail.sessionCount,
    trading_accounts: detail.tradingAccounts.map((a) => ({
      id: a.id,
      broker: a.broker,
      nickname: a.nickname,
      status: a.status,
      created_at: isoOf(a.created_at),
    })),
    mfa: { enabled: detail.mfa.enabled, enabled_at: iso(detail.mfa.enabled_at), backup_codes_remaining: detail.mfa.backup_codes_remaining },
  };
}
