/** The pure decisions of a bake: what to fetch and install, the reuse key, and the image id. No bake runs here. */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import {
  lstatSync,
  lutimesSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { MANIFEST_KIND, type Manifest } from "../../src/bake/manifest";
import { planArtifacts } from "../../src/bake/plan";
import type { TreeEntry } from "../../src/bake/render";
import { inputsDigest, reusable, type BakeInputs } from "../../src/bake/reuse";
import {
  describeTree,
  imageIdOf,
  inTree,
  TREE_EPOCH,
  writeEntries,
  type ManifestFile,
} from "../../src/bake/tree";
import { ExitCode, KubebakeError } from "../../src/errors";
import type { ImageSpec } from "../../src/spec/schema";
import { tempDir } from "../helpers";

const work = tempDir("reuse");
const sha = (text: string) => createHash("sha256").update(text).digest("hex");

const spec = {
  components: [
    {
      name: "kubelet",
      version: "v1.36.3",
      roles: ["masters", "minions"],
      source: {
        upstream: {
          format: "binary",
          artifacts: { amd64: { url: "https://example.invalid/amd64/kubelet", sha256: sha("kubelet") } },
        },
      },
    },
    {
      name: "cni-plugins",
      version: "v1.9.0",
      roles: ["minions"],
      source: {
        upstream: {
          format: "tar.gz",
          artifacts: {
            amd64: { url: "https://example.invalid/cni-amd64.tgz", sha256: sha("cni-amd64") },
            arm64: { url: "https://example.invalid/cni-arm64.tgz", sha256: sha("cni-arm64") },
          },
        },
      },
      install: [{ from: "cni-{arch}-{version}/{arch}/bridge", to: "/opt/cni/bin/bridge", mode: "0750" }],
    },
    {
      name: "runc",
      version: "1.3.0-1",
      roles: ["masters", "minions"],
      source: { debian: { package: "runc", sha256: { amd64: sha("runc.deb") } } },
      install: [{ from: "usr/sbin/runc", to: "/usr/local/sbin/runc", mode: "0755" }],
    },
  ],
} as unknown as ImageSpec;

describe("planArtifacts: what a bake fetches and where each file goes", () => {
  test("an upstream binary: its URL and digest for the architecture, installed to /usr/local/bin as 0755", () => {
    expect(planArtifacts(spec, "image.yaml", "amd64")[0]).toEqual({
      component: "kubelet",
      version: "v1.36.3",
      arch: "amd64",
      source: {
        kind: "upstream",
        format: "binary",
        url: "https://example.invalid/amd64/kubelet",
        sha256: sha("kubelet"),
      },
      install: [{ from: "kubelet", to: "/usr/local/bin/kubelet", mode: 0o755 }],
    });
  });

  test("an archive: every {arch} and {version} of install.from is filled in, the mode read as octal", () => {
    const plan = planArtifacts({ ...spec, components: [spec.components[1]!] } as ImageSpec, "x", "arm64")[0]!;
    expect(plan.source).toEqual({
      kind: "upstream",
      format: "tar.gz",
      url: "https://example.invalid/cni-arm64.tgz",
      sha256: sha("cni-arm64"),
    });
    expect(plan.install).toEqual([
      { from: "cni-arm64-v1.9.0/arm64/bridge", to: "/opt/cni/bin/bridge", mode: 0o750 },
    ]);
  });

  test("a Debian package: the package, the component's version and the digest pinned for the architecture", () => {
    expect(planArtifacts(spec, "image.yaml", "amd64")[2]).toEqual({
      component: "runc",
      version: "1.3.0-1",
      arch: "amd64",
      source: { kind: "debian", package: "runc", version: "1.3.0-1", sha256: sha("runc.deb") },
      install: [{ from: "usr/sbin/runc", to: "/usr/local/sbin/runc", mode: 0o755 }],
    });
  });

  test("a Debian package with no digest for the architecture plans no digest (apt's signed index verifies it)", () => {
    const runc = { ...spec, components: [spec.components[2]!] } as ImageSpec;
    expect(planArtifacts(runc, "image.yaml", "arm64")[0]!.source).toEqual({
      kind: "debian",
      package: "runc",
      version: "1.3.0-1",
      sha256: undefined,
    });
  });

  test("an architecture an upstream component lacks is invalid input naming the file, the field and what exists", () => {
    let error: unknown;
    try {
      planArtifacts(spec, "image/kubebake.yaml", "arm64");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KubebakeError);
    expect((error as KubebakeError).exitCode).toBe(ExitCode.invalidInput);
    expect((error as Error).message).toBe(
      "image/kubebake.yaml: components[0].source.upstream.artifacts.arm64: missing; kubelet has artifacts only for amd64",
    );
  });

  test("the error lists every architecture the component has", () => {
    const only = {
      components: [
        {
          ...spec.components[1]!,
          name: "cni",
          source: { upstream: { format: "binary", artifacts: { amd64: {}, arm64: {} } } },
        },
      ],
    } as unknown as ImageSpec;
    expect(() =>
      planArtifacts(
        { components: [spec.components[0]!, ...only.components] } as ImageSpec,
        "f",
        "riscv64" as "amd64",
      ),
    ).toThrow(
      "f: components[0].source.upstream.artifacts.riscv64: missing; kubelet has artifacts only for amd64",
    );
    expect(() => planArtifacts(only, "f", "riscv64" as "amd64")).toThrow(
      "cni has artifacts only for amd64, arm64",
    );
  });
});

describe("the reuse key: every input changes it, and nothing else does", () => {
  const file = (path: string, content: string, mode = 0o644): TreeEntry => ({
    path,
    kind: "file",
    mode,
    content: Buffer.from(content),
  });
  const base = (): BakeInputs => ({
    arch: "amd64",
    target: "dir",
    specJson: '{"name":"demo"}\n',
    rendered: [file("/etc/a.conf", "a"), { path: "/etc/link", kind: "symlink", target: "a.conf" }],
    artifacts: planArtifacts(spec, "image.yaml", "amd64"),
  });
  const variants: Record<string, (i: BakeInputs) => void> = {
    arch: (i) => (i.arch = "arm64"),
    target: (i) => (i.target = "qcow2"),
    "the spec": (i) => (i.specJson = '{"name":"demo2"}\n'),
    "a unit's content": (i) => (i.rendered[0] = file("/etc/a.conf", "b")),
    "a unit's mode": (i) => (i.rendered[0] = file("/etc/a.conf", "a", 0o600)),
    "a unit's path": (i) => (i.rendered[0] = file("/etc/b.conf", "a")),
    "a symlink's target": (i) => (i.rendered[1] = { path: "/etc/link", kind: "symlink", target: "b.conf" }),
    "a symlink's path": (i) => (i.rendered[1] = { path: "/etc/link2", kind: "symlink", target: "a.conf" }),
    "one more unit": (i) => i.rendered.push(file("/etc/c.conf", "")),
    "an artifact's digest": (i) => ((i.artifacts[0]!.source as { sha256: string }).sha256 = sha("other")),
    "an install path": (i) => (i.artifacts[0]!.install[0]!.to = "/usr/bin/kubelet"),
    "the disk recipe": (i) => (i.disk = "layout 3, base layer x"),
  };

  test("the same inputs give the same key, built afresh", () => {
    expect(inputsDigest(base())).toBe(inputsDigest(base()));
    expect(inputsDigest(base())).toMatch(/^[0-9a-f]{64}$/);
  });

  test.each(Object.keys(variants))("changing %s alone changes the key", (name) => {
    const changed = base();
    variants[name]!(changed);
    expect(inputsDigest(changed)).not.toBe(inputsDigest(base()));
  });

  test("every change gives a key of its own", () => {
    const keys = Object.values(variants).map((change) => {
      const changed = base();
      change(changed);
      return inputsDigest(changed);
    });
    expect(new Set([inputsDigest(base()), ...keys]).size).toBe(keys.length + 1);
  });
});

describe("reusable: the previous bake stands for a new one only when it is intact", () => {
  const inputs = "f".repeat(64);
  let count = 0;
  /** A previous bake in a fresh folder: a one-file tree, a manifest describing it, and optionally a disk. */
  async function previous(options: { disk?: boolean } = {}) {
    const out = join(work, `out-${count++}`);
    mkdirSync(join(out, "rootfs", "etc"), { recursive: true });
    writeFileSync(join(out, "rootfs", "etc", "hostname"), "node\n");
    const manifest = {
      kind: MANIFEST_KIND,
      inputs,
      imageId: "sha256:x",
      files: await describeTree(join(out, "rootfs"), false),
    } as Manifest;
    if (options.disk) {
      writeFileSync(join(out, "disk.raw"), "disk");
      manifest.disk = { file: "disk.raw", sha256: sha("disk") } as Manifest["disk"];
    }
    writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest));
    return { out, manifest };
  }

  test("an intact tree with the same inputs is reused, manifest and all, and left as it is", async () => {
    const { out, manifest } = await previous();
    utimesSync(join(out, "rootfs", "etc", "hostname"), 1e9, 1e9);
    expect(await reusable(out, inputs)).toEqual(manifest);
    expect(statSync(join(out, "rootfs", "etc", "hostname")).mtimeMs).toBe(1e12);
  });

  test("an intact disk is reused with its tree", async () => {
    const { out, manifest } = await previous({ disk: true });
    expect(await reusable(out, inputs)).toEqual(manifest);
  });

  test("other inputs are not reused", async () => {
    const { out } = await previous();
    expect(await reusable(out, "e".repeat(64))).toBeUndefined();
  });

  test("a manifest of another kind is not reused", async () => {
    const { out, manifest } = await previous();
    writeFileSync(join(out, "manifest.json"), JSON.stringify({ ...manifest, kind: "something/else" }));
    expect(await reusable(out, inputs)).toBeUndefined();
  });

  test("no manifest, or one that is not JSON, is not reused", async () => {
    const { out } = await previous();
    writeFileSync(join(out, "manifest.json"), "{");
    expect(await reusable(out, inputs)).toBeUndefined();
    rmSync(join(out, "manifest.json"));
    expect(await reusable(out, inputs)).toBeUndefined();
  });

  test.each([
    ["a file edited", (out: string) => writeFileSync(join(out, "rootfs/etc/hostname"), "edited\n")],
    ["a file added", (out: string) => writeFileSync(join(out, "rootfs/etc/extra"), "")],
    [
      "a file's mode changed",
      (out: string) => execFileSync("chmod", ["600", join(out, "rootfs/etc/hostname")]),
    ],
    ["the tree removed", (out: string) => rmSync(join(out, "rootfs"), { recursive: true })],
  ])("a tree with %s is baked again", async (_, change) => {
    const { out } = await previous();
    change(out);
    expect(await reusable(out, inputs)).toBeUndefined();
  });

  test("a disk edited or removed is baked again", async () => {
    const edited = await previous({ disk: true });
    writeFileSync(join(edited.out, "disk.raw"), "disc");
    expect(await reusable(edited.out, inputs)).toBeUndefined();
    const removed = await previous({ disk: true });
    rmSync(join(removed.out, "disk.raw"));
    expect(await reusable(removed.out, inputs)).toBeUndefined();
  });
});

