// Prints the mutation score per module from StrykerJS's JSON report (reports/mutation/mutation.json),
// written by `npm run mutate`. Score = killed (and timed out) / (all mutants that tests could reach or not).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const MODULES = [
  ["src/fetch", (f) => f.startsWith("src/fetch/")],
  ["src/bake", (f) => f.startsWith("src/bake/")],
  ["src/image/hygiene.ts", (f) => f === "src/image/hygiene.ts"],
  ["src/discover", (f) => f.startsWith("src/discover/")],
  ["src/launch/aws/desired.ts", (f) => f === "src/launch/aws/desired.ts"],
  ["src/pki", (f) => f.startsWith("src/pki/")],
];
const report = JSON.parse(
  readFileSync(resolve(import.meta.dirname, "..", "reports", "mutation", "mutation.json"), "utf8"),
);
const DETECTED = new Set(["Killed", "Timeout"]);
const UNDETECTED = new Set(["Survived", "NoCoverage"]);
console.log("module                      score  killed  survived  no coverage");
for (const [name, owns] of MODULES) {
  const mutants = Object.entries(report.files)
    .filter(([file]) => owns(file.replace(/^\.\//, "")))
    .flatMap(([, f]) => f.mutants);
  const detected = mutants.filter((m) => DETECTED.has(m.status)).length;
  const undetected = mutants.filter((m) => UNDETECTED.has(m.status));
  if (detected + undetected.length === 0) continue;
  const score = ((100 * detected) / (detected + undetected.length)).toFixed(1);
  const survived = undetected.filter((m) => m.status === "Survived").length;
  console.log(
    `${name.padEnd(27)} ${score.padStart(5)}%  ${String(detected).padStart(6)}  ${String(survived).padStart(8)}  ${String(undetected.length - survived).padStart(11)}`,
  );
}
