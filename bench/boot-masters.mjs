#!/usr/bin/env node
// Three masters of the one image booted at once under qemu (TCG), as root: runs test/boot-masters.test.ts
// (skipped in .ci/run: three TCG guests on two cores take long), then prints what it measured
// (reports/boot-masters.json): when each master's etcd unit was started (its member voting), and when all
// three had passed their launch gate (API server ready).
//   node bench/boot-masters.mjs [--print]      --print: only print the figures of the last run
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const file = join(repo, "reports", "boot-masters.json");
if (!process.argv.includes("--print")) {
  execFileSync("npx", ["jest", "--runInBand", "test/boot-masters.test.ts"], {
    cwd: repo,
    stdio: "inherit",
    env: { ...process.env, KUBEBAKE_BOOT_MASTERS: "1" },
  });
}
if (!existsSync(file)) {
  console.error(`bench/boot-masters: no figures yet (${file}); run without --print, as root`);
  process.exit(1);
}
const { allMastersReadySeconds, etcdActiveSeconds } = JSON.parse(readFileSync(file, "utf8"));
console.log(`three TCG guests (1 vCPU, 2 GiB each) on ${availableParallelism()} host cores`);
console.log(`  etcd voting on each master (s after the boots began)   ${etcdActiveSeconds.join(", ")}`);
console.log(
  `  all three past their launch gate (API ready)            ${allMastersReadySeconds.toFixed(0)} s`,
);
