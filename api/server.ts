// The api process: checks its dependencies and keys, serves HTTP, and shuts down in order
// (stop accepting, finish in-flight requests, close queues, Redis and PostgreSQL).
import http from 'node:http';
import { loadConfigOrExit } from '../shared/config';
import { createLogger } from '../shared/logger';
import { createContext } from '../shared/context';
import { createMissingKeys } from '../shared/crypto/keys';
import { StartupError } from '../shared/errors';
import { exitOnStartupFailure, exitUnlessDependencies, onShutdown } from '../shared/process';
import { checkDatabaseSettings, checkReplicaSettings } from '../shared/db';
import { createApp } from './app';

/** Listens, or fails with the one line an operator needs when the port is taken. */
function listen(server: http.Server, port: number, host: string, variable: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new StartupError(`port ${port} is in use (EADDRINUSE): stop the other process or set ${variable}`, { cause: err })
          : err,
      );
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config);
  if (config.ignoredSettings.length)
    logger.warn({ variables: config.ignoredSettings }, 'these settings have no effect in this service (see README)');
  await exitUnlessDependencies(config);
  if (config.environment === 'development') createMissingKeys(config);
  // A missing or bad key throws a KeyError here: one line, exit 1 (exitOnStartupFailure).
  const context = createContext(config, logger);
  await context.ready();
  await checkDatabaseSettings(context.db, config, logger);
  await checkReplicaSettings(context.dbReplica === context.db ? null : context.dbReplica, config, logger);
  const { koa, metricsKoa } = createApp(context);
  const server = http.createServer(koa.callback());
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  await listen(server, config.port, config.host, 'PORT');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ port, docs: `/docs`, redoc: '/redoc', bullBoard: '/admin/queues' }, `api listening on http://localhost:${port}`);
  // The management port: /metrics only, on its own listener (closed with the process).
  if (metricsKoa) {
    const metricsServer = http.createServer(metricsKoa.callback());
    await listen(metricsServer, config.metricsPort!, config.host, 'METRICS_PORT');
    metricsServer.unref();
    logger.info({ port: (metricsServer.address() as { port: number }).port }, 'metrics listening (GET /metrics)');
  } else if (config.environment !== 'development') {
    logger.warn('METRICS_PORT is empty: /metrics is not served (set it to scrape the service, and keep that port private)');
  }
  // SIGHUP re-reads the signing keys and master keys now rather than at the next
  // JWT_KEYS_RELOAD_SECONDS tick.
  process.on('SIGHUP', () => context.reloadKeys());
  onShutdown(logger, config.shutdownTimeoutMs, [
    [
      'http',
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // In-flight requests get half the shutdown time; a client that stops reading its response
          // must not hold the process until the forced exit.
          setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs / 2).unref();
        }),
    ],
    ['context', () => context.close()],
  ]);
}

main().catch(exitOnStartupFailure('api'));
