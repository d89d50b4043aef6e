// Request and response schemas of the admin user endpoints (/v1/admin/users).
import { Type, type Static } from '@sinclair/typebox';
import { Strict } from '../http/route';
import { SUSPENSION_REASONS, type SuspensionReason } from '../../shared/users/lifecycle';
import type { UserStatus } from '../../shared/models';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableDateTime = Type.Union([DateTime, Type.Null()]);
/** A string of a fixed set, as `enum` (so a refusal lists the values). */
const StringEnum = <T extends string>(values: readonly T[], description: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], description });
const STATUSES: readonly UserStatus[] = ['pending_verification', 'active', 'suspended', 'deleted'];
const Status = StringEnum(STATUSES, 'Account status');
const RoleName = Type.String({ pattern: '^[a-z_]{1,50}$', description: 'A role name (viewer, trader, admin)' });

export const SearchQuery = Strict({
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'An email prefix, or part of a name (case-insensitive)' })),
  status: Type.Optional(Status),
  role: Type.Optional(RoleName),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'next_cursor of the previous page' })),
});

export const UserItem = Type.Object({
  id: Uuid,
  email: Type.String(),
  name: Type.String(),
  status: Status,
  roles: Type.Array(Type.String()),
  mfa_enabled: Type.Boolean(),
  created_at: DateTime,
  last_login_at: NullableDateTime,
});

export const UserPage = Type.Object({
  users: Type.Array(UserItem),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last' }),
});

export const UserParams = Strict({ user_id: Uuid });
export const SessionParams = Strict({ user_id: Uuid, session_id: Uuid });
export const RoleParams = Strict({ user_id: Uuid, role: RoleName });

export const UserDetail = Type.Object({
  id: Uuid,
  email: Type.String(),
  email_verified: Type.Boolean(),
  name: Type.String(),
  phone: NullableString,
  timezone: Type.String(),
  locale: Type.String(),
  avatar_url: NullableString,
  status: Status,
  has_password: Type.Boolean({ description: 'False for accounts that sign in with Google only' }),
  created_at: DateTime,
  updated_at: DateTime,
  last_login_at: NullableDateTime,
  roles: Type.Array(Type.String()),
  direct_grants: Type.Array(
    Type.Object({
      id: Uuid,
      permission: Type.String(),
      expires_at: NullableDateTime,
      granted_by: Type.Union([Uuid, Type.Null()]),
      granted_at: DateTime,
    }),
  ),
  identities: Type.Array(
    Type.Object({ provider: Type.String(), email: NullableString, created_at: DateTime, last_used_at: NullableDateTime }),
  ),
  session_count: Type.Integer({ description: 'Live sessions' }),
  trading_accounts: Type.Array(
    Type.Object({ id: Uuid, broker: Type.String(), nickname: NullableString, status: Type.String(), created_at: DateTime }),
    { description: 'No credential, masked or not' },
  ),
  mfa: Type.Object({ enabled: Type.Boolean(), enabled_at: NullableDateTime, backup_codes_remaining: Type.Integer() }),
});

export const SuspendBody = Strict(
  { reason_code: StringEnum<SuspensionReason>(SUSPENSION_REASONS, 'A code, never free text') },
  { examples: [{ reason_code: 'fraud_suspected' }] },
);
/** The acts that take no input accept an empty body (or none). */
export const EmptyBody = Strict({}, { examples: [{}] });
export const StatusAnswer = Type.Object({ id: Uuid, status: Status });

export const Queued = Type.Object({ status: Type.Literal('queued') });

export const RoleBody = Strict({ role: RoleName }, { examples: [{ role: 'admin' }] });
export const RolesAnswer = Type.Object({ roles: Type.Array(Type.String()) });

export type UserPageBody = Static<typeof UserPage>;
export type UserDetailBody = Static<typeof UserDetail>;
