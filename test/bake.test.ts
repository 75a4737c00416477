import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  lstatSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { bake, type BakeOptions } from "../src/bake/bake";
import { imageIdOf } from "../src/bake/tree";
import { ExitCode, KubebakeError } from "../src/errors";
import { loadImageSpec } from "../src/spec/load";
import { silentProgress } from "../src/util/progress";
import { fixtureMirror, fixtureSpec, repoRoot, runCli, tempDir } from "./helpers";

// The reuse-key tests edit unit templates and node scripts: in a copy of the package root, never the checkout.
const mockPackage = { root: repoRoot };
jest.mock("../src/util/package-root", () => ({ packageRoot: () => mockPackage.root }));
// A disk needs root and the disk tools; for the reuse key only its presence in OUT matters.
jest.mock("../src/image/disk", () => ({
  ...jest.requireActual("../src/image/disk"),
  buildDisk: async (params: { staging: string; format: string; imageId: string }) => {
    const file = `disk.${params.format}`;
    const content = `stand-in ${params.format} disk of ${params.imageId}\n`;
    writeFileSync(join(params.staging, file), content);
    const sha256 = createHash("sha256").update(content).digest("hex");
    return {
      format: params.format,
      file,
      sha256,
      size: content.length,
      baseLayer: "stand-in",
      rawSha256: sha256,
    };
  },
}));

const work = tempDir("bake");
const cacheDir = join(work, "cache");
const options = (out: string, extra: Partial<BakeOptions> = {}): BakeOptions => ({
  specPath: fixtureSpec,
  out: join(work, out),
  arch: "amd64",
  cacheDir,
  mirror: fixtureMirror,
  progress: silentProgress,
  ...extra,
});

/** Every path with its type, mode and bytes (or link target): what "byte-identical trees" means. */
function snapshot(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort().map((rel) => {
    const full = join(dir, rel);
    const info = lstatSync(full);
    if (info.isSymbolicLink()) return `${rel} -> ${readlinkSync(full)}`;
    if (info.isDirectory()) return `${rel}/ ${(info.mode & 0o7777).toString(8)} ${info.mtimeMs}`;
    const digest = createHash("sha256").update(readFileSync(full)).digest("hex");
    return `${rel} ${(info.mode & 0o7777).toString(8)} ${info.mtimeMs} ${digest}`;
  });
}

function specVariant(name: string, mutate: (spec: any) => void): string {
  const spec = parse(readFileSync(fixtureSpec, "utf8"));
  mutate(spec);
  const file = join(work, `${name}.yaml`);
  writeFileSync(file, stringify(spec));
  return file;
}

