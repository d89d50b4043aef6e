// Effective permissions: those of the user's roles (with inheritance) and direct grants that have
// not expired; none at all for a suspended or deleted user. Always from the database here; the
// permission cache (./cache.ts) sits in front of this.
import type { Knex } from 'knex';
import { SIGN_IN_STATUSES } from '../users/status';

export interface EffectivePermission {
  name: string;
  /** `role:<name>` or `direct`. */
  source: string;
  grant_id: string | null;
  expires_at: Date | null;
}

export async function listEffectivePermissions(db: Knex, userId: string): Promise<EffectivePermission[]> {
  const { rows } = await db.raw<{ rows: EffectivePermission[] }>(
    `WITH RECURSIVE allowed_user AS (
       SELECT id FROM users WHERE id = :userId AND status = ANY(:statuses)
     ), user_role_tree AS (
       SELECT r.id, r.name, r.inherits_role_id, r.name AS via
         FROM user_roles ur JOIN allowed_user u ON u.id = ur.user_id JOIN roles r ON r.id = ur.role_id
       UNION
       SELECT parent.id, parent.name, parent.inherits_role_id, t.via
         FROM user_role_tree t JOIN roles parent ON parent.id = t.inherits_role_id
     )
     SELECT DISTINCT p.name, 'role:' || t.via AS source, NULL::uuid AS grant_id, NULL::timestamptz AS expires_at
       FROM user_role_tree t
       JOIN role_permissions rp ON rp.role_id = t.id
       JOIN permissions p ON p.id = rp.permission_id
     UNION ALL
     SELECT p.name, 'direct', up.id, up.expires_at
       FROM user_permissions up JOIN allowed_user u ON u.id = up.user_id JOIN permissions p ON p.id = up.permission_id
      WHERE (up.expires_at IS NULL OR up.expires_at > now())
     ORDER BY 1, 2`,
    { userId, statuses: [...SIGN_IN_STATUSES] },
  );
  return rows;
}

/** The user's role names in name order: a query to extend (refresh adds its writes to it). */
export function roleNamesQuery(db: Knex, userId: string): Knex.QueryBuilder {
  return db('user_roles')
    .join('roles', 'roles.id', 'user_roles.role_id')
    .where('user_roles.user_id', userId)
    .orderBy('roles.name')
    .select('roles.name');
}

export async function listRoleNames(db: Knex, userId: string): Promise<string[]> {
  return namesOf((await roleNamesQuery(db, userId)) as { name: string }[]);
}

export const namesOf = (rows: { name: string }[]): string[] => rows.map((r) => r.name);
