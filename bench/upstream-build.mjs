#!/usr/bin/env node
// Build figures of the real test programs (test/upstream/build.sh): a cold build (empty Go build cache and
// an empty kubebake cache; the Go module cache is kept, downloads are not the build), then a warm run.
//   node bench/upstream-build.mjs [--warm-only]
// The cold build takes a quarter of an hour on two cores; --warm-only measures the cache lookup alone.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const script = join(repo, "test", "upstream", "build.sh");
const warmOnly = process.argv.includes("--warm-only");

function timed(env) {
  const started = process.hrtime.bigint();
  const out = execFileSync("sh", [script, "--quiet"], { env: { ...process.env, ...env }, encoding: "utf8" });
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, dir: out.trim().split("\n").pop() };
}

const rows = [];
let env = {};
let scratch;
if (!warmOnly) {
  scratch = mkdtempSync(join(tmpdir(), "kubebake-bench-upstream-"));
  env = { XDG_CACHE_HOME: join(scratch, "cache"), GOCACHE: join(scratch, "go-build") };
  rows.push(["cold build (empty Go build cache)", timed(env)]);
}
rows.push(["warm (cached by version)", timed(env)]);
const dir = rows.at(-1)[1].dir;
const sizes = readdirSync(dir)
  .filter((f) => !f.startsWith("."))
  .map((f) => [f, statSync(join(dir, f)).size]);
if (scratch) rmSync(scratch, { recursive: true, force: true });

console.log("test/upstream/build.sh (2 cores)");
for (const [what, { seconds }] of rows)
  console.log(`  ${what.padEnd(36)} ${seconds.toFixed(1).padStart(8)} s`);
const total = sizes.reduce((sum, [, size]) => sum + size, 0);
console.log(`  ${"programs".padEnd(36)} ${sizes.length} files, ${(total / 2 ** 20).toFixed(0)} MiB`);
for (const [name, size] of sizes)
  console.log(`    ${name.padEnd(34)} ${(size / 2 ** 20).toFixed(1).padStart(8)} MiB`);