describe("bake-image --target dir", () => {
  let first: Awaited<ReturnType<typeof bake>>;
  beforeAll(async () => {
    first = await bake(options("first"));
  });

  test("writes the tree and a manifest whose id is the tree's digest", () => {
    const { manifest } = first;
    expect(manifest.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(manifest.imageId).toBe(imageIdOf(manifest.files));
    expect(manifest.components.map((c) => c.name)).toEqual(
      parse(readFileSync(fixtureSpec, "utf8")).components.map((c: { name: string }) => c.name),
    );
    const onDisk = JSON.parse(readFileSync(join(work, "first", "manifest.json"), "utf8"));
    expect(onDisk).toEqual(manifest);
    const kubelet = manifest.files.find((f) => f.path === "/usr/local/bin/kubelet");
    expect(kubelet).toEqual(expect.objectContaining({ mode: "0755" }));
    const tree = join(work, "first", "rootfs");
    for (const file of manifest.files) {
      if ("sha256" in file) {
        const digest = createHash("sha256")
          .update(readFileSync(join(tree, file.path)))
          .digest("hex");
        expect(`${file.path} ${digest}`).toBe(`${file.path} ${file.sha256}`);
      }
    }
    const listed = new Set(manifest.files.map((f) => f.path.slice(1)));
    const present = (readdirSync(tree, { recursive: true }) as string[]).filter(
      (p) => !lstatSync(join(tree, p)).isDirectory(),
    );
    expect(present.sort()).toEqual([...listed].sort());
  });

  test("two bakes of the same inputs give byte-identical trees and the same id", async () => {
    const second = await bake(options("second", { cacheDir: join(work, "cache-2") }));
    expect(second.reused).toBe(false);
    expect(second.manifest.imageId).toBe(first.manifest.imageId);
    expect(snapshot(join(work, "second"))).toEqual(snapshot(join(work, "first")));
  });

  test("a rebake with nothing changed reuses the result and makes no request", async () => {
    const again = await bake(options("first"));
    expect(again).toEqual({ manifest: first.manifest, reused: true, requests: 0 });
  });

  test("a tree changed by hand is baked again", async () => {
    const out = join(work, "tampered");
    cpSync(join(work, "first"), out, { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(out, "rootfs/etc/kubernetes/kubelet-config.yaml"), "edited\n");
    const result = await bake(options("tampered"));
    expect(result.reused).toBe(false);
    expect(result.manifest.imageId).toBe(first.manifest.imageId);
  });

  describe("the reuse key: one input changed at a time, baked again into the same folder", () => {
    // Each step adds one change to the inputs of the bake before it, so a step differs from what OUT holds
    // by exactly that input: a key that leaves the input out reuses the old image and fails the step.
    const packageCopy = join(work, "package-copy");
    const specEdits: ((s: any) => void)[] = [];
    let specPath = fixtureSpec;
    let target: BakeOptions["target"] = "dir";
    let previous: Awaited<ReturnType<typeof bake>>;
    beforeAll(() => {
      for (const dir of ["units", "src/node"])
        cpSync(join(repoRoot, dir), join(packageCopy, dir), { recursive: true });
      mockPackage.root = packageCopy;
      cpSync(join(work, "first"), join(work, "reuse"), { recursive: true, verbatimSymlinks: true });
    });
    afterAll(() => (mockPackage.root = repoRoot));

    const bakeAgain = () => bake(options("reuse", { specPath, target }));
    const editSpec = (name: string, edit: (s: any) => void) => () => {
      specEdits.push(edit);
      specPath = specVariant(`reuse-${name}`, (s) => specEdits.forEach((e) => e(s)));
    };
    const appendTo = (path: string, text: string) => () =>
      writeFileSync(join(packageCopy, path), readFileSync(join(packageCopy, path), "utf8") + text);

    test("the copied folder with the same inputs is reused", async () => {
      previous = await bakeAgain();
      expect(previous).toMatchObject({ reused: true, requests: 0 });
      expect(previous.manifest.imageId).toBe(first.manifest.imageId);
    });

    test.each<[string, () => void, string | undefined]>([
      [
        "a cluster setting",
        editSpec("cluster", (s) => (s.cluster.clusterDomain = "example.internal")),
        undefined,
      ],
      ["a component's version", editSpec("version", (s) => (s.components[0].version = "v1.36.4")), undefined],
      ["a base package", editSpec("package", (s) => s.base.packages.push("htop")), undefined],
      [
        "a unit template",
        appendTo("units/systemd/kubelet.service.ejs", "# edited\n"),
        "/etc/systemd/system/kubelet.service",
      ],
      [
        "a config file template",
        appendTo("units/files/etc/containerd/config.toml.ejs", "# edited\n"),
        "/etc/containerd/config.toml",
      ],
      ["a node script", appendTo("src/node/node-config", "# edited\n"), "/usr/lib/kubebake/node-config"],
    ])("changing %s bakes again and changes the id", async (_name, change, editedPath) => {
      change();
      const result = await bakeAgain();
      expect(result.reused).toBe(false);
      expect(result.manifest.imageId).not.toBe(previous.manifest.imageId);
      if (editedPath) {
        const tree = join(work, "reuse", "rootfs");
        expect(readFileSync(join(tree, editedPath), "utf8")).toMatch(/# edited\n$/);
      }
      previous = result;
    });

    test("changing the target bakes again (the tree, and so the id, stays)", async () => {
      target = "raw";
      const result = await bakeAgain();
      expect(result.reused).toBe(false);
      expect(result.manifest).toMatchObject({ target: "raw", disk: { file: "disk.raw" } });
      expect(result.manifest.imageId).toBe(previous.manifest.imageId);
      expect(existsSync(join(work, "reuse", "disk.raw"))).toBe(true);
      previous = result;
    });

    test("the last inputs unchanged are reused", async () => {
      expect(await bakeAgain()).toEqual({ manifest: previous.manifest, reused: true, requests: 0 });
    });
  });

  test("a failed bake leaves nothing behind and keeps the previous result", async () => {
    const before = snapshot(join(work, "first"));
    const spec = specVariant(
      "bad-digest",
      (s) => (s.components[2].source.upstream.artifacts.amd64.sha256 = "1".repeat(64)),
    );
    await expect(bake(options("first", { specPath: spec }))).rejects.toMatchObject({
      exitCode: ExitCode.digestMismatch,
    });
    expect(snapshot(join(work, "first"))).toEqual(before);
    expect(readdirSync(work).filter((n) => n.includes(".kubebake-"))).toEqual([]);
  });

  test("refuses to replace a folder that is not a kubebake image", async () => {
    mkdirSync(join(work, "precious"));
    writeFileSync(join(work, "precious", "notes.txt"), "keep me");
    const error = await bake(options("precious")).catch((e: KubebakeError) => e);
    expect(error).toBeInstanceOf(KubebakeError);
    expect((error as KubebakeError).exitCode).toBe(ExitCode.invalidInput);
    expect((error as KubebakeError).message).toMatch(/precious: exists and is not a kubebake image folder/);
    expect(readFileSync(join(work, "precious", "notes.txt"), "utf8")).toBe("keep me");
  });

  test("an architecture the spec lacks is an invalid-input error naming the field", async () => {
    const spec = specVariant("amd64-only", (s) => delete s.components[0].source.upstream.artifacts.arm64);
    const error = (await bake(options("arm", { specPath: spec, arch: "arm64" })).catch(
      (e) => e,
    )) as KubebakeError;
    expect(error.exitCode).toBe(ExitCode.invalidInput);
    expect(error.message).toMatch(
      /components\[0\]\.source\.upstream\.artifacts\.arm64: missing; kube-apiserver has artifacts only for amd64$/,
    );
  });

  test("the CLI: --json prints only the manifest; the plain form prints the id; exit codes are documented", () => {
    const args = ["--spec", fixtureSpec, "--mirror", fixtureMirror, "--cache", cacheDir];
    const json = runCli("bake-image", ["--target", "dir", "--out", join(work, "cli"), "--json", ...args]);
    expect(json.code).toBe(0);
    expect(json.stderr).toBe("");
    expect(JSON.parse(json.stdout).imageId).toBe(first.manifest.imageId);
    const plain = runCli("kubebake", ["bake", "--out", join(work, "cli"), ...args]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe(`${first.manifest.imageId} (reused)\n`);
    const bad = specVariant(
      "cli-bad",
      (s) => (s.components[3].source.upstream.artifacts.amd64.sha256 = "2".repeat(64)),
    );
    const mismatch = runCli("bake-image", [
      "--out",
      join(work, "cli-bad"),
      "--spec",
      bad,
      "--mirror",
      fixtureMirror,
      "--cache",
      join(work, "cache-cli"),
    ]);
    expect(mismatch.code).toBe(3);
    expect(mismatch.stderr).toMatch(
      /^error: SHA-256 mismatch for .*upstream-build\.invalid\/v1\.36\.3\/amd64\/kubelet: expected 2{64}, got [0-9a-f]{64}; the file was discarded\n$/,
    );
    expect(existsSync(join(work, "cli-bad"))).toBe(false);
    const usage = runCli("bake-image", ["--out"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/Run 'bake-image --help' for usage/);
  });

  test("the tree carries the spec it was baked from", () => {
    const tree = join(work, "first", "rootfs");
    const spec = JSON.parse(readFileSync(join(tree, "etc/kubebake/image-spec.json"), "utf8"));
    expect(spec).toEqual(JSON.parse(JSON.stringify(loadImageSpec(fixtureSpec).spec)));
    const components = JSON.parse(readFileSync(join(tree, "etc/kubebake/components.json"), "utf8"));
    expect(components).toEqual(first.manifest.components);
  });
});
