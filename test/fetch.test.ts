import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tar from "tar";
import type { ArtifactPlan } from "../src/bake/plan";
import { ExitCode } from "../src/errors";
import { ArtifactCache } from "../src/fetch/cache";
import { takeFiles } from "../src/fetch/extract";
import { ArtifactFetcher } from "../src/fetch/fetcher";
import { parseMirror } from "../src/fetch/mirror";
import { loadImageSpec } from "../src/spec/load";
import { silentProgress } from "../src/util/progress";
import { failure, fixtureMirror, fixtureSpec, runCli, tempDir } from "./helpers";
import { serve } from "./local-server";

const work = tempDir("fetch");
const sha = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const body = Buffer.from("#!/bin/sh\necho a stand-in payload\n".repeat(500));
// A generous idle timeout: a loaded machine can take a second to start a download. Stall tests set their own.
const fast = { idleTimeoutMs: 5_000, attempts: 3, backoffMs: 10 };

let caseNo = 0;
function fetcherFor(
  options: { mirror?: string; attempts?: number; idleTimeoutMs?: number; cacheDir?: string } = {},
) {
  const cacheDir = options.cacheDir ?? join(work, `cache-${++caseNo}`);
  const fetcher = new ArtifactFetcher({
    cache: new ArtifactCache(cacheDir),
    mirror: options.mirror ? parseMirror(options.mirror) : undefined,
    download: {
      ...fast,
      attempts: options.attempts ?? fast.attempts,
      idleTimeoutMs: options.idleTimeoutMs ?? fast.idleTimeoutMs,
    },
    progress: silentProgress,
  });
  return { fetcher, cacheDir };
}

const upstream = (url: string, digest = sha(body)): ArtifactPlan => ({
  component: "thing",
  version: "v1",
  arch: "amd64",
  source: { kind: "upstream", format: "binary", url, sha256: digest },
  install: [{ from: "thing", to: "/usr/local/bin/thing", mode: 0o755 }],
});

/** Nothing but verified files in the cache, and no scratch files left. */
function cacheFiles(cacheDir: string): string[] {
  const dir = join(cacheDir, "sha256");
  const leftovers = existsSync(join(cacheDir, "tmp")) ? readdirSync(join(cacheDir, "tmp")) : [];
  expect(leftovers).toEqual([]);
  return existsSync(dir) ? readdirSync(dir) : [];
}

