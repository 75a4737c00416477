#!/usr/bin/env node
// Build figures of the real test programs (test/upstream/build.sh) and, as root, of the add-on images
// (test/upstream/build-images.sh): a cold build (empty Go build cache and an empty kubebake cache; the Go
// module cache is kept, downloads are not the build), then a warm run.
//   node bench/upstream-build.mjs [--warm-only]
// The cold builds take a quarter of an hour and four minutes on two cores; --warm-only measures the cache
// lookups alone.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const script = join(repo, "test", "upstream", "build.sh");
const imagesScript = join(repo, "test", "upstream", "build-images.sh");
const warmOnly = process.argv.includes("--warm-only");
// build-images.sh makes the flannel images' Debian root with mmdebstrap --mode=root.
const root = process.getuid?.() === 0;

function timed(env, path) {
  const started = process.hrtime.bigint();
  const out = execFileSync("sh", [path, "--quiet"], { env: { ...process.env, ...env }, encoding: "utf8" });
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, dir: out.trim().split("\n").pop() };
}

const rows = [];
let env = {};
let scratch;
if (!warmOnly) {
  scratch = mkdtempSync(join(tmpdir(), "kubebake-bench-upstream-"));
  env = { XDG_CACHE_HOME: join(scratch, "cache"), GOCACHE: join(scratch, "go-build") };
  rows.push(["cold build (empty Go build cache)", timed(env, script)]);
}
rows.push(["warm (cached by version)", timed(env, script)]);
const dir = rows.at(-1)[1].dir;
const sizes = readdirSync(dir)
  .filter((f) => !f.startsWith("."))
  .map((f) => [f, statSync(join(dir, f)).size]);

const imageRows = [];
let imageSizes = [];
if (root) {
  // Its own empty Go build cache: build.sh's would make the images' cold build warmer than it is.
  const imagesEnv = scratch ? { ...env, GOCACHE: join(scratch, "go-build-images") } : env;
  if (!warmOnly) imageRows.push(["cold build (empty Go build cache)", timed(imagesEnv, imagesScript)]);
  imageRows.push(["warm (cached by key)", timed(imagesEnv, imagesScript)]);
  // Compressed layer bytes of each image (the Debian layer the two flannel images share counts in both).
  const images = JSON.parse(readFileSync(join(imageRows.at(-1)[1].dir, "images.json"), "utf8"));
  const blob = (layout, digest) =>
    JSON.parse(readFileSync(join(layout, "blobs", "sha256", digest.slice(7)), "utf8"));
  imageSizes = Object.entries(images).map(([name, { layout, manifest }]) => [
    name,
    blob(layout, manifest).layers.reduce((sum, layer) => sum + layer.size, 0),
  ]);
}
if (scratch) rmSync(scratch, { recursive: true, force: true });

console.log("test/upstream/build.sh (2 cores)");
for (const [what, { seconds }] of rows)
  console.log(`  ${what.padEnd(36)} ${seconds.toFixed(1).padStart(8)} s`);
const total = sizes.reduce((sum, [, size]) => sum + size, 0);
console.log(`  ${"programs".padEnd(36)} ${sizes.length} files, ${(total / 2 ** 20).toFixed(0)} MiB`);
for (const [name, size] of sizes)
  console.log(`    ${name.padEnd(34)} ${(size / 2 ** 20).toFixed(1).padStart(8)} MiB`);

if (!root) console.log("test/upstream/build-images.sh: skipped (needs root for mmdebstrap --mode=root)");
else {
  console.log("test/upstream/build-images.sh (2 cores)");
  for (const [what, { seconds }] of imageRows)
    console.log(`  ${what.padEnd(36)} ${seconds.toFixed(1).padStart(8)} s`);
  console.log(`  ${"images (compressed layers)".padEnd(36)} ${imageSizes.length} OCI layouts`);
  for (const [name, size] of imageSizes)
    console.log(`    ${name.padEnd(34)} ${(size / 2 ** 20).toFixed(1).padStart(8)} MiB`);
}
