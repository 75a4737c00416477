import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tar from "tar";
import type { ArtifactPlan } from "../src/bake/plan";
import { ExitCode } from "../src/errors";
import { ArtifactCache } from "../src/fetch/cache";
import { takeFiles } from "../src/fetch/extract";
import { ArtifactFetcher } from "../src/fetch/fetcher";
import { failure, tempDir } from "./helpers";

// In-process tests of taking files out of archives and of `apt-get download` (a stand-in apt-get on PATH).
const work = tempDir("fetch-extract");
let caseNo = 0;
const fresh = (label: string) => {
  const dir = join(work, `${label}-${++caseNo}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

const savedPath = process.env.PATH;
afterEach(() => (process.env.PATH = savedPath));

/** A tar.gz of the given files and symlinks (values starting with "->" are link targets). */
async function tarball(entries: Record<string, string>, options: { preservePaths?: boolean } = {}) {
  const src = fresh("src");
  const root = join(src, "root");
  for (const [name, content] of Object.entries(entries)) {
    const path = join(root, name);
    mkdirSync(join(path, ".."), { recursive: true });
    if (content.startsWith("->")) symlinkSync(content.slice(2), path);
    else writeFileSync(path, content);
  }
  const file = join(src, "archive.tar.gz");
  await tar.c({ gzip: true, file, cwd: root, ...options }, Object.keys(entries));
  return file;
}

describe("taking files", () => {
  test("a plain binary is copied to its destination, creating the folders", async () => {
    const artifact = join(fresh("bin"), "kubelet");
    writeFileSync(artifact, "kubelet binary");
    const dest = join(fresh("dest"), "usr", "local", "bin", "kubelet");
    await takeFiles(artifact, "binary", [{ from: "kubelet", dest, mode: 0o755 }], "kubelet");
    expect(readFileSync(dest, "utf8")).toBe("kubelet binary");
  });

  test("members may be named with a leading slash", async () => {
    const archive = await tarball({ "bin/etcd": "etcd binary" });
    const dest = join(fresh("dest"), "etcd");
    await takeFiles(archive, "tar.gz", [{ from: "/bin/etcd", dest, mode: 0o755 }], "etcd");
    expect(readFileSync(dest, "utf8")).toBe("etcd binary");
  });

  test("symlinks are followed for two hops; a longer chain is a missing file", async () => {
    const archive = await tarball({
      "bin/two": "->one",
      "bin/one": "->../sbin/real",
      "sbin/real": "the binary",
      "bin/three": "->two",
    });
    const dest = join(fresh("dest"), "x");
    await takeFiles(archive, "tar.gz", [{ from: "bin/two", dest, mode: 0o755 }], "thing");
    expect(readFileSync(dest, "utf8")).toBe("the binary");
    for (const from of ["bin/three"]) {
      const error = await failure(takeFiles(archive, "tar.gz", [{ from, dest, mode: 0o755 }], "thing"));
      expect(error.message).toBe(`thing: the archive has no file "${from}" (install.from)`);
    }
  });

  test("a member reaching out of the archive (../) is never written outside it", async () => {
    const archive = await tarball({ "../escape": "outside" }, { preservePaths: true });
    const error = await failure(
      takeFiles(archive, "tar.gz", [{ from: "../escape", dest: join(fresh("dest"), "x"), mode: 0o644 }], "x"),
    );
    expect(error.exitCode).toBe(ExitCode.invalidInput);
  });

  test("a file that is not a tarball is exit 2, naming it", async () => {
    const artifact = join(fresh("bad"), "etcd.tar.gz");
    writeFileSync(artifact, "not a tarball at all, and long enough to look at ".repeat(20));
    const error = await failure(
      takeFiles(artifact, "tar.gz", [{ from: "etcd", dest: join(fresh("dest"), "x"), mode: 0o755 }], "etcd"),
    );
    expect(error.exitCode).toBe(ExitCode.invalidInput);
    expect(error.message).toMatch(new RegExp(`^${artifact}: not a readable tar\\.gz \\(.+\\)$`));
  });

  test("a file that is not a .deb is exit 2 with what dpkg-deb says", async () => {
    const artifact = join(fresh("bad"), "runc.deb");
    writeFileSync(artifact, "not a Debian package\n");
    const error = await failure(
      takeFiles(
        artifact,
        "deb",
        [{ from: "usr/bin/runc", dest: join(fresh("dest"), "x"), mode: 0o755 }],
        "runc",
      ),
    );
    expect(error.exitCode).toBe(ExitCode.invalidInput);
    expect(error.message).toMatch(new RegExp(`^dpkg-deb ${artifact}: dpkg-deb: error: .*\\S$`));
  });
});

describe("apt-get download (a stand-in apt-get)", () => {
  const plan: ArtifactPlan = {
    component: "runc",
    version: "1.0-1",
    arch: "arm64",
    source: { kind: "debian", package: "runc", version: "1.0-1" },
    install: [],
  };
  /** Puts an apt-get on PATH that runs `script` (sh) in its working folder and logs its arguments. */
  function fakeApt(script: string) {
    const bin = fresh("bin");
    writeFileSync(join(bin, "apt-get"), `#!/bin/sh\necho "$@" >> ${join(bin, "log")}\n${script}\n`);
    chmodSync(join(bin, "apt-get"), 0o755);
    process.env.PATH = `${bin}:${savedPath}`;
    const lines: string[] = [];
    const fetcher = new ArtifactFetcher({
      cache: new ArtifactCache(fresh("cache")),
      download: { idleTimeoutMs: 5_000, attempts: 1, backoffMs: 1 },
      progress: { step: () => {}, info: (line) => lines.push(line) },
    });
    return { fetcher, lines, log: () => readFileSync(join(bin, "log"), "utf8") };
  }

  test("asks apt for the exact version and arch, keeps the one .deb it writes", async () => {
    const apt = fakeApt("printf 'a stand-in .deb' > runc_1.0-1_arm64.deb; echo notes > notes.txt");
    const fetched = await apt.fetcher.fetch(plan);
    expect(readFileSync(fetched.path, "utf8")).toBe("a stand-in .deb");
    expect(apt.log()).toBe("download -q runc:arm64=1.0-1\n");
    expect(apt.lines).toEqual(["apt-get download runc:arm64=1.0-1"]);
    expect(apt.fetcher.requests).toBe(1);
  });

  test("a failing apt is exit 4 with its error lines only", async () => {
    const apt = fakeApt(
      `printf 'Reading package lists...\\nW: a warning\\nE: first\\nE: second\\n' >&2; exit 100`,
    );
    const error = await failure(apt.fetcher.fetch(plan));
    expect(error.exitCode).toBe(ExitCode.downloadFailed);
    expect(error.message).toBe("apt-get download -q runc:arm64=1.0-1 failed: E: first E: second");
  });

  test("an apt that writes no .deb is exit 4", async () => {
    const apt = fakeApt("echo notes > notes.txt");
    const error = await failure(apt.fetcher.fetch(plan));
    expect(error.exitCode).toBe(ExitCode.downloadFailed);
    expect(error.message).toBe("apt-get download runc:arm64=1.0-1 gave no .deb");
  });
});
