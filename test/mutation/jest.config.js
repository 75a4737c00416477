// The tests StrykerJS runs against one module's mutants (test/mutation/modules.json, picked by
// KUBEBAKE_MUTATION_MODULE): that module's fast, in-process tests. Tests that spawn the bundled CLI cannot
// kill a mutant (it is active only inside the jest process), and the qemu boots and moto-backed launcher
// tests exercise the shells and take minutes.
const base = require("../../jest.config.js");
const modules = require("./modules.json");

const name = process.env.KUBEBAKE_MUTATION_MODULE;
const module_ = modules[name];
if (!module_)
  throw new Error(`KUBEBAKE_MUTATION_MODULE=${name}: expected one of ${Object.keys(modules).join(", ")}`);

module.exports = {
  ...base,
  rootDir: "../..",
  testMatch: module_.tests.map((t) => `<rootDir>/${t}`),
  // Jest runs globalSetup on every run, and Stryker starts one run per mutant: scripts/mutate.mjs builds the
  // CLI bundle and the fixture mirror once instead, and the sandbox copies them.
  globalSetup: undefined,
  maxWorkers: 1, // Stryker runs one jest per mutant; its own concurrency is the parallelism
};
