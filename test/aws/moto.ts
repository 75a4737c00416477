/**
 * moto_server for a test file: started on 127.0.0.1 with a free port, reset between tests, stopped after.
 * moto is lenient where AWS is strict (see ../shared/notes/machine-facts.md); the reconciler's Route 53
 * semantics are also tested against test/discover/model.ts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
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
  // The Python that runs moto_server, with the launch-template repair of moto_server.py.
  const child: ChildProcess = spawn(
    "python3",
    [join(__dirname, "moto_server.py"), "-H", "127.0.0.1", "-p", String(port)],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, MOTO_EC2_LOAD_DEFAULT_AMIS: "false" },
    },
  );
  let stderr = "";
  child.stderr?.on("data", (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  // KUBEBAKE_MOTO_LOG=FILE keeps moto's log (its tracebacks explain HTTP 500s).
  if (process.env.KUBEBAKE_MOTO_LOG) child.stderr?.pipe(createWriteStream(process.env.KUBEBAKE_MOTO_LOG));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited: ${stderr}`);
    try {
      if ((await fetch(`${endpoint}/moto-api/`)).status < 500) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`moto_server did not start on ${endpoint}: ${stderr}`);
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
    },
  };
}
