// The tests StrykerJS runs against each mutant: the fast, in-process tests of the core. Left out: tests
// that spawn the bundled CLI (a mutant is active only inside the jest process, so they cannot kill it),
// the qemu boots, and the moto-backed launcher tests, which exercise the shells and take minutes.
const base = require("../../jest.config.js");

module.exports = {
  ...base,
  rootDir: "../..",
  testPathIgnorePatterns: [
    "/node_modules/",
    "/test/boot\\.test\\.ts$",
    "/test/aws/",
    "/test/discover/(moto|sync|bundle)\\.test\\.ts$",
    "/test/(cli|interrupt|output|node-scripts)\\.test\\.ts$",
  ],
};
