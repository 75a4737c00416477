// `npm run mutate`: mutation testing of the core that decides things (not part of .ci/run; it takes long).
// The scope is the list below; `npm run mutate -- --mutate src/discover/**/*.ts` narrows it for one run.
// bench/mutation.mjs prints the score per module from the JSON report.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "jest",
  jest: { configFile: "test/mutation/jest.config.js", enableFindRelatedTests: true },
  checkers: ["typescript"],
  tsconfigFile: "tsconfig.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: "perTest",
  mutate: [
    "src/fetch/**/*.ts",
    "src/bake/plan.ts",
    "src/bake/manifest.ts",
    "src/bake/bake.ts",
    "src/image/hygiene.ts",
    "src/discover/**/*.ts",
    "src/launch/aws/desired.ts",
    "src/pki/**/*.ts",
  ],
  concurrency: 2,
  timeoutMS: 20000,
  reporters: ["progress", "clear-text", "json"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  thresholds: { high: 90, low: 80, break: null },
  ignorePatterns: ["out", "dist", ".cache", "reports", "test/fixtures/mirror"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
};
