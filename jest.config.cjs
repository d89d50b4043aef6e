// jose, oidc-provider and otplib's hash dependencies ship only ES modules, which Jest's CommonJS
// runtime cannot load: @swc/jest compiles them together with our TypeScript (@seriousme's
// OpenAPI validator is a test-only ESM package too).
const esm = ['jose', 'oidc-provider', 'otplib', '@otplib', '@noble', '@scure', '@seriousme'].join('|');
// `npm run test:cluster` runs the suite again with every app on a Redis Cluster, leaving out what
// the cluster cannot change: files that start Redis servers of their own (the fault tests, the
// cluster and Sentinel tests) and files that never reach Redis (lint, configuration, migrations,
// pure functions, the docs pages).
const NOT_ON_THE_RUN_CLUSTER = [
  'scale/(chaos|redis-cluster|sentinel)',
  '(foundation|resilience)/faults',
  'foundation/(lint|config|config-docs|migrations|docs-browser)',
  'auth/password-policy',
  'mfa/totp',
  'trading-accounts/kite-client',
];

function ignored() {
  if (process.env.TEST_CHAOS === '1') return ['/node_modules/'];
  const chaos = '/test/scale/chaos\\.test\\.ts$';
  if (process.env.TEST_REDIS_TOPOLOGY !== 'cluster') return ['/node_modules/', chaos];
  return ['/node_modules/', ...NOT_ON_THE_RUN_CLUSTER.map((file) => `/test/${file}\\.test\\.ts$`)];
}

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.[cm]?[tj]s$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2023' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esm})/)`],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  setupFilesAfterEnv: ['<rootDir>/test/setup-after-env.ts'],
  testTimeout: 30000,
  maxWorkers: 2,
  // The chaos run kills processes on a timetable and bounds its windows: it runs alone, after the
  // suite (`npm run test:chaos`, in .ci/run), not beside other heavy files on two cores.
  testPathIgnorePatterns: ignored(),
};
