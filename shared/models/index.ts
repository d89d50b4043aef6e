// Objection models, one per table. Services use them for row-shaped reads and writes; set-based
// queries (permission resolution, the relay) stay in SQL next to the code that needs them.
import { Model, type RelationMappings } from 'objection';
import type { EventType } from '../events/outbox';

export type UserStatus = 'pending_verification' | 'active' | 'suspended' | 'deleted';

export class User extends Model {
  static tableName = 'users';
  id!: string;
  email!: string;
  email_verified!: boolean;
  email_verified_at!: Date | null;
  password_hash!: string | null;
  password_changed_at!: Date | null;
  name!: string;
  phone!: string | null;
  timezone!: string;
  locale!: string;
  avatar_url!: string | null;
  status!: UserStatus;
  kind!: 'person' | 'service';
  mfa_enabled!: boolean;
  mfa_secret_encrypted!: string | null;
  mfa_last_used_step!: number | null;
  mfa_enabled_at!: Date | null;
  last_login_at!: Date | null;
  created_at!: Date;
  updated_at!: Date;
  deleted_at!: Date | null;
  roles?: Role[];

  static get relationMappings(): RelationMappings {
    return {
      roles: {
        relation: Model.ManyToManyRelation,
        modelClass: Role,
        join: { from: 'users.id', through: { from: 'user_roles.user_id', to: 'user_roles.role_id' }, to: 'roles.id' },
      },
      sessions: { relation: Model.HasManyRelation, modelClass: Session, join: { from: 'users.id', to: 'sessions.user_id' } },
      authProviders: {
        relation: Model.HasManyRelation,
        modelClass: AuthProvider,
        join: { from: 'users.id', to: 'auth_providers.user_id' },
      },
      tradingAccounts: {
        relation: Model.HasManyRelation,
        modelClass: TradingAccount,
        join: { from: 'users.id', to: 'trading_accounts.user_id' },
      },
      backupCodes: {
        relation: Model.HasManyRelation,
        modelClass: MfaBackupCode,
        join: { from: 'users.id', to: 'mfa_backup_codes.user_id' },
      },
    };
  }
}

export class Role extends Model {
  static tableName = 'roles';
  id!: string;
  name!: string;
  description!: string;
  inherits_role_id!: string | null;
  created_at!: Date;
  inherits?: Role;
  permissions?: Permission[];

  static get relationMappings(): RelationMappings {
    return {
      inherits: { relation: Model.BelongsToOneRelation, modelClass: Role, join: { from: 'roles.inherits_role_id', to: 'roles.id' } },
      permissions: {
        relation: Model.ManyToManyRelation,
        modelClass: Permission,
        join: {
          from: 'roles.id',
          through: { from: 'role_permissions.role_id', to: 'role_permissions.permission_id' },
          to: 'permissions.id',
        },
      },
    };
  }
}

export class Permission extends Model {
  static tableName = 'permissions';
  id!: string;
  name!: string;
  description!: string;
  created_at!: Date;
}

export class RolePermission extends Model {
  static tableName = 'role_permissions';
  static idColumn = ['role_id', 'permission_id'];
  role_id!: string;
  permission_id!: string;
}

export class UserRole extends Model {
  static tableName = 'user_roles';
  static idColumn = ['user_id', 'role_id'];
  user_id!: string;
  role_id!: string;
  granted_by!: string | null;
  granted_at!: Date;
}

export class UserPermission extends Model {
  static tableName = 'user_permissions';
  id!: string;
  user_id!: string;
  permission_id!: string;
  granted_by!: string | null;
  granted_at!: Date;
  expires_at!: Date | null;

  static get relationMappings(): RelationMappings {
    return {
      permission: {
        relation: Model.BelongsToOneRelation,
        modelClass: Permission,
        join: { from: 'user_permissions.permission_id', to: 'permissions.id' },
      },
    };
  }
}

export class AuthProvider extends Model {
  static tableName = 'auth_providers';
  id!: string;
  user_id!: string;
  provider!: 'google';
  provider_user_id!: string;
  email!: string | null;
  created_at!: Date;
  last_used_at!: Date | null;
}

export type TradingAccountStatus = 'pending_verification' | 'verifying' | 'active' | 'invalid' | 'error' | 'expired';

