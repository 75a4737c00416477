import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { bake, type BakeResult } from "../src/bake/bake";
import { silentProgress } from "../src/util/progress";
import { fixtureMirror, fixtureSpec, repoRoot, tempDir } from "./helpers";

// The baked disk without booting it (boot.test.ts boots it): the image check passes on it, and two bakes of
// the same inputs, the second on an empty cache, give the same bytes. Needs root (the disk keeps file owners).
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;
jest.setTimeout(20 * 60_000);

const work = tempDir("disk");
// The base layer (mmdebstrap, about a minute) is cached across runs in the checkout.
const cacheDir = join(repoRoot, ".cache", "kubebake");
const coldCache = join(work, "cold-cache");
let first: BakeResult;
let cold: BakeResult;

const sha256 = (path: string) => {
  const result = spawnSync("sha256sum", [path], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`sha256sum ${path}: ${result.stderr}`);
  return result.stdout.split(" ")[0]!;
};

asRoot("the baked disk", () => {
  beforeAll(async () => {
    // Side by side: the first may reuse the checkout's base layer; the second makes everything afresh
    // (mmdebstrap again) and delivers a raw disk where the first delivers a qcow2.
    const common = {
      specPath: fixtureSpec,
      arch: "amd64" as const,
      mirror: fixtureMirror,
      progress: silentProgress,
    };
    [first, cold] = await Promise.all([
      bake({ ...common, target: "qcow2", out: join(work, "image"), cacheDir }),
      bake({ ...common, target: "raw", out: join(work, "cold"), cacheDir: coldCache }),
    ]);
  });

  test("is clean by the image check, which lists the preloaded images", () => {
    const disk = join(work, "image", first.manifest.disk!.file);
    const result = spawnSync("node", [join(repoRoot, "bin", "kubebake.js"), "image", "check", disk], {
      encoding: "utf8",
    });
    const lines = result.stdout.trim().split("\n");
    expect(lines.pop()).toBe(`${disk}: clean`);
    expect(lines).toHaveLength(2 * first.manifest.images!.length);
    for (const image of first.manifest.images!)
      expect(lines).toContain(`preloaded ${image.reference.replace(/@.*/, "")} ${image.digest}`);
    expect(result.status).toBe(0);
    expect(readdirSync(join(work, "image")).sort()).toEqual(["disk.qcow2", "manifest.json", "rootfs"]);
  });

  test("two bakes of the same inputs, the second on an empty cache, give the same raw disk byte for byte, its digest in the manifest beside the image id", () => {
    // The base layers first, for a plain failure. They differ too when the Debian mirror has moved on
    // since the checkout's cache was made: remove .cache/kubebake/base then.
    const layer = `base/${first.manifest.disk!.baseLayer}.tar`;
    expect({ coldBaseLayer: sha256(join(coldCache, layer)) }).toEqual({
      coldBaseLayer: sha256(join(cacheDir, layer)),
    });
    const coldDisk = sha256(join(work, "cold", "disk.raw"));
    // The first bake's disk is a qcow2: its content as a raw disk, read back by qemu-img.
    const firstRaw = join(work, "first.raw");
    const disk = join(work, "image", first.manifest.disk!.file);
    expect(spawnSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", disk, firstRaw]).status).toBe(0);
    const firstDisk = sha256(firstRaw);
    rmSync(firstRaw);
    expect(coldDisk).toBe(firstDisk);
    const written = JSON.parse(readFileSync(join(work, "cold", "manifest.json"), "utf8")) as unknown;
    expect(written).toEqual(cold.manifest);
    expect(written).toMatchObject({
      imageId: first.manifest.imageId,
      disk: { format: "raw", file: "disk.raw", sha256: coldDisk, rawSha256: coldDisk },
    });
    expect(first.manifest.disk!.rawSha256).toBe(coldDisk);
  });
});
