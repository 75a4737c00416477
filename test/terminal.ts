/**
 * Runs a CLI on a pseudo-terminal, as from a user's shell: stdin, stdout and stderr are one TTY of the given
 * width (stdout optionally a file), and an answer is typed once the prompt appears. Python's pty module does the terminal work.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "./helpers";

const driver = String.raw`
import fcntl, json, os, pty, struct, sys, termios
spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, spec["columns"], 0, 0))
    if spec["stdout"]:
        os.dup2(os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
    os.execvp(spec["argv"][0], spec["argv"])
out, answered = b"", spec["prompt"] is None
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if not answered and spec["prompt"].encode() in out:
        os.write(fd, (spec["answer"] + "\n").encode())
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
`;

export interface TerminalRun {
  code: number | null;
  /** stdout and stderr as the terminal showed them (one stream), with \n line ends. */
  output: string;
}

export function runOnTerminal(
  bin: "kubebake" | "bake-image",
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    columns?: number;
    prompt?: string;
    answer?: string;
    /** Sends stdout to this file instead (`> file`): only stdin and stderr are the terminal. */
    stdout?: string;
  } = {},
): TerminalRun {
  const spec = {
    argv: ["node", join(repoRoot, "bin", `${bin}.js`), ...args],
    columns: options.columns ?? 100,
    prompt: options.prompt ?? null,
    answer: options.answer ?? "",
    stdout: options.stdout ?? null,
  };
  const result = spawnSync("python3", ["-c", driver, JSON.stringify(spec)], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, ...options.env },
    timeout: 120_000,
  });
  if (result.error) throw result.error;
  return { code: result.status, output: result.stdout.replace(/\r\n/g, "\n") };
}
