#!/usr/bin/env node
// Boot figures of the real cluster under qemu TCG: runs the two-VM boot test (root), then prints what it
// measured (reports/boot-times.json): boot → the API server ready, → the minion's Node registered, → both
// nodes Ready (flannel and CoreDNS from the preloaded images), → the first pods running (one per node).
//   node bench/boot.mjs [--print]      --print: only print the figures of the last run
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const figures = join(repo, "reports", "boot-times.json");
if (!process.argv.includes("--print")) {
  const started = Date.now();
  execFileSync("npx", ["jest", "test/boot.test.ts", "-t", "one image, two roles"], {
    cwd: repo,
    stdio: "inherit",
  });
  console.log(`boot test: ${((Date.now() - started) / 1000).toFixed(0)} s (bake included)`);
}
if (!existsSync(figures)) {
  console.error(`bench/boot: no figures yet (${figures}); run without --print, as root`);
  process.exit(1);
}
const times = JSON.parse(readFileSync(figures, "utf8"));
console.log(
  `qemu TCG, ${availableParallelism()} host cores; master 2 vCPU / 2.5 GiB, minion 1 vCPU / 2 GiB; no registry reachable`,
);
console.log(
  `  boot → API server ready (host kubectl /readyz)   ${times.apiReadySeconds.toFixed(0).padStart(5)} s`,
);
console.log(
  `  boot → minion Node registered                    ${times.nodeRegisteredAfterBootSeconds.toFixed(0).padStart(5)} s`,
);
console.log(
  `  DNS record published → Node registered           ${times.nodeRegisteredAfterDnsSeconds.toFixed(0).padStart(5)} s`,
);
for (const [label, key] of [
  ["boot → both nodes Ready (pod network up)        ", "allNodesReadySeconds"],
  ["boot → first pods running, one per node         ", "firstPodsRunningSeconds"],
]) {
  if (times[key] !== undefined) console.log(`  ${label} ${times[key].toFixed(0).padStart(5)} s`);
}
