/**
 * azurite-blob (the official Azure Storage emulator, an npm dev dependency) as a child process of a test
 * file: it takes a free port itself (`--blobPort 0`, read back from its log, so two test files starting it
 * at once never race for one), logs to a file in its own temporary folder, and is stopped and removed.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface AzuriteProcess {
  /** Its folder, for the files the caller gives it (certificates). */
  dir: string;
  port: number;
  stop(): Promise<void>;
}

const LISTENING = /Azurite Blob service successfully listens on https?:\/\/127\.0\.0\.1:(\d+)/;

/** Starts azurite-blob with `args` (beside the host and port) in `dir`; resolves once it listens. */
export async function spawnAzurite(
  args: (dir: string) => string[],
  env: NodeJS.ProcessEnv = {},
): Promise<AzuriteProcess> {
  const dir = mkdtempSync(join(tmpdir(), "kubebake-azurite-"));
  // The log goes to a file, never a pipe nobody drains.
  const logPath = join(dir, "azurite.log");
  const log = openSync(logPath, "w");
  const bin = join(__dirname, "..", "node_modules", ".bin", "azurite-blob");
  const child = spawn(
    bin,
    [
      "--blobHost",
      "127.0.0.1",
      "--blobPort",
      "0",
      "--disableTelemetry",
      "--skipApiVersionCheck",
      ...args(dir),
    ],
    { cwd: dir, env: { ...process.env, ...env }, stdio: ["ignore", log, log] },
  );
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let port: number | undefined;
  for (let waited = 0; port === undefined; waited += 100) {
    const output = readFileSync(logPath, "utf8");
    port = Number(LISTENING.exec(output)?.[1]) || undefined;
    if (port !== undefined) break;
    if (child.exitCode !== null || waited > 30_000) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`azurite-blob did not start: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dir,
    port,
    async stop() {
      // A graceful stop waits for clients' keep-alive sockets to end: a moment's grace, then it is killed.
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 2000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
