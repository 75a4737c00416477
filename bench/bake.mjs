#!/usr/bin/env node
// Bake figures for the fixture spec (offline, from test/fixtures/mirror). Prints figures; asserts nothing.
//   npm run bench            (or: node bench/bake.mjs --json)
// Target: a no-change rebake under 2 s.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const json = process.argv.includes("--json");
execFileSync("node", ["scripts/build.mjs"], { cwd: repo });
execFileSync("node", ["test/fixtures/build-mirror.mjs"], { cwd: repo, stdio: "ignore" });

const work = mkdtempSync(join(tmpdir(), "kubebake-bench-"));
const bake = (out, cache) => {
  const started = process.hrtime.bigint();
  const result = spawnSync(
    "node",
    [
      "bin/bake-image.js",
      "--target",
      "dir",
      "--spec",
      "test/fixtures/image.yaml",
      "--mirror",
      "test/fixtures/mirror",
      "--cache",
      join(work, cache),
      "--out",
      join(work, out),
      "--json",
    ],
    { cwd: repo, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) throw new Error(`bake failed (${result.status}): ${result.stderr}`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const manifest = JSON.parse(result.stdout);
  const bytes = manifest.files.reduce((sum, f) => sum + (f.size ?? 0), 0);
  // What the preloaded add-on images add: their layout's files (blobs shared between images counted once).
  const imageBytes = manifest.files
    .filter((f) => f.path.startsWith("/usr/lib/kubebake/images/"))
    .reduce((sum, f) => sum + (f.size ?? 0), 0);
  return { seconds, files: manifest.files.length, bytes, imageBytes, images: manifest.images.length };
};

const runs = 3;
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cold = [],
  warm = [],
  rebake = [];
let size;
for (let i = 0; i < runs; i++) {
  const c = bake(`cold-${i}`, `cache-cold-${i}`);
  cold.push(c.seconds);
  size = c;
  warm.push(bake(`warm-${i}`, `cache-cold-${i}`).seconds);
  rebake.push(bake(`warm-${i}`, `cache-cold-${i}`).seconds);
}
rmSync(work, { recursive: true, force: true });

const figures = {
  "cold bake, empty cache (s, median of 3)": median(cold),
  "bake into a new folder, warm cache (s)": median(warm),
  "no-change rebake (s) [target < 2]": median(rebake),
  "image tree: files": size.files,
  "image tree: MB": size.bytes / 1e6,
  "of which preloaded add-on images: MB": size.imageBytes / 1e6,
  "preloaded add-on images": size.images,
};
if (json) console.log(JSON.stringify(figures, null, 2));
else
  for (const [name, value] of Object.entries(figures))
    console.log(`${name.padEnd(44)} ${Number.isInteger(value) ? value : value.toFixed(2)}`);