export class TradingAccount extends Model {
  static tableName = 'trading_accounts';
  id!: string;
  user_id!: string;
  broker!: 'kite';
  nickname!: string | null;
  status!: TradingAccountStatus;
  api_key_fingerprint!: string;
  api_key_masked!: string;
  credentials_encrypted!: string | null;
  pending_credentials_encrypted!: string | null;
  broker_user_id!: string | null;
  preferences!: Record<string, unknown>;
  last_verified_at!: Date | null;
  last_error!: string | null;
  access_token_expires_at!: Date | null;
  created_at!: Date;
  updated_at!: Date;
  unlinked_at!: Date | null;
  // Trading accounts on Kite Connect (issue 14)
  broker_user_name!: string | null;
  verification_round!: number;
  token_exchange_started_at!: Date | null;
}

export class MfaBackupCode extends Model {
  static tableName = 'mfa_backup_codes';
  id!: string;
  user_id!: string;
  code_hash!: string;
  used_at!: Date | null;
  created_at!: Date;
}

export type RevokeReason =
  | 'logout'
  | 'logout_all'
  | 'revoked_by_user'
  | 'refresh_token_reuse'
  | 'password_reset'
  | 'password_change'
  | 'account_deleted'
  | 'admin'
  | 'expired'
  | 'mfa_failures'
  | 'email_change';

export class Session extends Model {
  static tableName = 'sessions';
  id!: string;
  user_id!: string;
  device_fingerprint!: string | null;
  user_agent!: string | null;
  ip!: string | null;
  country!: string | null;
  persistent!: boolean;
  amr!: string[];
  auth_time!: Date;
  created_at!: Date;
  last_active_at!: Date;
  expires_at!: Date;
  revoked_at!: Date | null;
  revoked_reason!: RevokeReason | null;
  /** Operators' sessions: the SHA-256 of the cookie that holds them (they have no refresh tokens). */
  cookie_token_hash!: string | null;
  /** Overrides the configured inactivity limit (operators' sessions end after 30 idle minutes). */
  idle_timeout_seconds!: number | null;

  static get relationMappings(): RelationMappings {
    return {
      refreshTokens: {
        relation: Model.HasManyRelation,
        modelClass: RefreshToken,
        join: { from: 'sessions.id', to: 'refresh_tokens.session_id' },
      },
    };
  }
}

export class RefreshToken extends Model {
  static tableName = 'refresh_tokens';
  id!: string;
  session_id!: string;
  token_hash!: string;
  parent_id!: string | null;
  created_at!: Date;
  rotated_at!: Date | null;
}

export class Event extends Model {
  static tableName = 'events';
  id!: string;
  seq!: number;
  type!: EventType;
  user_id!: string | null;
  actor_id!: string | null;
  ip!: string | null;
  user_agent!: string | null;
  data!: Record<string, unknown>;
  occurred_at!: Date;
  published_at!: Date | null;
}

export class EmailMessage extends Model {
  static tableName = 'email_messages';
  id!: string;
  user_id!: string | null;
  template!: string;
  to_address!: string | null;
  params_encrypted!: string;
  status!: 'pending' | 'sent' | 'failed' | 'cancelled';
  attempts!: number;
  last_error!: string | null;
  created_at!: Date;
  sent_at!: Date | null;
}

export class EmailVerificationToken extends Model {
  static tableName = 'email_verification_tokens';
  static idColumn = 'token_hash';
  token_hash!: string;
  user_id!: string;
  created_at!: Date;
  expires_at!: Date;
  used_at!: Date | null;
}
import './tables';

export type AddressRequestKind = 'password_reset' | 'verification_resend';

export class AddressRequest extends Model {
  static tableName = 'address_requests';
  id!: string;
  kind!: AddressRequestKind;
  address_encrypted!: string;
  ip!: string | null;
  user_agent!: string | null;
  status!: 'pending' | 'failed';
  created_at!: Date;
}

// Account lifecycle: email change.
export class EmailChangeToken extends Model {
  static tableName = 'email_change_tokens';
  static idColumn = 'token_hash';
  token_hash!: string;
  user_id!: string;
  new_email!: string;
  created_at!: Date;
  expires_at!: Date;
  used_at!: Date | null;
}

// Audit trail (issue 15): one row per export; the body lives in Redis until expires_at.
export type AuditExportFormat = 'json' | 'csv';

export class AuditExport extends Model {
  static tableName = 'audit_exports';
  id!: string;
  user_id!: string;
  format!: AuditExportFormat;
  event_types!: string[] | null;
  from_at!: Date | null;
  to_at!: Date | null;
  status!: 'pending' | 'ready' | 'failed';
  event_count!: number | null;
  truncated!: boolean;
  last_error!: string | null;
  created_at!: Date;
  completed_at!: Date | null;
  expires_at!: Date;
}
