// Mutation testing of etcd-decide.jq, which StrykerJS cannot read: each mutant changes one operator of the
// program (outside strings and comments), and test/etcd/decide.test.ts must fail on it. Writes the score to
// reports/mutation/etcd-decide.json and lists the survivors. Run by `npm run mutate` (module etcd-decide).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
const source = readFileSync(join(repo, "src/node/etcd-decide.jq"), "utf8");

// [pattern, replacement]: relational, equality, boolean and arithmetic operators, selection and extremes.
const operators = [
  [/==/g, "!="],
  [/!=/g, "=="],
  [/>=/g, ">"],
  [/(?<![>=!<])>(?!=)/g, ">="],
  [/<=/g, "<"],
  [/(?<![<=!>])<(?!=)/g, "<="],
  [/\band\b/g, "or"],
  [/\bor\b/g, "and"],
  [/ \| not\b/g, ""],
  [/\+ 1\b/g, "- 1"],
  [/- 1\b/g, "+ 1"],
  [/\/ 2\b/g, "* 2"],
  [/\bfirst\b/g, "last"],
  [/\bmin_by\b/g, "max_by"],
  [/\b0\b/g, "1"],
  [/\b1\b/g, "0"],
];

/** The parts of a line that are code: outside "…" strings (with \( … ) interpolations inside) and comments. */
function codeRanges(line) {
  const ranges = [];
  let start = 0;
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (!inString && c === "#") return [...ranges, [start, i]];
    if (c === "\\" && inString) {
      i++;
      continue;
    }
    if (c === '"') {
      if (!inString) ranges.push([start, i]);
      else start = i + 1;
      inString = !inString;
    }
  }
  if (!inString) ranges.push([start, line.length]);
  return ranges;
}

const mutants = [];
const lines = source.split("\n");
lines.forEach((line, n) => {
  for (const [from, to] of operators) {
    for (const [a, b] of codeRanges(line)) {
      for (const m of line.slice(a, b).matchAll(from)) {
        const at = a + m.index;
        const mutated = line.slice(0, at) + to + line.slice(at + m[0].length);
        mutants.push({
          line: n + 1,
          from: m[0],
          to,
          text: [...lines.slice(0, n), mutated, ...lines.slice(n + 1)].join("\n"),
        });
      }
    }
  }
});

const dir = mkdtempSync(join(tmpdir(), "kubebake-mutate-jq-"));
const survivors = [];
let killed = 0;
for (const [i, mutant] of mutants.entries()) {
  const file = join(dir, `mutant-${i}.jq`);
  writeFileSync(file, mutant.text);
  const result = spawnSync(
    "npx",
    [
      "jest",
      "--globalSetup",
      join(repo, "scripts/no-global-setup.cjs"),
      "--silent",
      "test/etcd/decide.test.ts",
    ],
    { cwd: repo, env: { ...process.env, KUBEBAKE_ETCD_DECIDE: file }, encoding: "utf8" },
  );
  if (result.status === 0) survivors.push(mutant);
  else killed++;
  if (process.stdout.isTTY)
    process.stdout.write(`\r${i + 1}/${mutants.length} mutants, ${survivors.length} survived`);
}
rmSync(dir, { recursive: true, force: true });
const score = mutants.length ? (100 * killed) / mutants.length : 100;
console.log(`\netcd-decide.jq: ${killed} of ${mutants.length} mutants killed (${score.toFixed(1)} %)`);
for (const s of survivors) console.log(`  survived: line ${s.line}: ${s.from} → ${s.to || "(removed)"}`);
// In the shape of Stryker's JSON report, so bench/mutation.mjs scores it beside the others.
mkdirSync(join(repo, "reports/mutation"), { recursive: true });
const survivedAt = new Set(survivors);
writeFileSync(
  join(repo, "reports/mutation/etcd-decide.json"),
  JSON.stringify(
    {
      files: {
        "src/node/etcd-decide.jq": {
          mutants: mutants.map((m, id) => ({
            id: String(id),
            mutatorName: `${m.from} → ${m.to || "(removed)"}`,
            location: { start: { line: m.line } },
            status: survivedAt.has(m) ? "Survived" : "Killed",
          })),
        },
      },
    },
    null,
    2,
  ) + "\n",
);
