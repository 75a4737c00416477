/**
 * The CLI as a child process without blocking the test's event loop: the GCE and Azure fakes answer from
 * inside the test process, so spawnSync (test/helpers.ts runCli) would leave them unable to reply.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { bake } from "../../src/bake/bake";
import { silentProgress } from "../../src/util/progress";
import { fixtureMirror, fixtureSpec, repoRoot } from "../helpers";

export function runCliAsync(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn("node", [join(repoRoot, "bin", "bake-image.js"), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d));
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr })),
  );
}

/** The stand-in of buildDisk for jest.mock: a real disk needs root and minutes. */
export async function standInDisk(params: { staging: string; imageId: string }) {
  const content = Buffer.alloc(3 * 512 * 1024 + 100);
  content.write(`stand-in disk of ${params.imageId}`, 512 * 1024);
  writeFileSync(join(params.staging, "disk.raw"), content);
  const sha256 = createHash("sha256").update(content).digest("hex");
  return { format: "raw", file: "disk.raw", sha256, size: content.length, baseLayer: "stand-in" };
}

/** The fixture spec baked to --target raw into OUT (its disk the stand-in above when the test mocks buildDisk). */
export const fixtureRawBake = (out: string, cacheDir: string) =>
  bake({
    specPath: fixtureSpec,
    out,
    arch: "amd64",
    cacheDir,
    mirror: fixtureMirror,
    progress: silentProgress,
    target: "raw",
  });

/** No ambient cloud credentials for a child: an empty home, no metadata server, no credential variables. */
export const noCredentials = (home: string): NodeJS.ProcessEnv => ({
  HOME: home,
  CLOUDSDK_CONFIG: join(home, "gcloud"),
  GOOGLE_APPLICATION_CREDENTIALS: "",
  METADATA_SERVER_DETECTION: "none",
  AZURE_CLIENT_ID: "",
  AZURE_CLIENT_SECRET: "",
  AZURE_TENANT_ID: "",
  AZURE_FEDERATED_TOKEN_FILE: "",
  IDENTITY_ENDPOINT: "",
  MSI_ENDPOINT: "",
  PATH: "/usr/bin:/bin",
});
