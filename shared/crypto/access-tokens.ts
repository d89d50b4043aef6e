// RS256 access tokens. Verification pins the algorithm, issuer, audience and token type, and picks
// the key by `kid` from our own key set only: key material in a token's header (jwk, jku, x5c) is
// never consulted.
import crypto from 'node:crypto';
import { errors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { Config } from '../config';
import type { SigningKeys } from './keys';

export type AuthMethod = 'pwd' | 'mfa' | 'google' | 'service';

export interface AccessTokenClaims {
  sub: string;
  sid?: string;
  roles: string[];
  amr: AuthMethod[];
  authTime?: Date;
}

export interface VerifiedAccessToken extends JWTPayload {
  sub: string;
  sid?: string;
  jti: string;
  roles: string[];
  amr: AuthMethod[];
  auth_time?: number;
}

export class InvalidTokenError extends Error {}

export interface AccessTokens {
  readonly ttlSeconds: number;
  sign(claims: AccessTokenClaims): Promise<string>;
  verify(token: string): Promise<VerifiedAccessToken>;
}

export function createAccessTokens(config: Pick<Config, 'jwt'>, keys: SigningKeys, now: () => number = Date.now): AccessTokens {
  const { issuer, audience, accessTtlSeconds } = config.jwt;
  return {
    ttlSeconds: accessTtlSeconds,
    async sign(claims) {
      const iat = Math.floor(now() / 1000);
      return new SignJWT({
        roles: claims.roles,
        amr: claims.amr,
        ...(claims.sid && { sid: claims.sid }),
        ...(claims.authTime && { auth_time: Math.floor(claims.authTime.getTime() / 1000) }),
      })
        .setProtectedHeader({ alg: 'RS256', kid: keys.signingKid, typ: 'at+jwt' })
        .setIssuer(issuer)
        .setAudience(audience)
        .setSubject(claims.sub)
        .setJti(crypto.randomUUID())
        .setIssuedAt(iat)
        .setExpirationTime(iat + accessTtlSeconds)
        .sign(keys.privateKey);
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(
          token,
          (header) => {
            const key = header.kid ? keys.publicKeys.get(header.kid) : undefined;
            if (!key) throw new InvalidTokenError('unknown key');
            return key;
          },
          { algorithms: ['RS256'], issuer, audience, typ: 'at+jwt', requiredClaims: ['sub', 'jti', 'exp', 'iat'], currentDate: new Date(now()) },
        );
        if (!Array.isArray(payload.roles) || !Array.isArray(payload.amr)) throw new InvalidTokenError('missing claims');
        return payload as VerifiedAccessToken;
      } catch (err) {
        if (err instanceof InvalidTokenError) throw err;
        if (err instanceof errors.JOSEError || err instanceof TypeError) throw new InvalidTokenError((err as Error).message);
        throw err;
      }
    },
  };
}

/** An opaque secret with 256 bits of entropy, and the hash we store instead of it. */
export function newOpaqueToken(): { token: string; hash: string } {
  const token = crypto.randomBytes(32).toString('base64url');
  return { token, hash: hashOpaqueToken(token) };
}

export function hashOpaqueToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
