/** Synthetic raw disks and manifests for publish tests (no real bake: that takes minutes and root). */
import { createHash } from "node:crypto";
import { openSync, closeSync, ftruncateSync, writeSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MANIFEST_KIND, type Manifest } from "../../../src/bake/manifest";
import { BLOCK_SIZE } from "../../../src/publish/blocks";

/** A sparse raw disk of `mib` MiB with data (derived from each seed) in the listed blocks. */
export function sparseDisk(dir: string, name: string, mib: number, filled: Record<number, string>): string {
  const path = join(dir, name);
  const fd = openSync(path, "w");
  ftruncateSync(fd, mib * 1024 * 1024);
  for (const [index, seed] of Object.entries(filled)) {
    const block = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; i < BLOCK_SIZE; i += 64) block.write(`${seed}:${i};`, i);
    writeSync(fd, block, 0, BLOCK_SIZE, Number(index) * BLOCK_SIZE);
  }
  closeSync(fd);
  return path;
}

/** A manifest as a raw bake writes it, for the disk at `path` (the image id derived from `version`). */
export function manifestFor(path: string, version: string, name = "kubebake"): Manifest {
  const content = readFileSync(path);
  const sha256 = createHash("sha256").update(content).digest("hex");
  return {
    kind: MANIFEST_KIND,
    manifestVersion: 1,
    imageId: `sha256:${createHash("sha256").update(version).digest("hex")}`,
    name,
    arch: "amd64",
    target: "raw",
    rootfs: "rootfs",
    inputs: version,
    spec: { path: "image.yaml", sha256: "0".repeat(64) },
    components: [],
    files: [],
    disk: { format: "raw", file: "disk.raw", sha256, size: content.length, baseLayer: "test" },
  };
}