describe("fetching upstream artifacts", () => {
  test("downloads, verifies and caches; a cached artifact makes no request", async () => {
    const srv = await serve((_req, res) => res.end(body));
    const { fetcher, cacheDir } = fetcherFor();
    const first = await fetcher.fetch(upstream(`${srv.base}/bin/thing`));
    expect(readFileSync(first.path)).toEqual(body);
    expect(first.fromCache).toBe(false);
    const second = await fetcherFor({ cacheDir }).fetcher.fetch(upstream(`${srv.base}/bin/thing`));
    expect(second.fromCache).toBe(true);
    expect(srv.paths).toEqual(["/bin/thing"]);
    expect(cacheFiles(cacheDir)).toEqual([sha(body)]);
  });

  test("a digest mismatch is refused with exit 3, naming the URL and both digests; the file is discarded", async () => {
    const srv = await serve((_req, res) => res.end("tampered"));
    const { fetcher, cacheDir } = fetcherFor();
    const error = await failure(fetcher.fetch(upstream(`${srv.base}/bin/thing`)));
    expect(error.exitCode).toBe(ExitCode.digestMismatch);
    expect(error.message).toBe(
      `SHA-256 mismatch for ${srv.base}/bin/thing: expected ${sha(body)}, got ${sha("tampered")}; the file was discarded`,
    );
    expect(cacheFiles(cacheDir)).toEqual([]);
  });

  test("redirects are followed", async () => {
    const srv = await serve((req, res) => {
      if (req.url === "/release/thing") res.writeHead(302, { location: "/cdn/1/thing" }).end();
      else if (req.url === "/cdn/1/thing") res.writeHead(301, { location: "/cdn/2/thing" }).end();
      else res.end(body);
    });
    const { fetcher } = fetcherFor();
    await fetcher.fetch(upstream(`${srv.base}/release/thing`));
    expect(srv.paths).toEqual(["/release/thing", "/cdn/1/thing", "/cdn/2/thing"]);
  });

  test("5xx answers are retried with backoff", async () => {
    const srv = await serve((_req, res, n) => (n < 3 ? res.writeHead(503).end("busy") : res.end(body)));
    const { fetcher } = fetcherFor();
    await fetcher.fetch(upstream(`${srv.base}/thing`));
    expect(srv.requests).toHaveLength(3);
  });

  test("connection resets and truncated bodies are retried", async () => {
    const srv = await serve((req, res, n) => {
      if (n === 1) req.socket.destroy();
      else if (n === 2) {
        res.writeHead(200, { "content-length": String(body.length) });
        res.write(body.subarray(0, 100));
        setTimeout(() => req.socket.destroy(), 20);
      } else res.end(body);
    });
    const { fetcher } = fetcherFor();
    const fetched = await fetcher.fetch(upstream(`${srv.base}/thing`));
    expect(readFileSync(fetched.path)).toEqual(body);
    expect(srv.requests).toHaveLength(3);
  });

  test("a stalled download times out, is retried, and fails with exit 4", async () => {
    const srv = await serve((_req, res) => {
      res.writeHead(200, { "content-length": String(body.length) });
      res.write(body.subarray(0, 10)); // then nothing
    });
    const { fetcher, cacheDir } = fetcherFor({ attempts: 2, idleTimeoutMs: 300 });
    const error = await failure(fetcher.fetch(upstream(`${srv.base}/thing`)));
    expect(error.exitCode).toBe(ExitCode.downloadFailed);
    expect(error.message).toBe(`download of ${srv.base}/thing failed after 2 attempts: no data for 300 ms`);
    expect(srv.requests).toHaveLength(2);
    expect(cacheFiles(cacheDir)).toEqual([]);
  });

  test.each(["ENOTFOUND", "EAI_AGAIN"])(
    "a name that does not resolve (%s) is not retried: exit 4 naming the host and --mirror",
    async (code) => {
      const offline = Object.assign(new TypeError("fetch failed"), {
        cause: Object.assign(new Error(`getaddrinfo ${code} dl.k8s.io`), { code, hostname: "dl.k8s.io" }),
      });
      const spy = jest.spyOn(globalThis, "fetch").mockRejectedValue(offline);
      try {
        const { fetcher } = fetcherFor({ attempts: 5 });
        const error = await failure(
          fetcher.fetch(upstream("https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubelet")),
        );
        expect(spy).toHaveBeenCalledTimes(1);
        expect(error.exitCode).toBe(ExitCode.downloadFailed);
        expect(error.message).toBe(
          `cannot reach dl.k8s.io (${code}: the name does not resolve; no network or no DNS?) for https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubelet; ` +
            "bake from a mirror with --mirror DIR|URL, or for a first try without network: node test/fixtures/build-mirror.mjs, " +
            "then --spec test/fixtures/image.yaml --mirror test/fixtures/mirror",
        );
      } finally {
        spy.mockRestore();
      }
    },
  );

  test("the default bake without DNS: one line, exit 4, at once", () => {
    const started = Date.now();
    const result = runCli(
      "bake-image",
      ["--out", join(work, "offline-out"), "--cache", join(work, "offline-cache")],
      { NODE_OPTIONS: `--require ${join(__dirname, "fixtures", "no-dns.cjs")}` },
    );
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(
      // The add-on images come first: their registry is the first name that does not resolve.
      /^error: cannot reach registry\.k8s\.io \(ENOTFOUND: .*--mirror test\/fixtures\/mirror\n$/,
    );
    expect(result.stdout).toBe("");
    expect(Date.now() - started).toBeLessThan(15_000); // no backoff (5 attempts wait 15 s and more)
    expect(existsSync(join(work, "offline-out"))).toBe(false);
  });

  test("a 404 is final: exit 4 after one request", async () => {
    const srv = await serve((_req, res) => res.writeHead(404, "Not Found").end());
    const { fetcher } = fetcherFor();
    const error = await failure(fetcher.fetch(upstream(`${srv.base}/missing`)));
    expect(error.exitCode).toBe(ExitCode.downloadFailed);
    expect(error.message).toBe(`download of ${srv.base}/missing failed: HTTP 404 Not Found`);
    expect(srv.requests).toHaveLength(1);
  });

  test("a corrupted cache entry is dropped and fetched again", async () => {
    const srv = await serve((_req, res) => res.end(body));
    const { fetcher, cacheDir } = fetcherFor();
    const first = await fetcher.fetch(upstream(`${srv.base}/thing`));
    writeFileSync(first.path, "bit rot");
    const again = await fetcherFor({ cacheDir }).fetcher.fetch(upstream(`${srv.base}/thing`));
    expect(again.fromCache).toBe(false);
    expect(readFileSync(again.path)).toEqual(body);
    expect(srv.requests).toHaveLength(2);
  });

  test("--mirror URL rewrites upstream URLs to <mirror>/<host>/<path>", async () => {
    const srv = await serve((_req, res) => res.end(body));
    const { fetcher } = fetcherFor({ mirror: `${srv.base}/mirror/` });
    const fetched = await fetcher.fetch(upstream("https://dl.example.invalid/release/v1/bin/thing"));
    expect(fetched.origin).toBe("https://dl.example.invalid/release/v1/bin/thing");
    expect(srv.paths).toEqual(["/mirror/dl.example.invalid/release/v1/bin/thing"]);
  });

  test("--mirror DIR works offline, for upstream files and Debian packages", async () => {
    const spec = loadImageSpec(fixtureSpec).spec;
    const { fetcher, cacheDir } = fetcherFor({ mirror: fixtureMirror });
    const apiserver = spec.components.find((c) => c.name === "kube-apiserver")!;
    const artifact = apiserver.source.upstream!.artifacts.amd64!;
    const fetched = await fetcher.fetch(upstream(artifact.url, artifact.sha256));
    expect(fetched.sha256).toBe(artifact.sha256);
    const runc = spec.components.find((c) => c.name === "runc")!;
    const deb = await fetcher.fetch({
      component: "runc",
      version: runc.version,
      arch: "amd64",
      source: {
        kind: "debian",
        package: "runc",
        version: runc.version,
        sha256: runc.source.debian!.sha256!.amd64,
      },
      install: [],
    });
    expect(deb.origin).toBe(`debian:runc=${runc.version}:amd64`);
    expect(fetcher.requests).toBe(0);
    expect(cacheFiles(cacheDir).sort()).toEqual([artifact.sha256, deb.sha256].sort());
  });

  test("a mirror folder without the file is a clear error", async () => {
    const { fetcher } = fetcherFor({ mirror: join(work, "empty-mirror") });
    const error = await failure(fetcher.fetch(upstream("https://dl.example.invalid/thing")));
    expect(error.exitCode).toBe(ExitCode.downloadFailed);
    expect(error.message).toMatch(
      /^the mirror has no https:\/\/dl\.example\.invalid\/thing: cannot read .*empty-mirror\/dl\.example\.invalid\/thing \(ENOENT\)$/,
    );
  });
});

describe("Debian packages from a --mirror folder", () => {
  const runc = loadImageSpec(fixtureSpec).spec.components.find((c) => c.name === "runc")!;
  const pin = runc.source.debian!.sha256!.amd64!;
  const debName = readdirSync(join(fixtureMirror, "debian")).find((f) => f.startsWith("runc_"))!;
  /** The fixture mirror with the runc package replaced by a tampered copy (one byte more). */
  const tamperedMirror = join(work, "tampered-mirror");
  const tampered = Buffer.concat([readFileSync(join(fixtureMirror, "debian", debName)), Buffer.from("\n")]);
  beforeAll(() => {
    mkdirSync(join(tamperedMirror, "debian"), { recursive: true });
    symlinkSync(
      join(fixtureMirror, "upstream-build.invalid"),
      join(tamperedMirror, "upstream-build.invalid"),
    );
    symlinkSync(join(fixtureMirror, "oci"), join(tamperedMirror, "oci"));
    for (const name of readdirSync(join(fixtureMirror, "debian")).filter((f) => f !== debName))
      symlinkSync(join(fixtureMirror, "debian", name), join(tamperedMirror, "debian", name));
    writeFileSync(join(tamperedMirror, "debian", debName), tampered);
  });

  test("a tampered .deb is refused with exit 3 against the spec's pin; nothing is cached", async () => {
    const { fetcher, cacheDir } = fetcherFor({ mirror: tamperedMirror });
    const error = await failure(
      fetcher.fetch({
        component: "runc",
        version: runc.version,
        arch: "amd64",
        source: { kind: "debian", package: "runc", version: runc.version, sha256: pin },
        install: [],
      }),
    );
    expect(error.exitCode).toBe(ExitCode.digestMismatch);
    expect(error.message).toBe(
      `SHA-256 mismatch for ${join(tamperedMirror, "debian", debName)}: expected ${pin}, got ${sha(tampered)}; the file was discarded`,
    );
    expect(cacheFiles(cacheDir)).toEqual([]);
  });

  test("bake-image --mirror with the tampered .deb: exit 3, no image, the package named", () => {
    const out = join(work, "tampered-out");
    const result = runCli("bake-image", [
      "--spec",
      fixtureSpec,
      "--mirror",
      tamperedMirror,
      "--cache",
      join(work, "tampered-cache"),
      "--out",
      out,
    ]);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `error: SHA-256 mismatch for ${join(tamperedMirror, "debian", debName)}: expected ${pin}, got ${sha(tampered)}; the file was discarded\n`,
    );
    expect(existsSync(out)).toBe(false);
  });
});

