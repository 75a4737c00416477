import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fixtureSpec, repoRoot, tempDir } from "./helpers";

const work = tempDir("interrupt");

/**
 * A mirror on 127.0.0.1 that starts every answer and never finishes it: the bake blocks in its
 * downloads with their scratch files half-written.
 */
async function stallingMirror() {
  const sockets: Socket[] = [];
  let requests = 0;
  const server = createServer((_req, res) => {
    requests++;
    res.writeHead(200, { "content-length": String(1 << 20) });
    res.write("the first bytes of a file that never ends");
  });
  server.on("connection", (socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test("Ctrl-C during a bake: exit 130, no scratch files, no staging folder, no output", async () => {
  const mirror = await stallingMirror();
  const cache = join(work, "cache");
  const parent = join(work, "made-for-out"); // made by the bake for --out: goes too
  const out = join(parent, "image");
  const child = spawn(
    "node",
    ["bin/bake-image.js", "--spec", fixtureSpec, "--mirror", mirror.url, "--cache", cache, "--out", out],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    const scratch = () => (existsSync(join(cache, "tmp")) ? readdirSync(join(cache, "tmp")) : []);
    // All four downloads (the bake's concurrency) under way, half-written: none is still opening its file,
    // which a signal could not clean up (the file would appear after the clean-up ran).
    // The add-on images come first, two at a time: each asks the registry's /v2/ (answered, then left) and
    // its manifest, whose answer never ends while its scratch file waits.
    for (let i = 0; i < 400 && scratch().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(mirror.requests()).toBe(4);
    expect(scratch()).toHaveLength(2);
    expect(readdirSync(parent).filter((n) => n.includes(".kubebake-"))).toHaveLength(1);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
  } finally {
    child.kill("SIGKILL");
    await mirror.close();
  }
  expect(stderr).toContain("interrupted (SIGINT); temporary files removed");
  expect(readdirSync(join(cache, "tmp"))).toEqual([]);
  expect(existsSync(parent)).toBe(false);
}, 60_000);
