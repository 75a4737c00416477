/**
 * moto_server for a test file: started on 127.0.0.1 with a free port, reset between tests, stopped after.
 * moto is lenient where AWS is strict (see ../shared/notes/machine-facts.md); the reconciler's Route 53
 * semantics are also tested against test/discover/model.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import { join } from "node:path";

export interface Moto {
  endpoint: string;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // moto logs every request. Its log goes to a file, never a pipe: a test blocked in spawnSync (the CLI
  // tests) would stop draining a pipe, and moto would hang writing to it.
  const logDir = process.env.KUBEBAKE_MOTO_LOG ? undefined : mkdtempSync(join(tmpdir(), "kubebake-moto-"));
  const logPath = process.env.KUBEBAKE_MOTO_LOG ?? join(logDir!, "moto.log");
  const log = openSync(logPath, "w");
  // The Python that runs moto_server, with the launch-template repair of moto_server.py.
  const child: ChildProcess = spawn(
    "python3",
    [join(__dirname, "moto_server.py"), "-H", "127.0.0.1", "-p", String(port)],
    { stdio: ["ignore", log, log], env: { ...process.env, MOTO_EC2_LOAD_DEFAULT_AMIS: "false" } },
  );
  closeSync(log);
  const tail = () => readFileSync(logPath, "utf8").slice(-4000);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited: ${tail()}`);
    try {
      if ((await fetch(`${endpoint}/moto-api/`)).status < 500) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`moto_server did not start on ${endpoint}: ${tail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    async reset() {
      const answer = await fetch(`${endpoint}/moto-api/reset`, { method: "POST" });
      if (!answer.ok) throw new Error(`moto reset: HTTP ${answer.status}`);
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
      if (logDir) rmSync(logDir, { recursive: true, force: true });
    },
  };
}