describe("the image tree: listed in a fixed order with fixed times, and its id", () => {
  test("TREE_EPOCH is 1980-01-01, the earliest time a zip or FAT file system can hold", () => {
    expect(new Date(TREE_EPOCH * 1000).toISOString()).toBe("1980-01-01T00:00:00.000Z");
  });

  test("inTree places an absolute image path inside the tree folder, whatever its slashes", () => {
    expect(inTree("/t", "/usr/local/bin/kubelet")).toBe("/t/usr/local/bin/kubelet");
    expect(inTree("/t", "//etc//kubernetes/")).toBe("/t/etc/kubernetes");
  });

  test("writeEntries writes files with their modes and symlinks with their targets, making the folders", async () => {
    const tree = join(work, "written");
    await writeEntries(tree, [
      { path: "/etc/kubernetes/a.yaml", kind: "file", mode: 0o600, content: Buffer.from("a: 1\n") },
      { path: "/usr/bin/tool", kind: "symlink", target: "../lib/tool" },
    ]);
    expect(readFileSync(join(tree, "etc/kubernetes/a.yaml"), "utf8")).toBe("a: 1\n");
    expect(statSync(join(tree, "etc/kubernetes/a.yaml")).mode & 0o777).toBe(0o600);
    expect(readlinkSync(join(tree, "usr/bin/tool"))).toBe("../lib/tool");
    expect(statSync(join(tree, "etc/kubernetes")).mode & 0o777).toBe(0o755);
  });

  function sampleTree(name: string) {
    const tree = join(work, name);
    mkdirSync(join(tree, "b", "inner"), { recursive: true, mode: 0o700 });
    writeFileSync(join(tree, "b", "inner", "z"), "zz", { mode: 0o640 });
    writeFileSync(join(tree, "a"), "a", { mode: 0o4755 });
    writeFileSync(join(tree, "c"), "");
    symlinkSync("a", join(tree, "b", "link"));
    utimesSync(join(tree, "a"), 1e9, 1e9);
    lutimesSync(join(tree, "b", "link"), 1e9, 1e9);
    return tree;
  }

  test("describeTree lists every file and symlink in sorted order with mode, size and digest", async () => {
    const tree = sampleTree("described");
    expect(await describeTree(tree, false)).toEqual([
      { path: "/a", mode: "04755", size: 1, sha256: sha("a") },
      { path: "/b/inner/z", mode: "0640", size: 2, sha256: sha("zz") },
      { path: "/b/link", type: "symlink", target: "a" },
      { path: "/c", mode: "0644", size: 0, sha256: sha("") },
    ]);
    expect(statSync(join(tree, "a")).mtimeMs).toBe(1e12);
    expect(lstatSync(join(tree, "b", "link")).mtimeMs).toBe(1e12);
    expect(statSync(join(tree, "b")).mode & 0o777).toBe(0o700);
  });

  test("normalizing sets every time to TREE_EPOCH and every folder to 0755, and keeps file modes", async () => {
    const tree = sampleTree("normalized");
    await describeTree(tree, true);
    for (const path of ["a", "b", "b/inner", "b/inner/z", "c"]) {
      expect([path, statSync(join(tree, path)).mtimeMs]).toEqual([path, TREE_EPOCH * 1000]);
    }
    expect(lstatSync(join(tree, "b/link")).mtimeMs).toBe(TREE_EPOCH * 1000);
    expect(statSync(join(tree, "b")).mode & 0o777).toBe(0o755);
    expect(statSync(join(tree, "b/inner")).mode & 0o777).toBe(0o755);
    expect(statSync(join(tree, "b/inner/z")).mode & 0o7777).toBe(0o640);
    expect(statSync(join(tree, "a")).mode & 0o7777).toBe(0o4755);
  });

  test("anything but files, folders and symlinks is refused, naming it", async () => {
    const tree = join(work, "fifo");
    mkdirSync(tree);
    execFileSync("mkfifo", [join(tree, "pipe")]);
    await expect(describeTree(tree, false)).rejects.toThrow(
      `${join(tree, "pipe")}: the image tree may hold only files, folders and symlinks`,
    );
  });

  test("imageIdOf digests each entry's path, mode and content digest, or path and link target", () => {
    const files: ManifestFile[] = [
      { path: "/a", mode: "0644", size: 1, sha256: sha("a") },
      { path: "/l", type: "symlink", target: "a" },
    ];
    expect(imageIdOf(files)).toBe(`sha256:${sha(`/a\u00000644\u0000${sha("a")}\n/l\u0000symlink\u0000a\n`)}`);
  });

  test("the id changes with a path, a mode, a content or a link target, and not with the size field alone", () => {
    const file = { path: "/a", mode: "0644", size: 1, sha256: sha("a") };
    const link = { path: "/l", type: "symlink" as const, target: "a" };
    const id = imageIdOf([file, link]);
    const others = [
      [{ ...file, path: "/b" }, link],
      [{ ...file, mode: "0755" }, link],
      [{ ...file, sha256: sha("b") }, link],
      [file, { ...link, target: "b" }],
      [file, { ...link, path: "/m" }],
      [file],
    ].map((files) => imageIdOf(files));
    expect(new Set([id, ...others]).size).toBe(others.length + 1);
    expect(imageIdOf([{ ...file, size: 99 }, link])).toBe(id);
  });
});
