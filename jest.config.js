// Tests are transpiled by swc (fast, no type-check); `npm run typecheck` does the type-checking.
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["@swc/jest"] },
  testTimeout: 60000,
  globalSetup: "<rootDir>/test/global-setup.js",
};
