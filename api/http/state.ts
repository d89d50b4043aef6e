// What middleware leaves on ctx.state for the next one.
import type { VerifiedAccessToken } from '../../shared/crypto/access-tokens';

export interface Principal {
  userId: string;
  sessionId: string | null;
  roles: string[];
  amr: string[];
  token: VerifiedAccessToken | null;
  via: 'bearer' | 'basic';
}

export interface AppState {
  requestId: string;
  /** Where the request came from, for events and sessions. */
  origin: { ip: string | null; userAgent: string | null; country: string | null };
  principal?: Principal;
  input?: unknown;
  /** The route pattern (for metrics labels; never the raw URL with ids). */
  routePattern?: string;
}
