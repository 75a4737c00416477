/** The CLI as a new user meets it: installing, --version, help, mistakes, --json, and the documented exit codes. */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ExitCode } from "../src/errors";
import { fixtureMirror, fixtureSpec, repoRoot, runCli, tempDir } from "./helpers";
import { runOnTerminal } from "./terminal";

const work = tempDir("cli");
const version = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).version as string;

/** The package's own files, as a fresh clone has them: no dist/, dependencies from this checkout. */
function freshCopy(name: string, withModules: boolean): string {
  const dir = join(work, name);
  for (const part of ["package.json", "bin", "scripts", "src", "lambdas", "units", "image"]) {
    cpSync(join(repoRoot, part), join(dir, part), { recursive: true });
  }
  if (withModules) symlinkSync(join(repoRoot, "node_modules"), join(dir, "node_modules"));
  return dir;
}

describe("installing", () => {
  test("without dist/cli.js both bins say in one line how to build it, and exit 1", () => {
    const dir = freshCopy("unbuilt", false);
    for (const bin of ["kubebake", "bake-image"]) {
      const result = spawnSync("node", [join(dir, "bin", `${bin}.js`), "--help"], { encoding: "utf8" });
      expect(result.status).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(
        new RegExp(
          `^${bin}: .*dist/cli\\.js is missing: run 'npm install' \\(or 'npm run build'\\)[^\\n]*\\n$`,
        ),
      );
    }
  });

  test("npm's prepare step (run by npm install) builds the bins; outside git --version is the bare version", () => {
    const dir = freshCopy("prepared", true);
    execFileSync("npm", ["run", "prepare", "--silent"], { cwd: dir, stdio: "pipe" });
    for (const bin of ["kubebake", "bake-image"]) {
      const help = spawnSync("node", [join(dir, "bin", `${bin}.js`), "--help"], { encoding: "utf8" });
      expect(help.status).toBe(0);
      expect(help.stdout).toContain(`${bin}`);
      const printed = spawnSync("node", [join(dir, "bin", `${bin}.js`), "--version"], { encoding: "utf8" });
      expect(printed.stdout).toBe(`${bin} ${version}\n`);
    }
  }, 120_000);
});

test("--version prints the package version and the commit it was built from", () => {
  const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
    cwd: repoRoot,
    encoding: "utf8",
  }).trim();
  for (const bin of ["kubebake", "bake-image"] as const) {
    const result = runCli(bin, ["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(`^${bin} ${version.replace(/\./g, "\\.")} \\(commit ${commit}(-dirty)?\\)\\n$`),
    );
  }
});

describe("help", () => {
  /** Every word of a description appears whole in the help, wherever the lines were broken. */
  const wordsIntact = (help: string, description: string) => {
    const tokens = new Set(help.split(/\s+/));
    return description.split(" ").filter((word) => !tokens.has(word));
  };

  test("on a narrow terminal, lines break between words", () => {
    const result = runOnTerminal("kubebake", ["cluster", "destroy", "--help"], { columns: 50 });
    expect(result.code).toBe(0);
    expect(wordsIntact(result.output, "machine-readable output on stdout, no progress")).toEqual([]);
    expect(result.output.split("\n").every((line) => line.length <= 50)).toBe(true);
  });

  test("in a pipeline, lines break between words", () => {
    const result = runCli("kubebake", ["image", "--help"]);
    expect(result.code).toBe(0);
    expect(
      wordsIntact(
        result.stdout,
        "list the preloaded images and hygiene violations (host keys, machine-id, instance state, caches, logs, histories, secrets, images not preloaded); exit 6 if any",
      ),
    ).toEqual([]);
  });
});

describe("mistakes", () => {
  test("a misspelt option is named, with the option meant, before any missing one", () => {
    const result = runCli("bake-image", ["--outt", join(work, "x")]);
    expect(result.code).toBe(ExitCode.invalidInput);
    expect(result.stderr).toBe(
      "error: unknown option --outt, did you mean --out?\nRun 'bake-image --help' for usage.\n",
    );
    const nested = runCli("kubebake", ["cluster", "plan", "-f", "x.yaml", "--jsn"]);
    expect(nested.code).toBe(ExitCode.invalidInput);
    expect(nested.stderr).toMatch(/^error: unknown option --jsn, did you mean --json\?\n/);
  });

  test("an option nothing resembles is named alone", () => {
    const result = runCli("kubebake", ["spec", "validate", "--zzzzzz"]);
    expect(result.code).toBe(ExitCode.invalidInput);
    expect(result.stderr).toMatch(/^error: unknown option --zzzzzz\n/);
  });
});

