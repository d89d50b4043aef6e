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
  /** A service principal's credential version: its tokens stop when its secret changes. */
  credentialVersion?: string;
}

export interface VerifiedAccessToken extends JWTPayload {
  sub: string;
  sid?: string;
  jti: string;
  roles: string[];
  amr: AuthMethod[];
  auth_time?: number;
  cv?: string;
}

export class InvalidTokenError extends Error {}

export interface AccessTokens {
  readonly ttlSeconds: number;
  sign(claims: AccessTokenClaims): Promise<string>;
  verify(token: string): Promise<VerifiedAccessToken>;
}

/**
 * How many verified tokens one process remembers. Clients present the same access token for its
 * whole life (15 minutes), so most requests skip the RSA check, as with Envoy's jwt_authn cache.
 */
const VERIFIED_CACHE_SIZE = 5_000;

/** How far the issuer's clock and ours may disagree. */
const CLOCK_SKEW_SECONDS = 60;

export function createAccessTokens(config: Pick<Config, 'jwt'>, keys: SigningKeys, now: () => number = Date.now): AccessTokens {
  const { issuer, audience, accessTtlSeconds } = config.jwt;
  // Keyed by the whole token, so a token differing in any byte is verified afresh. A verdict holds
  // until the token expires or the key set changes (a key retired by a reload), whichever is first.
  const verified = new Map<string, VerifiedAccessToken>();
  let verifiedGeneration = keys.generation;
  const remember = (token: string, claims: VerifiedAccessToken) => {
    if (verified.size >= VERIFIED_CACHE_SIZE) verified.delete(verified.keys().next().value!);
    verified.set(token, claims);
  };
  return {
    ttlSeconds: accessTtlSeconds,
    async sign(claims) {
      const iat = Math.floor(now() / 1000);
      return new SignJWT({
        roles: claims.roles,
        amr: claims.amr,
        ...(claims.sid && { sid: claims.sid }),
        ...(claims.authTime && { auth_time: Math.floor(claims.authTime.getTime() / 1000) }),
        ...(claims.credentialVersion && { cv: claims.credentialVersion }),
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
      if (verifiedGeneration !== keys.generation) {
        verified.clear();
        verifiedGeneration = keys.generation;
      }
      const known = verified.get(token);
      if (known) {
        // As jose decides: expired once `exp` is not after the current second.
        if (known.exp! > Math.floor(now() / 1000)) return known;
        verified.delete(token);
      }
      try {
        const { payload } = await jwtVerify(
          token,
          (header) => {
            const key = header.kid ? keys.publicKeys.get(header.kid) : undefined;
            if (!key) throw new InvalidTokenError('unknown key');
            return key;
          },
          {
            algorithms: ['RS256'],
            issuer,
            audience,
            typ: 'at+jwt',
            requiredClaims: ['sub', 'jti', 'exp', 'iat'],
            currentDate: new Date(now()),
          },
        );
        if (!Array.isArray(payload.roles) || !Array.isArray(payload.amr)) throw new InvalidTokenError('missing claims');
        // A token our key signed but we would never have issued (a leaked key, a bug elsewhere):
        // no lifetime beyond ours, no issue time ahead of our clock (DESIGN.md, "Access-token lifetime").
        const iat = payload.iat!;
        if (payload.exp! - iat > accessTtlSeconds + CLOCK_SKEW_SECONDS) throw new InvalidTokenError('lifetime too long');
        if (iat > Math.floor(now() / 1000) + CLOCK_SKEW_SECONDS) throw new InvalidTokenError('issued in the future');
        // Shared by every request that presents this token: nobody may change it.
        const claims = deepFreeze(payload as VerifiedAccessToken);
        remember(token, claims);
        return claims;
      } catch (err) {
        if (err instanceof InvalidTokenError) throw err;
        if (err instanceof errors.JOSEError || err instanceof TypeError) throw new InvalidTokenError(err.message);
        throw err;
      }
    },
  };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** An opaque secret with 256 bits of entropy, and the hash we store instead of it. */
export function newOpaqueToken(): { token: string; hash: string } {
  const token = crypto.randomBytes(32).toString('base64url');
  return { token, hash: hashOpaqueToken(token) };
}

export function hashOpaqueToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}
