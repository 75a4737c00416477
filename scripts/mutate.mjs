// `npm run mutate [-- module… --force]`: StrykerJS over each module of test/mutation/modules.json (all
// when none is named), then the score table (bench/mutation.mjs). `--force` retests every mutant instead
// of only those whose code or tests changed. Long-running, so not part of .ci/run.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const config = JSON.parse(readFileSync(resolve(repo, "test/mutation/modules.json"), "utf8"));
const modules = Object.keys(config);
const args = process.argv.slice(2);
const named = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-"));
for (const name of named) {
  if (!modules.includes(name)) {
    console.error(`npm run mutate: unknown module ${name}; expected one of ${modules.join(", ")}`);
    process.exit(2);
  }
}
// Stryker runs the tests in a sandbox below .stryker-tmp/, where ../shared is not the reference data.
const env = {
  ...process.env,
  KUBEBAKE_REFERENCE_FLAGS:
    process.env.KUBEBAKE_REFERENCE_FLAGS ?? resolve(repo, "..", "shared", "reference", "flags"),
};
// What jest's globalSetup would do on every mutant's run, done once: the CLI bundle and the fixture mirror.
for (const script of ["scripts/build.mjs", "test/fixtures/build-mirror.mjs"]) {
  const status = spawnSync("node", [script], { cwd: repo, env, stdio: "inherit" }).status;
  if (status !== 0) process.exit(status ?? 1);
}
for (const name of named.length > 0 ? named : modules) {
  console.log(`\n== mutating ${name}`);
  // A module Stryker cannot read (the node's jq program) names its own runner.
  const command = config[name].runner
    ? ["node", [config[name].runner]]
    : ["npx", ["stryker", "run", ...flags]];
  const status = spawnSync(command[0], command[1], {
    cwd: repo,
    env: { ...env, KUBEBAKE_MUTATION_MODULE: name },
    stdio: "inherit",
  }).status;
  if (status !== 0) process.exit(status ?? 1);
}
process.exit(spawnSync("node", ["bench/mutation.mjs"], { cwd: repo, stdio: "inherit" }).status ?? 1);
