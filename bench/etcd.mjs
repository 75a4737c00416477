#!/usr/bin/env node
// etcd membership figures with the real etcd, one network namespace per master (root): runs
// test/etcd/membership.test.ts, then prints what it measured (reports/etcd-times.json): how long three
// masters starting at once take to be one cluster of three voters, and how long a replacement master
// (a new address, the dead member removed first) takes from its start to voting, and how long three new
// masters take, after every master was lost, to be one cluster of three voters restored from the newest
// snapshot in the store (moto's S3; two corrupt newer snapshots refused first).
//   node bench/etcd.mjs [--print]      --print: only print the figures of the last run
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const file = join(repo, "reports", "etcd-times.json");
if (!process.argv.includes("--print")) {
  execFileSync("npx", ["jest", "test/etcd/membership.test.ts"], { cwd: repo, stdio: "inherit" });
}
if (!existsSync(file)) {
  console.error(`bench/etcd: no figures yet (${file}); run without --print, as root`);
  process.exit(1);
}
const { bootstrapSeconds, replacementSeconds, restoreSeconds = [] } = JSON.parse(readFileSync(file, "utf8"));
const stats = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return `median ${at(0.5).toFixed(1)} s, p90 ${at(0.9).toFixed(1)} s, max ${sorted.at(-1).toFixed(1)} s (n=${sorted.length})`;
};
console.log(
  `real etcd, network namespaces, ${availableParallelism()} host cores; agent retry 0.2 s (bootstrap), 0.5 s (replacement)`,
);
if (bootstrapSeconds.length)
  console.log(
    `  three masters at once → one cluster of three voters    ${stats(bootstrapSeconds)}  (5 trios side by side)`,
  );
if (replacementSeconds.length)
  console.log(
    `  replacement start → voter (dead member removed first)  ${stats(replacementSeconds)}  (under a writer)`,
  );
if (restoreSeconds.length)
  console.log(
    `  every master lost → restored cluster of three voters    ${stats(restoreSeconds)}  (two corrupt snapshots refused first)`,
  );
