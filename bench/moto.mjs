// moto for the benches: started on 127.0.0.1 at a free port through test/aws/moto_server.py (as the tests
// do), its log in WORK/moto.log. Returns the endpoint and the process (kill it when done).
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");

export async function startMoto(work) {
  const port = await new Promise((ok) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
  const log = openSync(join(work, "moto.log"), "w");
  const moto = spawn(
    "python3",
    [join(repo, "test/aws/moto_server.py"), "-H", "127.0.0.1", "-p", String(port)],
    { stdio: ["ignore", log, log], env: { ...process.env, MOTO_EC2_LOAD_DEFAULT_AMIS: "false" } },
  );
  closeSync(log);
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      await fetch(`${endpoint}/moto-api/`);
      return { endpoint, moto };
    } catch {
      if (i > 300) throw new Error("moto did not start");
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
