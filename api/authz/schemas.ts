// Request and response schemas of the authorization endpoints.
import { Type, type Static } from '@sinclair/typebox';
import { Strict } from '../http/route';

const PermissionName = Type.String({ pattern: '^[a-z_]+(:[a-z_]+)+$', maxLength: 100, description: 'resource:action' });
const Uuid = Type.String({ format: 'uuid' });
const ExampleUserId = '4f1c2b7e-9a3d-4e6f-8b1a-2c5d7e9f0a13';

export const CheckBody = Strict(
  { permission: PermissionName, user_id: Type.Optional(Uuid) },
  { examples: [{ permission: 'orders:write' }, { permission: 'orders:write', user_id: ExampleUserId }] },
);
export const CheckResult = Type.Object({ allowed: Type.Boolean(), permission: Type.String(), user_id: Uuid });

export const PermissionsQuery = Strict({ user_id: Type.Optional(Uuid) });
export const PermissionList = Type.Object({
  permissions: Type.Array(
    Type.Object({
      name: Type.String(),
      source: Type.String({ description: '`role:<name>` or `direct`' }),
      id: Type.Union([Uuid, Type.Null()], { description: 'The grant id of a direct grant' }),
      expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    }),
  ),
});

export const GrantBody = Strict(
  { user_id: Uuid, permission: PermissionName, expires_at: Type.Optional(Type.String({ format: 'date-time' })) },
  { examples: [{ user_id: ExampleUserId, permission: 'audit:read_any', expires_at: '2027-01-31T18:30:00Z' }] },
);
export const Grant = Type.Object({
  id: Uuid,
  user_id: Uuid,
  permission: Type.String(),
  expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  granted_by: Type.Union([Uuid, Type.Null()]),
  granted_at: Type.String({ format: 'date-time' }),
});
export const GrantParams = Strict({ permission_id: Uuid });

export type PermissionListBody = Static<typeof PermissionList>;
export type GrantResponseBody = Static<typeof Grant>;