describe("Debian packages through apt", () => {
  const runc = loadImageSpec(fixtureSpec).spec.components.find((c) => c.name === "runc")!;
  const plan = (sha256?: string): ArtifactPlan => ({
    component: "runc",
    version: runc.version,
    arch: "amd64",
    source: { kind: "debian", package: "runc", version: runc.version, sha256 },
    install: [],
  });

  test("apt-get download fetches the pinned version; the digest is checked; the next fetch is cached", async () => {
    const { fetcher, cacheDir } = fetcherFor();
    const fetched = await fetcher.fetch(plan(runc.source.debian!.sha256!.amd64));
    expect(fetched.sha256).toBe(runc.source.debian!.sha256!.amd64);
    expect(fetcher.requests).toBe(1);
    const again = fetcherFor({ cacheDir }).fetcher;
    expect((await again.fetch(plan())).fromCache).toBe(true);
    expect(again.requests).toBe(0);
  });

  test("a wrong pin is refused with exit 3", async () => {
    const { fetcher, cacheDir } = fetcherFor();
    const error = await failure(fetcher.fetch(plan("0".repeat(64))));
    expect(error.exitCode).toBe(ExitCode.digestMismatch);
    expect(error.message).toMatch(
      /^SHA-256 mismatch for apt-get download runc:amd64=.*: expected 0{64}, got [0-9a-f]{64}; the file was discarded$/,
    );
    expect(cacheFiles(cacheDir)).toEqual([]);
  });

  test("a version apt does not have is a clear error", async () => {
    const { fetcher } = fetcherFor();
    const error = await failure(
      fetcher.fetch({ ...plan(), source: { kind: "debian", package: "runc", version: "0.0.1-nope" } }),
    );
    expect(error.exitCode).toBe(ExitCode.downloadFailed);
    expect(error.message).toMatch(/apt-get download -q runc:amd64=0\.0\.1-nope failed: E: .*0\.0\.1-nope/);
  });
});

