import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const repoRoot = join(__dirname, "..");
export const fixtureSpec = join(repoRoot, "test", "fixtures", "image.yaml");
export const fixtureMirror = join(repoRoot, "test", "fixtures", "mirror");
export const realSpec = join(repoRoot, "image", "kubebake.yaml");
export const referenceFlags =
  process.env.KUBEBAKE_REFERENCE_FLAGS ?? join(repoRoot, "..", "shared", "reference", "flags");

/** A temporary folder removed after the test file. */
export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `kubebake-test-${label}-`));
  // KUBEBAKE_KEEP_TEST_DIRS=1 keeps them (serial logs of boot tests, baked trees) for a look afterwards.
  if (!process.env.KUBEBAKE_KEEP_TEST_DIRS) afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function runCli(bin: "kubebake" | "bake-image", args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync("node", [join(repoRoot, "bin", `${bin}.js`), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
