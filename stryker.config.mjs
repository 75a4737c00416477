// `npm run mutate [module…]`: mutation testing of the core that decides things, one module at a time
// (test/mutation/modules.json: which files are mutated and which tests may kill their mutants). Not part of
// .ci/run: it takes long. Incremental: a rerun tests only the mutants whose code or tests changed.
import { readFileSync, writeFileSync } from "node:fs";

const modules = JSON.parse(readFileSync(new URL("./test/mutation/modules.json", import.meta.url), "utf8"));
const name = process.env.KUBEBAKE_MUTATION_MODULE;
if (!modules[name])
  throw new Error(`KUBEBAKE_MUTATION_MODULE=${name}: expected one of ${Object.keys(modules).join(", ")}`);

// The TypeScript checker weeds out mutants that do not compile. Checking only the mutated files and what
// they import (not the tests, not every SDK the project uses) makes it several times faster.
const tsconfigFile = `test/mutation/tsconfig.${name}.json`;
writeFileSync(
  new URL(tsconfigFile, import.meta.url),
  JSON.stringify({
    extends: "../../tsconfig.json",
    compilerOptions: { types: ["node"] },
    include: modules[name].mutate.map((glob) => `../../${glob}`),
  }) + "\n",
);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "jest",
  jest: { configFile: "test/mutation/jest.config.js", enableFindRelatedTests: false },
  checkers: ["typescript"],
  tsconfigFile,
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: "perTest",
  mutate: modules[name].mutate,
  incremental: true,
  incrementalFile: `reports/mutation/${name}.incremental.json`,
  concurrency: Number(process.env.KUBEBAKE_MUTATION_CONCURRENCY ?? 2),
  timeoutMS: 20000,
  reporters: ["progress", "clear-text", "json"],
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true },
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  thresholds: { high: 90, low: 80, break: null },
  // docs/examples stays: spec tests check the documented examples.
  ignorePatterns: ["out", ".cache", "reports", "bench", "docs/*", "!docs/examples", ".git"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
};
