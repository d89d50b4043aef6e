// Who acts, as services see it: plain values taken from a verified access token by the api (or
// set by the CLI and workers), never an HTTP object.

export interface Actor {
  userId: string;
  /** The session the actor acts in; null for service principals, which have none. */
  sessionId: string | null;
}

/** Sensitive acts that cannot ask for a password accept a sign-in at most this old ("sudo mode"). */
export const RECENT_SIGN_IN_SECONDS = 300;

/** Whether a sign-in at `authTime` (seconds since the epoch, the token's `auth_time`) is recent. */
export function signedInRecently(authTime: number | null | undefined): boolean {
  return Date.now() / 1000 - (authTime ?? 0) <= RECENT_SIGN_IN_SECONDS;
}
