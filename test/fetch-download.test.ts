import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import type { ArtifactPlan } from "../src/bake/plan";
import { ExitCode } from "../src/errors";
import { ArtifactCache } from "../src/fetch/cache";
import { download, type DownloadOptions } from "../src/fetch/download";
import { ArtifactFetcher } from "../src/fetch/fetcher";
import { debFileName, mirrorDebianLocation, mirrorLocation, parseMirror } from "../src/fetch/mirror";
import { failure, tempDir } from "./helpers";
import { serve } from "./local-server";

// In-process tests of download(), the cache and mirror addressing: they run against mutants.
const work = tempDir("fetch-download");
const sha = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const body = Buffer.from("a stand-in payload\n".repeat(400));
// A generous idle timeout: a loaded machine can take a second to start a download.
const fast: DownloadOptions = { idleTimeoutMs: 5_000, attempts: 3, backoffMs: 10 };
let fileNo = 0;
const dest = () => join(work, `download-${++fileNo}`);

afterEach(() => jest.restoreAllMocks());

describe("download", () => {
  test("gives up after the configured attempts, naming the last reason; retries back off with jitter", async () => {
    const srv = await serve((_req, res, n) => (n <= 3 ? res.writeHead(503).end() : res.end(body)));
    for (const [random, delays] of [
      [0, [10, 20]],
      [0.9999999, [20, 40]],
    ] as const) {
      srv.requests.length = 0;
      jest.spyOn(Math, "random").mockReturnValue(random);
      const retries: unknown[] = [];
      const options = { ...fast, backoffMs: 20, onRetry: (...args: unknown[]) => retries.push(args) };
      const error = await failure(download(`${srv.base}/x`, dest(), options));
      expect(error.exitCode).toBe(ExitCode.downloadFailed);
      expect(error.message).toBe(
        `download of ${srv.base}/x failed after 3 attempts: HTTP 503 Service Unavailable`,
      );
      expect(srv.requests).toHaveLength(3);
      expect(retries).toEqual([
        [1, "HTTP 503 Service Unavailable", delays[0]],
        [2, "HTTP 503 Service Unavailable", delays[1]],
      ]);
    }
  });

  test.each([500, 429])("HTTP %d is retried", async (status) => {
    const srv = await serve((_req, res, n) => (n === 1 ? res.writeHead(status).end() : res.end(body)));
    expect(await download(`${srv.base}/x`, dest(), fast)).toBe(sha(body));
    expect(srv.requests).toHaveLength(2);
  });

  test("a status without a reason phrase is reported without a trailing space", async () => {
    const busy = await serve((_req, res) => res.writeHead(503, "").end());
    expect((await failure(download(`${busy.base}/x`, dest(), { ...fast, attempts: 1 }))).message).toBe(
      `download of ${busy.base}/x failed after 1 attempts: HTTP 503`,
    );
    const gone = await serve((_req, res) => res.writeHead(410, "").end());
    expect((await failure(download(`${gone.base}/x`, dest(), fast))).message).toBe(
      `download of ${gone.base}/x failed: HTTP 410`,
    );
    expect(gone.requests).toHaveLength(1);
  });

  test("a reset connection is a network error naming the socket error code", async () => {
    const srv = await serve((req) => req.socket.destroy());
    const error = await failure(download(`${srv.base}/x`, dest(), { ...fast, attempts: 2 }));
    expect(error.message).toBe(
      `download of ${srv.base}/x failed after 2 attempts: network error: UND_ERR_SOCKET`,
    );
  });

  test("a chunked body cut off midway is retried, not taken as the whole file", async () => {
    const srv = await serve((req, res, n) => {
      if (n > 1) return res.end(body);
      res.write(body.subarray(0, 100)); // chunked: no length to compare with
      setTimeout(() => req.socket.destroy(), 20);
    });
    const file = dest();
    expect(await download(`${srv.base}/x`, file, fast)).toBe(sha(body));
    expect(readFileSync(file)).toEqual(body);
    expect(srv.requests).toHaveLength(2);
  });

  test("a body shorter than its Content-Length is retried and reported", async () => {
    const spy = jest
      .spyOn(globalThis, "fetch")
      .mockImplementation(async () => new Response("short", { headers: { "content-length": "100" } }));
    const error = await failure(download("http://mirror.invalid/x", dest(), { ...fast, attempts: 2 }));
    expect(error.message).toBe(
      "download of http://mirror.invalid/x failed after 2 attempts: connection closed after 5 of 100 bytes",
    );
    expect(spy).toHaveBeenCalledTimes(2);
  });

  test("asks for the file as stored: a server that compresses on request still gives the exact bytes", async () => {
    const srv = await serve((req, res) => {
      if (!/gzip/.test(req.headers["accept-encoding"] ?? "")) return res.end(body);
      const packed = gzipSync(body);
      res.writeHead(200, { "content-encoding": "gzip", "content-length": packed.length }).end(packed);
    });
    const file = dest();
    expect(await download(`${srv.base}/x`, file, fast)).toBe(sha(body));
    expect(readFileSync(file)).toEqual(body);
  });

  test("a file that cannot be written is final: exit 4 after one request, naming the file", async () => {
    const srv = await serve((_req, res) => res.end(body));
    const file = join(work, "no-such-folder", "x");
    const error = await failure(download(`${srv.base}/x`, file, fast));
    expect(error.exitCode).toBe(ExitCode.downloadFailed);
    expect(error.message).toBe(`download of ${srv.base}/x failed: cannot write ${file} (ENOENT)`);
    expect(srv.requests).toHaveLength(1);
  });

  test("a finished download leaves no idle timer running (the process can exit at once)", async () => {
    const srv = await serve((_req, res) => res.end(body));
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    await download(`${srv.base}/warm-up`, dest(), fast);
    const before = timers();
    await download(`${srv.base}/x`, dest(), { ...fast, idleTimeoutMs: 60_000 });
    expect(timers()).toBe(before);
  });
});

