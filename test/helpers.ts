import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubebakeError } from "../src/errors";

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

/** The KubebakeError a promise rejects with (the test fails if it resolves or rejects with anything else). */
export async function failure(promise: Promise<unknown>): Promise<KubebakeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KubebakeError);
  return error as KubebakeError;
}

export function runCli(bin: "kubebake" | "bake-image", args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync("node", [join(repoRoot, "bin", `${bin}.js`), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** runCli without blocking the event loop: for a CLI that talks to a server running in the test process. */
export function runCliAsync(
  bin: "kubebake" | "bake-image",
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("node", [join(repoRoot, "bin", `${bin}.js`), ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const built = new Map<string, string>();
/**
 * The folder a build script of test/upstream printed last (global setup ran each once; then it is a lookup
 * of its cache by version).
 */
function builtBy(script: string): string {
  if (!built.has(script)) {
    const result = spawnSync("sh", [join(repoRoot, "test", "upstream", script), "--quiet"], {
      encoding: "utf8",
    });
    if (result.status !== 0) throw new Error(`test/upstream/${script} failed:\n${result.stderr}`);
    built.set(script, result.stdout.trim().split("\n").pop()!);
  }
  return built.get(script)!;
}

/** The folder of etcdutl (test/upstream/build-etcdutl.sh). */
export const etcdutlProgramDir = () => builtBy("build-etcdutl.sh");
/** The folder of containerd, containerd-shim-runc-v2 and ctr built from their module (build-containerd.sh). */
export const upstreamContainerd = () => builtBy("build-containerd.sh");
/** The folder of the real Kubernetes programs, etcd and crictl (test/upstream/build.sh). */
export const upstreamPrograms = () => builtBy("build.sh");
