import { spawn } from "node:child_process";
import { ExitCode, KubebakeError, type ExitCodeValue } from "../errors";

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** The exit code when the tool fails (default: internal). */
  failCode?: ExitCodeValue;
  /** What of the tool's output explains a failure (default: its last lines). */
  detail?: (output: string) => string;
}

const lastLines = (output: string) => output.trim().split("\n").slice(-5).join("\n");

/** Runs a host tool; a missing tool is exit 5, a failing one an error with what its output says. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    if (options.input !== undefined) child.stdin!.end(options.input);
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new KubebakeError(
              `${command} is not installed (see the README's host tools)`,
              ExitCode.missingTool,
            )
          : error,
      ),
    );
    child.on("close", (code) => {
      if (code === 0) return resolve(stdout);
      const detail = (options.detail ?? lastLines)(stderr || stdout) || `exit ${code}`;
      reject(
        new KubebakeError(
          `${command} ${args.join(" ")} failed: ${detail}`,
          options.failCode ?? ExitCode.internal,
        ),
      );
    });
  });
}
