/** Jest runs the TypeScript sources through SWC (type checking is `npm run typecheck`).
 * typebox, cookie and content-disposition ship ESM only, so they are transformed too. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.(t|j|mj)s$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(typebox|cookie|content-disposition)/)'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  testTimeout: 60000,
  // Integration suites share one Redis and spawn worker processes: two at a time keeps a 2-core box honest.
  maxWorkers: 2,
};
