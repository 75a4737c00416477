import { createHash } from "node:crypto";
import { openSync, closeSync, writeSync, ftruncateSync } from "node:fs";
import type { Manifest } from "../../../src/bake/manifest";
import type { GceAuthClient } from "../../../src/publish/gce/auth";
import { installCompute, ComputeState } from "../../fakes/gcp/compute";
import { GoogleApiFake } from "../../fakes/gcp/fake";
import { installStorage } from "../../fakes/gcp/storage";

export const MiB = 1024 * 1024;

/**
 * A sparse raw disk of `size` bytes with a few regions of incompressible data (so the archive needs several
 * upload chunks) at fixed offsets; the same seed gives the same bytes.
 */
export function syntheticDisk(path: string, size = 48 * MiB, seed = "disk"): void {
  const fd = openSync(path, "w");
  try {
    ftruncateSync(fd, size);
    for (const [i, offset] of [0, 5 * MiB + 4096, 20 * MiB, size - 300 * 1024].entries())
      writeSync(fd, noise(`${seed}/${i}`, 300 * 1024), 0, undefined, offset);
  } finally {
    closeSync(fd);
  }
}

function noise(seed: string, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < length; i++)
    blocks.push(createHash("sha256").update(`${seed}/${i}`).digest());
  return Buffer.concat(blocks).subarray(0, length);
}

export function manifestFor(disk: string, imageId = "sha256:" + "ab12".repeat(16)): Manifest {
  return {
    imageId,
    name: "kb-test",
    arch: "amd64",
    disk: { format: "raw", file: disk, sha256: "cd34".repeat(16), size: 48 * MiB, baseLayer: "base" },
  } as unknown as Manifest;
}

export const testAuth: GceAuthClient = {
  getRequestHeaders: async () => new Headers({ authorization: "Bearer test-token" }),
  fetch: (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set("authorization", "Bearer test-token");
    return fetch(url, { ...init, headers });
  },
};

/** A fake serving Cloud Storage and Compute Engine, with a bucket and the compute state reading it. */
export async function startGcpFake(bucket = "kb-bucket") {
  const fake = new GoogleApiFake(["storage.v1", "compute.v1"]);
  const storage = installStorage(fake).addBucket(bucket);
  const compute = installCompute(fake, new ComputeState(storage));
  const url = await fake.start();
  const endpoints = { compute: { host: "127.0.0.1", port: fake.port }, storage: url };
  return { fake, storage, compute, endpoints, bucket };
}