describe("--json", () => {
  test("spec validate and cluster validate", () => {
    const spec = runCli("kubebake", ["spec", "validate", "--spec", fixtureSpec, "--json"]);
    expect(spec.code).toBe(0);
    expect(JSON.parse(spec.stdout)).toMatchObject({ file: fixtureSpec, valid: true });
    const example = join(repoRoot, "docs/examples/cluster.yaml");
    const cluster = runCli("kubebake", ["cluster", "validate", "-f", example, "--json"]);
    expect(cluster.code).toBe(0);
    expect(JSON.parse(cluster.stdout)).toEqual({
      file: example,
      valid: true,
      cluster: "demo",
      cloud: "aws",
      region: "eu-west-1",
    });
  });

  test("pki init", () => {
    const out = join(work, "pki");
    const result = runCli("kubebake", ["pki", "init", "--cluster", "demo", "--out", out, "--json"]);
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout);
    expect(printed).toMatchObject({ cluster: "demo", out });
    expect(printed.files).toContain("ca.crt");
  }, 60_000);

  test("pki ca: a step's result, plain and as JSON; a step out of order or an unknown CA exits 2", () => {
    const dir = join(work, "pki-ca");
    expect(runCli("kubebake", ["pki", "init", "--cluster", "demo", "--out", dir]).code).toBe(0);
    const added = runCli("kubebake", ["pki", "ca", "add", "--ca", "ca", "--dir", dir]);
    expect({ code: added.code, stderr: added.stderr }).toEqual({ code: 0, stderr: "" });
    expect(added.stdout).toMatch(
      new RegExp(
        `^${join(dir, "ca.crt")}: add: signs with CN=kubebake-demo-ca, also trusts CN=kubebake-demo-ca-\\d{8}\n` +
          "rewrote ca.crt, ca.key, admin.kubeconfig: store them, then replace the masters one at a time, then the minions\n$",
      ),
    );
    const used = runCli("kubebake", ["pki", "ca", "use", "--ca", "ca", "--dir", dir, "--json"]);
    expect(used.code).toBe(0);
    const printed = JSON.parse(used.stdout);
    expect(printed).toMatchObject({
      dir,
      ca: "ca",
      step: "use",
      files: ["ca.crt", "ca.key", "admin.crt", "admin.key", "admin.kubeconfig"],
    });
    expect(printed.cas.map((c: { subject: string }) => c.subject)).toEqual([
      expect.stringMatching(/^CN=kubebake-demo-ca-\d{8}$/),
      "CN=kubebake-demo-ca",
    ]);
    const etcd = runCli("kubebake", ["pki", "ca", "retire", "--ca", "etcd-ca", "--dir", dir]);
    expect({ code: etcd.code, stdout: etcd.stdout, stderr: etcd.stderr }).toEqual({
      code: 2,
      stdout: "",
      stderr: `error: ${join(dir, "etcd-ca.crt")}: only CN=kubebake-demo-etcd-ca: nothing to retire\n`,
    });
    const unknown = runCli("kubebake", ["pki", "ca", "add", "--ca", "sa", "--dir", dir]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(
      /Invalid values:\s+Argument: ca, Given: "sa", Choices: "ca", "etcd-ca", "front-proxy-ca"/,
    );
  }, 60_000);

  test("bake: the manifest's fields and whether the image was reused", () => {
    mkdirSync(join(work, "bake"), { recursive: true });
    const args = ["--out", join(work, "bake", "out"), "--spec", fixtureSpec, "--mirror", fixtureMirror];
    const cache = ["--cache", join(work, "bake", "cache"), "--arch", "amd64", "--json"];
    const first = runCli("bake-image", [...args, ...cache]);
    expect(first.code).toBe(0);
    const made = JSON.parse(first.stdout);
    expect(made.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(made.files.length).toBeGreaterThan(10);
    expect(made.reused).toBe(false);
    const again = JSON.parse(runCli("bake-image", [...args, ...cache]).stdout);
    expect(again).toEqual({ ...made, reused: true });
  }, 180_000);
});

test("the README's table of exit codes is the code's", () => {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = readme.split("### Exit codes")[1]!.split(/\n#/)[0]!;
  const rows = [...section.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((m) => [Number(m[1]), m[2]!] as const);
  expect(rows.map(([code]) => code)).toEqual(Object.values(ExitCode).sort((a, b) => a - b));
  for (const [, meaning] of rows) expect(meaning.trim().length).toBeGreaterThan(3);
  expect(ExitCode.notConfirmed).toBe(9);
  expect(Object.fromEntries(rows)[9]).toMatch(/confirm.*--yes/);
});
