// Prints the mutation score of each module (test/mutation/modules.json) from the JSON reports that
// `npm run mutate` leaves in reports/mutation/. Score = detected (killed or timed out) / all mutants that
// are not compile errors (survivors and mutants no test reaches both count against it). Target: 80 % each.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const modules = JSON.parse(readFileSync(resolve(repo, "test/mutation/modules.json"), "utf8"));
const DETECTED = new Set(["Killed", "Timeout"]);
const TARGET = 80;

const rows = [];
for (const [name, { mutate }] of Object.entries(modules)) {
  const file = resolve(repo, "reports", "mutation", `${name}.json`);
  if (!existsSync(file)) {
    rows.push([name, mutate.join(" "), "not run", "", "", ""]);
    continue;
  }
  const mutants = Object.values(JSON.parse(readFileSync(file, "utf8")).files).flatMap((f) => f.mutants);
  const counted = mutants.filter((m) => m.status !== "CompileError" && m.status !== "Ignored");
  const detected = counted.filter((m) => DETECTED.has(m.status)).length;
  const survived = counted.filter((m) => m.status === "Survived").length;
  const uncovered = counted.filter((m) => m.status === "NoCoverage").length;
  const score = counted.length ? (100 * detected) / counted.length : 0;
  rows.push([
    name,
    mutate.join(" "),
    `${score.toFixed(1)} %${score >= TARGET ? "" : " (below 80)"}`,
    String(detected),
    String(survived),
    String(uncovered),
  ]);
}
const header = ["module", "files", "score", "detected", "survived", "no coverage"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r) =>
  r
    .map((c, i) => c.padEnd(widths[i]))
    .join("  ")
    .trimEnd();
console.log(line(header));
for (const r of rows) console.log(line(r));
