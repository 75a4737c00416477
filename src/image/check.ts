import { existsSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { invalidInput } from "../errors";
import { removeOnExit } from "../util/cleanup";
import { run } from "../util/run";
import { checkHygiene, type Violation } from "./hygiene";
import { preloadedImages, type PreloadedImage } from "./preloaded";

/**
 * Checks an image for hygiene: a bake output folder, a root filesystem folder, or a raw/qcow2 disk
 * (its root partition is read with debugfs: no mounts).
 */
export interface ImageCheck {
  violations: Violation[];
  /** The preloaded container images, by the names containerd knows them. */
  images: PreloadedImage[];
}

export async function checkImage(path: string): Promise<ImageCheck> {
  if (!existsSync(path)) throw invalidInput(`${path}: no such file or folder`);
  if (statSync(path).isDirectory()) {
    const rootfs = existsSync(join(path, "manifest.json")) ? join(path, "rootfs") : path;
    if (!existsSync(join(rootfs, "etc")) && !existsSync(join(rootfs, "usr"))) {
      throw invalidInput(`${path}: not a root filesystem (no etc/ or usr/) nor a bake output folder`);
    }
    return { violations: await checkHygiene(rootfs), images: await preloadedImages(rootfs) };
  }
  const work = await mkdtemp(join(tmpdir(), "kubebake-check-"));
  const forget = removeOnExit(work);
  try {
    const raw = join(work, "disk.raw");
    await run("qemu-img", ["convert", "-O", "raw", path, raw]).catch(() => {
      throw invalidInput(`${path}: not a disk image qemu-img can read`);
    });
    const table = JSON.parse(await run("sfdisk", ["--json", raw]).catch(() => "{}")) as {
      partitiontable?: { sectorsize?: number; partitions?: { start: number; size: number; type: string }[] };
    };
    const root = table.partitiontable?.partitions?.find(
      (p) => p.type.toUpperCase() === "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
    );
    if (!root) throw invalidInput(`${path}: no GPT root partition (x86-64 root type) found`);
    const sector = table.partitiontable?.sectorsize ?? 512;
    const part = join(work, "root.ext4");
    await run("dd", [
      `if=${raw}`,
      `of=${part}`,
      `bs=${sector}`,
      `skip=${root.start}`,
      `count=${root.size}`,
      "conv=sparse",
      "status=none",
    ]);
    await rm(raw);
    const tree = join(work, "root");
    await mkdir(tree);
    await run("debugfs", ["-R", `rdump / ${tree}`, part]);
    // awaited here, before finally removes the tree
    return { violations: await checkHygiene(tree), images: await preloadedImages(tree) };
  } finally {
    await rm(work, { recursive: true, force: true });
    forget();
  }
}
