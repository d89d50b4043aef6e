// The row type of every table, for knex's query builder: `db('users')` knows its columns, so a
// query's result is typed from the model instead of `any`.
import type { ModelObject } from 'objection';
import type * as M from './index';

declare module 'knex/types/tables' {
  interface Tables {
    users: ModelObject<M.User>;
    roles: ModelObject<M.Role>;
    permissions: ModelObject<M.Permission>;
    role_permissions: ModelObject<M.RolePermission>;
    user_roles: ModelObject<M.UserRole>;
    user_permissions: ModelObject<M.UserPermission>;
    auth_providers: ModelObject<M.AuthProvider>;
    trading_accounts: ModelObject<M.TradingAccount>;
    mfa_backup_codes: ModelObject<M.MfaBackupCode>;
    sessions: ModelObject<M.Session>;
    refresh_tokens: ModelObject<M.RefreshToken>;
    events: ModelObject<M.Event>;
    email_messages: ModelObject<M.EmailMessage>;
    email_verification_tokens: ModelObject<M.EmailVerificationToken>;
    address_requests: ModelObject<M.AddressRequest>;
    // Account lifecycle: email change.
    email_change_tokens: ModelObject<M.EmailChangeToken>;
    // Audit trail (issue 15)
    audit_exports: ModelObject<M.AuditExport>;
  }
}
