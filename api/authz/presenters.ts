// Answers of the authorization endpoints.
import type { EffectivePermission } from '../../shared/authz/permissions';
import type { Grant } from '../../shared/authz/service';
import type { GrantResponseBody, PermissionListBody } from './schemas';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function permissionListBody(permissions: EffectivePermission[]): PermissionListBody {
  return { permissions: permissions.map((p) => ({ name: p.name, source: p.source, id: p.grant_id, expires_at: iso(p.expires_at) })) };
}

export function grantBody(grant: Grant): GrantResponseBody {
  return {
    id: grant.id,
    user_id: grant.user_id,
    permission: grant.permission,
    expires_at: iso(grant.expires_at),
    granted_by: grant.granted_by,
    granted_at: grant.granted_at.toISOString(),
  };
}