describe("the artifact cache", () => {
  test("scratch files sit in <cache>/tmp, named after the label's last 80 characters made file-safe", async () => {
    const cache = new ArtifactCache(join(work, "scratch-cache"));
    const label = `https://dl.example.invalid/${"long/".repeat(80)}kube let`;
    const path = await cache.scratch(label);
    expect(dirname(path)).toBe(join(work, "scratch-cache", "tmp"));
    const safe = label.replace(/[^A-Za-z0-9._-]/g, "_");
    expect(basename(path).endsWith(`-${safe.slice(-80)}`)).toBe(true);
    expect(basename(path)).not.toContain(safe.slice(-81));
    writeFileSync(path, "x");
    expect(await cache.scratch(label)).not.toBe(path);
  });

  test("a corrupted entry read twice at once is dropped once, and both reads miss", async () => {
    const cache = new ArtifactCache(join(work, "race-cache"));
    const scratch = await cache.scratch("x");
    writeFileSync(scratch, "bit rot");
    await cache.put(scratch, sha(body));
    expect(await Promise.all([cache.get(sha(body)), cache.get(sha(body))])).toEqual([undefined, undefined]);
  });

  test("pointers are rewritten in place; a missing pointer reads as undefined", async () => {
    const cache = new ArtifactCache(join(work, "pointer-cache"));
    expect(await cache.readPointer("runc.deb")).toBeUndefined();
    await cache.writePointer("runc.deb", "a".repeat(64));
    await cache.writePointer("runc.deb", "b".repeat(64));
    await cache.writePointer("etcd.deb", "c".repeat(64));
    expect(await cache.readPointer("runc.deb")).toBe("b".repeat(64));
    expect(statSync(join(work, "pointer-cache", "pointers", "etcd.deb")).size).toBe(65);
  });
});

