// Tests are transpiled by swc (fast, no type-check); `npm run typecheck` does the type-checking.
const { availableParallelism } = require("node:os");

module.exports = {
  testEnvironment: "node",
  // Most suites wait on moto, qemu or child processes rather than compute: two workers even on two cores
  // (jest's default there is one), so the VM boots run beside the AWS suites.
  maxWorkers: Math.max(2, availableParallelism() - 1),
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["@swc/jest"] },
  testTimeout: 60000,
  globalSetup: "<rootDir>/test/global-setup.js",
};
