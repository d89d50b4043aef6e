// What middleware leaves on ctx.state for the next one.
import type { VerifiedAccessToken } from '../../shared/crypto/access-tokens';
import type { EventOrigin } from '../../shared/events/outbox';
import type { EffectivePermission } from '../../shared/authz/permissions';

export interface Principal {
  userId: string;
  sessionId: string | null;
  roles: string[];
  amr: string[];
  token: VerifiedAccessToken | null;
  via: 'bearer' | 'basic';
  /** The caller's effective permissions, when the route asked for them with its authentication. */
  permissions?: Promise<EffectivePermission[]>;
}

export interface AppState {
  requestId: string;
  /** Where the request came from, for events and sessions. */
  origin: { ip: string | null; userAgent: string | null };
  principal?: Principal;
  input?: unknown;
  /** The route pattern (for metrics labels; never the raw URL with ids). */
  routePattern?: string;
}

/** Who acted and from where, for events: the signed-in principal, if any, and the request's origin. */
export function eventOrigin(state: AppState): EventOrigin {
  return { actorId: state.principal?.userId ?? null, ip: state.origin.ip, userAgent: state.origin.userAgent };
}
