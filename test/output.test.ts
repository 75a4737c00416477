import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fixtureMirror, fixtureSpec, repoRoot, tempDir } from "./helpers";

/** Output paths that cannot be written are bad input (exit 2, the path and why), found at once. */
const work = tempDir("output");
chmodSync(work, 0o755); // the EACCES cases run as nobody, who must reach the folders inside
const cache = join(work, "cache");

const commands: Record<string, (out: string) => string[]> = {
  "bake-image --out": (out) => [
    "bin/bake-image.js",
    ...["--out", out, "--spec", fixtureSpec, "--mirror", fixtureMirror, "--cache", cache],
  ],
  "pki init --out": (out) => [
    "bin/kubebake.js",
    "pki",
    "init",
    "--cluster",
    "demo",
    "--out",
    out,
    "--spec",
    fixtureSpec,
  ],
  "spec schema --out": (out) => ["bin/kubebake.js", "spec", "schema", "--out", out],
  "cluster schema --out": (out) => ["bin/kubebake.js", "cluster", "schema", "--out", out],
};

function run(argv: string[], options: { uid?: number; wrap?: (command: string) => string[] } = {}) {
  const command = ["node", ...argv];
  const [file, ...args] = options.wrap ? options.wrap(command.map((a) => `'${a}'`).join(" ")) : command;
  const result = spawnSync(file!, args, {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 30_000, // /proc/kb used to spin at 100 % CPU for ever
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
    env: { ...process.env, HOME: work },
  });
  return { code: result.status, signal: result.signal, stderr: result.stderr };
}

const nobody = 65534;
const rootOwned = join(work, "root-owned");
mkdirSync(rootOwned, { mode: 0o755 });
const aFile = join(work, "a-file");
writeFileSync(aFile, "x");
const canUnshare =
  process.getuid?.() === 0 && spawnSync("unshare", ["-m", "true"], { encoding: "utf8" }).status === 0;
const readOnly = join(work, "read-only");
mkdirSync(readOnly);

describe.each(Object.keys(commands))("%s", (name) => {
  const argv = commands[name]!;
  const expectRefused = (result: ReturnType<typeof run>, path: string, reason: RegExp) => {
    expect(result.signal).toBeNull();
    expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
    expect(result.stderr).toMatch(
      new RegExp(`^error: --out ${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: `),
    );
    expect(result.stderr).toMatch(reason);
    expect(result.code).toBe(2);
  };

  test("under /proc: refused at once", () => {
    expectRefused(run(argv("/proc/kb")), "/proc/kb", /cannot be created there .*\(ENOENT\)/);
  });

  test("under a file: ENOTDIR", () => {
    expectRefused(
      run(argv(join(aFile, "sub"))),
      join(aFile, "sub"),
      /a part of the path is a file, not a folder \(ENOTDIR\)/,
    );
  });

  (process.getuid?.() === 0 ? test : test.skip)(
    "in a folder the user may not write: EACCES, nothing left",
    () => {
      // folders are made as needed for a bake and a PKI; a schema is one file in an existing folder
      const out = name.includes("schema") ? join(rootOwned, "schema.json") : join(rootOwned, "out", "deeper");
      expectRefused(run(argv(out), { uid: nobody }), out, /permission denied \(EACCES\)/);
      expect(readdirSync(rootOwned)).toEqual([]);
    },
  );

  (canUnshare ? test : test.skip)("on a read-only file system: EROFS", () => {
    const out = join(readOnly, "out");
    const wrap = (command: string) => [
      "unshare",
      "-m",
      "sh",
      "-c",
      `mount -t tmpfs -o ro tmpfs '${readOnly}' && exec ${command}`,
    ];
    expectRefused(run(argv(out), { wrap }), out, /the file system is read-only \(EROFS\)/);
  });
});

test("an existing file given as a folder (pki init), a folder given as a file (schema)", () => {
  expect(run(commands["pki init --out"]!(aFile)).stderr).toBe(
    `error: --out ${aFile}: exists and is not a folder (EEXIST)\n`,
  );
  expect(run(commands["spec schema --out"]!(rootOwned)).stderr).toBe(
    `error: --out ${rootOwned}: is a folder (EISDIR)\n`,
  );
  expect(run(commands["bake-image --out"]!(aFile)).stderr).toBe(
    `error: --out ${aFile}: exists and is not a folder\n`,
  );
  expect(existsSync(join(work, "cache"))).toBe(false); // refused before anything was fetched
  const noFolder = join(work, "missing", "schema.json");
  expect(run(commands["cluster schema --out"]!(noFolder)).stderr).toBe(
    `error: --out ${noFolder}: the folder ${join(work, "missing")} does not exist\n`,
  );
});
