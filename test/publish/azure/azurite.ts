/**
 * azurite-blob (the official Azure Storage emulator, an npm dev dependency) for a test file: started on
 * 127.0.0.1 with a free port and in-memory storage in a temporary folder, stopped and removed after.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";

/** The emulator's fixed, publicly documented development account (not a secret). */
const ACCOUNT = "devstoreaccount1";
export const ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface Azurite {
  /** The account's blob URL, e.g. http://127.0.0.1:PORT/devstoreaccount1 */
  blobUrl: string;
  account: string;
  key: StorageSharedKeyCredential;
  service: BlobServiceClient;
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

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

export async function startAzurite(): Promise<Azurite> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "kubebake-azurite-"));
  // The log goes to a file, never a pipe nobody drains.
  const logPath = join(dir, "azurite.log");
  const log = openSync(logPath, "w");
  const bin = join(__dirname, "../../../node_modules/.bin/azurite-blob");
  const args = ["--blobHost", "127.0.0.1", "--blobPort", String(port), "--inMemoryPersistence", "--silent"];
  const child: ChildProcess = spawn(bin, [...args, "--disableTelemetry", "--skipApiVersionCheck"], {
    cwd: dir,
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let waited = 0; !(await accepts(port)); waited += 100) {
    if (child.exitCode !== null || waited > 20000) {
      child.kill();
      const output = readFileSync(logPath, "utf8");
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`azurite-blob did not start: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const blobUrl = `http://127.0.0.1:${port}/${ACCOUNT}`;
  const key = new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY);
  return {
    blobUrl,
    account: ACCOUNT,
    key,
    service: new BlobServiceClient(blobUrl, key),
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
