// jose, oidc-provider and otplib's hash dependencies ship only ES modules, which Jest's CommonJS
// runtime cannot load: @swc/jest compiles them together with our TypeScript (@seriousme's
// OpenAPI validator is a test-only ESM package too).
const esm = ['jose', 'oidc-provider', 'otplib', '@otplib', '@noble', '@scure', '@seriousme'].join('|');
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
  testPathIgnorePatterns: process.env.TEST_CHAOS === '1' ? ['/node_modules/'] : ['/node_modules/', '/test/scale/chaos\\.test\\.ts$'],
};
