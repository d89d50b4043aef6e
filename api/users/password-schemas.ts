// Request schema of changing one's password.
import { Type } from '@sinclair/typebox';
import { Strict } from '../http/route';

const Password = Type.String({ minLength: 1, maxLength: 1024 });

export const ChangePasswordBody = Strict({
  current_password: Password,
  new_password: Password,
  revoke_other_sessions: Type.Optional(Type.Boolean({ description: 'Sign out every other session (default false)' })),
});
