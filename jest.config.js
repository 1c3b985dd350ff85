// Two projects: `unit` (pure logic, no cluster) and `integration` (a real kube-apiserver,
// scheduler, controller-manager and kwok, started once by test/cluster/global-setup.js).
const transform = {
  '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
};
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform,
  // ts-jest emits `.js` for our `.ts` imports (rewriteRelativeImportExtensions); map them back.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testEnvironment: 'node',
  // The local cluster's state (etcd writes *.snap files) is not ours to test.
  modulePathIgnorePatterns: ['<rootDir>/.cluster/', '<rootDir>/dist/'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/.cluster/', '<rootDir>/dist/'],
};

/** @type {import('jest').Config} */
export default {
  reporters: ['default', '<rootDir>/test/summary-reporter.js'],
  // Integration tests share one cluster and start operator processes; on a 2-core machine
  // running test files one at a time keeps their timing honest.
  maxWorkers: 1,
  // Integration tests wait for real processes (each wait has its own, shorter deadline).
  testTimeout: 180000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      globalSetup: '<rootDir>/test/cluster/global-setup.js',
      globalTeardown: '<rootDir>/test/cluster/global-teardown.js',
    },
  ],
};
