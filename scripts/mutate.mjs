// `npm run mutate [-- --mutate GLOB]`: StrykerJS over the core that decides things (stryker.config.mjs),
// then the score per module (bench/mutation.mjs). Long-running, so not part of .ci/run.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
// Stryker runs the tests in a sandbox below .stryker-tmp/, where ../shared is not the reference data.
const env = {
  ...process.env,
  KUBEBAKE_REFERENCE_FLAGS:
    process.env.KUBEBAKE_REFERENCE_FLAGS ?? resolve(repo, "..", "shared", "reference", "flags"),
};
const run = (args) => spawnSync("npx", args, { cwd: repo, env, stdio: "inherit" }).status ?? 1;
const status = run(["stryker", "run", ...process.argv.slice(2)]);
if (status !== 0) process.exit(status);
process.exit(spawnSync("node", ["bench/mutation.mjs"], { cwd: repo, stdio: "inherit" }).status ?? 1);
