import { spawn } from "node:child_process";
import { ExitCode, KubebakeError } from "../errors";

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

/** Runs a host tool; a missing tool is exit 5, a failing one an error with its last lines of output. */
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
      const tail = (stderr || stdout).trim().split("\n").slice(-5).join("\n");
      reject(
        new KubebakeError(`${command} ${args.join(" ")} failed (exit ${code}):\n${tail}`, ExitCode.internal),
      );
    });
  });
}