describe("taking files out of archives", () => {
  test("a tarball gives only the named files", async () => {
    const src = join(work, "tar-src");
    mkdirSync(join(src, "etcd-v9-linux-amd64", "Documentation"), { recursive: true });
    writeFileSync(join(src, "etcd-v9-linux-amd64", "etcd"), "etcd binary");
    writeFileSync(join(src, "etcd-v9-linux-amd64", "etcdctl"), "etcdctl binary");
    writeFileSync(join(src, "etcd-v9-linux-amd64", "Documentation", "README.md"), "docs");
    const archive = join(work, "etcd.tar.gz");
    await tar.c({ gzip: true, file: archive, cwd: src }, ["etcd-v9-linux-amd64"]);
    const dest = join(work, "tar-dest");
    await takeFiles(
      archive,
      "tar.gz",
      [{ from: "./etcd-v9-linux-amd64/etcd", dest: join(dest, "usr/local/bin/etcd"), mode: 0o755 }],
      "etcd",
    );
    expect(readFileSync(join(dest, "usr/local/bin/etcd"), "utf8")).toBe("etcd binary");
    expect(readdirSync(dest, { recursive: true }).sort()).toEqual([
      "usr",
      "usr/local",
      "usr/local/bin",
      "usr/local/bin/etcd",
    ]);
    const error = await failure(
      takeFiles(
        archive,
        "tar.gz",
        [{ from: "etcd-v9-linux-amd64/etcdutl", dest: join(dest, "x"), mode: 0o755 }],
        "image.yaml: component etcd",
      ),
    );
    expect(error.exitCode).toBe(ExitCode.invalidInput);
    expect(error.message).toBe(
      'image.yaml: component etcd: the archive has no file "etcd-v9-linux-amd64/etcdutl" (install.from)',
    );
  });

  test("a .deb symlink is followed inside the package (runc: /usr/bin/runc -> ../sbin/runc)", async () => {
    const debs = readdirSync(join(fixtureMirror, "debian")).filter((f) => f.startsWith("runc_"));
    const dest = join(work, "deb-dest", "runc");
    await takeFiles(
      join(fixtureMirror, "debian", debs[0]!),
      "deb",
      [{ from: "usr/bin/runc", dest, mode: 0o755 }],
      "runc",
    );
    expect(readFileSync(dest).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  });
});
