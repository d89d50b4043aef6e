// What middleware leaves on ctx.state for the next one, and the plain values services take from it.
import type { VerifiedAccessToken } from '../../shared/crypto/access-tokens';
import type { EventOrigin } from '../../shared/events/outbox';
import type { EffectivePermission } from '../../shared/authz/permissions';
import type { Actor } from '../../shared/auth/actor';
import type { RouteSpec } from './route';

export interface Principal {
  userId: string;
  sessionId: string | null;
  roles: string[];
  amr: string[];
  token: VerifiedAccessToken | null;
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
  /** The declaration of the matched route, whose responses the answer is checked against. */
  route?: RouteSpec;
}

/** Who acted and from where, for events: the signed-in principal, if any, and the request's origin. */
export function eventOrigin(state: AppState): EventOrigin {
  return { actorId: state.principal?.userId ?? null, ip: state.origin.ip, userAgent: state.origin.userAgent };
}

/** The authenticated caller as services take it. */
export function actorOf(state: AppState): Actor {
  const principal = state.principal!;
  return { userId: principal.userId, sessionId: principal.sessionId };
}
