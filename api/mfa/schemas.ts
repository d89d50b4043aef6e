// Request and response schemas of the MFA endpoints (TOTP set-up, step-up, backup codes) and of
// the sign-in challenge. The handlers' input types and the OpenAPI document derive from these.
import { Type } from '@sinclair/typebox';
import { Strict } from '../http/route';

/** A 6-digit TOTP code, or a backup code (`xxxx-xxxx-xxxx`; case, spaces and dashes ignored). */
const Code = Type.String({ minLength: 6, maxLength: 32, description: 'A 6-digit TOTP code, or a backup code' });
const TotpCode = Type.String({ pattern: '^[0-9]{6}$', description: 'The 6-digit code the authenticator app shows' });

/** Set-up takes no input; an empty body (or none) is all it accepts. */
export const SetupBody = Strict({}, { examples: [{}] });
export const CodeBody = Strict({ code: Code }, { examples: [{ code: '492039' }, { code: '7k3m-q9x2-hv4d' }] });
export const EnableBody = Strict({ code: TotpCode }, { examples: [{ code: '492039' }] });
export const DisableBody = Strict(
  { password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })), code: Code },
  {
    examples: [{ password: 'Correct-Horse-Battery-9', code: '492039' }],
    description: 'Google-only accounts (no password) send the code with X-Verification-Token or a fresh sign-in instead',
  },
);
export const LoginVerifyBody = Strict(
  { mfa_token: Type.String({ minLength: 16, maxLength: 512 }), code: Code },
  { examples: [{ mfa_token: 'Qm9ndXMtZXhhbXBsZS10b2tlbi1vZi00My1jaGFycw', code: '492039' }] },
);

export const Setup = Type.Object({
  secret: Type.String({ description: 'Base32 secret, for typing into the app by hand' }),
  otpauth_uri: Type.String({ description: 'otpauth://totp/… URI' }),
  qr_code: Type.String({ description: 'The URI as a QR code, a data: URL (PNG)' }),
  expires_in: Type.Integer({ description: 'Seconds the pending secret waits for /enable' }),
});

const BackupCodes = Type.Array(Type.String(), { minItems: 8, maxItems: 8, description: 'Single-use backup codes, shown only now' });

export const Enabled = Type.Object({ enabled: Type.Literal(true), backup_codes: BackupCodes });
export const Regenerated = Type.Object({ backup_codes: BackupCodes });
export const Verification = Type.Object({ verification_token: Type.String(), expires_in: Type.Integer() });
