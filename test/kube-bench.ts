import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { repoRoot } from "./helpers";

// kube-bench (the CIS Kubernetes Benchmark runner, built from its module by test/upstream/build-kube-bench.sh)
// reaches a booted node on a read-only disk of its own, labelled kbtools: nothing of it is in the image.

export const KUBE_BENCH_BENCHMARK = "cis-1.12";

/** An ext4 disk image holding kube-bench, the benchmark's checks and kubebake's component map. */
export function kubeBenchDrive(dir: string): string {
  const built = spawnSync("sh", [join(repoRoot, "test", "upstream", "build-kube-bench.sh"), "--quiet"], {
    encoding: "utf8",
  });
  if (built.status !== 0) throw new Error(`test/upstream/build-kube-bench.sh failed:\n${built.stderr}`);
  const programDir = built.stdout.trim().split("\n").pop()!;
  const tree = join(dir, "kbtools");
  mkdirSync(join(tree, "cfg"), { recursive: true });
  copyFileSync(join(programDir, "kube-bench"), join(tree, "kube-bench"));
  cpSync(join(programDir, "cfg", KUBE_BENCH_BENCHMARK), join(tree, "cfg", KUBE_BENCH_BENCHMARK), {
    recursive: true,
  });
  copyFileSync(join(repoRoot, "test", "kube-bench", "config.yaml"), join(tree, "cfg", "config.yaml"));
  adaptChecks(join(tree, "cfg", KUBE_BENCH_BENCHMARK));
  const image = join(dir, "kbtools.ext4");
  const made = spawnSync("mkfs.ext4", ["-q", "-F", "-L", "kbtools", "-d", tree, image, "160M"], {
    encoding: "utf8",
  });
  if (made.status !== 0) throw new Error(`mkfs.ext4 failed: ${made.stderr}`);
  return image;
}

type Check = { id: string } & Record<string, unknown>;
type Controls = { groups: { checks?: Check[] }[] };

/**
 * Replaces the tests of the benchmark's checks that test/kube-bench/adapted-checks.yaml names (each by file
 * and id): the checks that look for a flag kubebake sets in a configuration file instead. Returns the ids.
 */
export function adaptChecks(benchmarkDir: string): string[] {
  const adapted = parse(
    readFileSync(join(repoRoot, "test", "kube-bench", "adapted-checks.yaml"), "utf8"),
  ) as Record<string, Record<string, Record<string, unknown>>>;
  const done: string[] = [];
  for (const [file, checks] of Object.entries(adapted)) {
    const path = join(benchmarkDir, file);
    const controls = parse(readFileSync(path, "utf8")) as Controls;
    for (const [id, replacement] of Object.entries(checks)) {
      const check = controls.groups.flatMap((g) => g.checks ?? []).find((c) => c.id === id);
      if (!check) throw new Error(`adapted-checks.yaml: ${file} has no check ${id}`);
      Object.assign(check, replacement);
      done.push(id);
    }
    writeFileSync(path, stringify(controls));
  }
  return done;
}

/**
 * A report-script fragment that runs the benchmark's `targets` on the guest and says, on one line, every
 * check that did not pass as `[id, status]`; a failed check's audit output follows on KBLOG lines.
 */
export function kubeBenchReport(key: string, targets: string[]): string {
  return `mkdir -p /run/kbtools && mount -o ro /dev/disk/by-label/kbtools /run/kbtools
/run/kbtools/kube-bench run --config-dir /run/kbtools/cfg --config /run/kbtools/cfg/config.yaml \\
  --benchmark ${KUBE_BENCH_BENCHMARK} --targets ${targets.join(",")} --json > /run/${key}.json 2> /run/${key}.err
jq -r '.. | objects | select(has("test_number") and .status == "FAIL") | "\\(.test_number) \\(.audit) => \\(.actual_value) \\(.reason)"' /run/${key}.json 2>&1 |
  tr -s '\\n' ' ' | fold -w 400 | sed 's/^/KBLOG ${key}: /' > /dev/ttyS0
tail -n 5 /run/${key}.err | sed 's/^/KBLOG ${key} stderr: /' > /dev/ttyS0
say "${key} $(jq -c '[.. | objects | select(has("test_number") and .status != "PASS") | [.test_number, .status]]' /run/${key}.json 2>&1 | tr -d '\\n')"
say "${key}-passed $(jq -c '[.. | objects | select(has("test_number") and .status == "PASS")] | length' /run/${key}.json 2>&1)"`;
}

/** The ids of the kube-bench checks docs/security.md explains (its table's first column). */
export function explainedChecks(securityDoc: string): Set<string> {
  const section = securityDoc.split(/^## /m).find((s) => s.startsWith("CIS benchmark"));
  if (!section) return new Set();
  return new Set([...section.matchAll(/^\| ([0-9]+(?:\.[0-9]+)+) \|/gm)].map((m) => m[1]!));
}
