// Request and response schemas of the password-reset endpoints.
import { Type } from '@sinclair/typebox';
import { Strict } from '../http/route';

export const ResetRequestBody = Strict({ email: Type.String({ format: 'email', maxLength: 254, description: 'Email address (case-insensitive)' }) });
export const ResetBody = Strict({
  token: Type.String({ minLength: 16, maxLength: 512, description: 'The token of the emailed link' }),
  new_password: Type.String({ minLength: 1, maxLength: 1024 }),
});
export const ResetRequested = Type.Object({ status: Type.Literal('accepted'), message: Type.String() });