describe("mirrors", () => {
  test("--mirror takes http(s) URLs, file:// URLs and folders", () => {
    expect(parseMirror("https://mirror.example//")).toEqual({ kind: "url", base: "https://mirror.example" });
    expect(parseMirror("http://mirror.example/k8s")).toEqual({
      kind: "url",
      base: "http://mirror.example/k8s",
    });
    expect(parseMirror("file:///srv/mirror")).toEqual({ kind: "dir", dir: "/srv/mirror" });
    expect(parseMirror("/srv/copies-of-https://x")).toEqual({ kind: "dir", dir: "/srv/copies-of-https://x" });
    expect(parseMirror("mirror")).toEqual({ kind: "dir", dir: join(process.cwd(), "mirror") });
  });

  test("upstream files and Debian packages are addressed by host and path, epochs as apt names them", () => {
    const url = parseMirror("https://m.example/");
    const dir = parseMirror("/srv/m");
    expect(mirrorLocation(url, "https://dl.k8s.io/v1/a%20b")).toBe("https://m.example/dl.k8s.io/v1/a%20b");
    expect(mirrorLocation(dir, "https://dl.k8s.io/v1/a%20b")).toBe("/srv/m/dl.k8s.io/v1/a b");
    expect(debFileName("containerd", "1:1.7.24~ds1-1", "arm64")).toBe(
      "containerd_1%3a1.7.24~ds1-1_arm64.deb",
    );
    expect(mirrorDebianLocation(dir, "runc", "1:1.0", "amd64")).toBe("/srv/m/debian/runc_1%3a1.0_amd64.deb");
    expect(mirrorDebianLocation(url, "runc", "1:1.0", "amd64")).toBe(
      "https://m.example/debian/runc_1%253a1.0_amd64.deb",
    );
  });

  test("an unpinned Debian package from a URL mirror is cached under a pointer; the next fetch makes no request", async () => {
    const deb = Buffer.from("a stand-in .deb");
    const srv = await serve((_req, res) => res.end(deb));
    const cacheDir = join(work, "deb-url-cache");
    const lines: string[] = [];
    const fetcherOn = () =>
      new ArtifactFetcher({
        cache: new ArtifactCache(cacheDir),
        mirror: parseMirror(srv.base),
        download: fast,
        progress: { step: () => {}, info: (line) => lines.push(line) },
      });
    const plan: ArtifactPlan = {
      component: "runc",
      version: "1:1.0",
      arch: "amd64",
      source: { kind: "debian", package: "runc", version: "1:1.0" },
      install: [],
    };
    const first = fetcherOn();
    expect(await first.fetch(plan)).toEqual({
      path: join(cacheDir, "sha256", sha(deb)),
      sha256: sha(deb),
      origin: "debian:runc=1:1.0:amd64",
      fromCache: false,
    });
    expect(first.requests).toBe(1);
    expect(lines).toEqual([`fetch ${srv.base}/debian/runc_1%253a1.0_amd64.deb`]);
    const second = fetcherOn();
    expect((await second.fetch(plan)).fromCache).toBe(true);
    expect(second.requests).toBe(0);
    expect(srv.requests.map((r) => r.url)).toEqual(["/debian/runc_1%253a1.0_amd64.deb"]);
  });

  test("retries are reported on the progress lines", async () => {
    const srv = await serve((_req, res, n) => (n === 1 ? res.writeHead(502).end() : res.end(body)));
    jest.spyOn(Math, "random").mockReturnValue(0);
    const lines: string[] = [];
    const fetcher = new ArtifactFetcher({
      cache: new ArtifactCache(join(work, "retry-cache")),
      download: fast,
      progress: { step: () => {}, info: (line) => lines.push(line) },
    });
    const url = `${srv.base}/thing`;
    await fetcher.fetch({
      component: "thing",
      version: "v1",
      arch: "amd64",
      source: { kind: "upstream", format: "binary", url, sha256: sha(body) },
      install: [],
    });
    expect(lines).toEqual([`fetch ${url}`, `retry 1 of ${url} in 5 ms: HTTP 502 Bad Gateway`]);
    expect(fetcher.requests).toBe(1);
  });
});
