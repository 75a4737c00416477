import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { TREE_EPOCH } from "../../bake/tree";
import { ExitCode, KubebakeError } from "../../errors";
import { run } from "../../util/run";

/**
 * The archive Compute Engine imports: one file named disk.raw in a gzip'd GNU tar. The tar is sparse, so a
 * mostly empty disk costs only its data. GNU tar writes it: node's tar libraries write no sparse GNU
 * entries (node-tar reads them only), and an archive that spells out every zero would be the disk's full
 * size before compression.
 *
 * Reproducible: the same disk bytes give the same archive bytes. GNU tar takes the sparse path only for a
 * file that has holes on disk, and finds holes from the extent map, both of which differ between two copies
 * of the same bytes. So the disk is first copied as disk.raw with every zero block made a hole
 * (`cp --sparse=always`, which costs the data's size, not the disk's) and tar reads the data for holes
 * (`--hole-detection=raw`); the owner, mode and time are fixed; the gzip header has no name and no time.
 */
export const TAR_ARGS = [
  "--format=gnu",
  "--sparse",
  "--hole-detection=raw",
  `--mtime=@${TREE_EPOCH}`,
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "--mode=0644",
  "--sort=name",
];

/** GNU tar is needed (bsdtar and busybox tar write no GNU sparse entries): exit 5 when it is missing. */
export async function requireGnuTar(): Promise<void> {
  const version = await run("tar", ["--version"]).catch(() => "");
  if (!version.startsWith("tar (GNU tar)"))
    throw new KubebakeError(
      "GNU tar is needed to write the GCE image archive (sparse GNU format); install the tar package",
      ExitCode.missingTool,
    );
}

/**
 * Writes `disk` as disk.raw into the gzip'd tar `out`; resolves to the archive's size. A disk.raw next to
 * `out` is the staging copy, removed afterwards.
 */
export async function writeGceTarball(disk: string, out: string, signal?: AbortSignal): Promise<number> {
  await requireGnuTar();
  const staged = join(dirname(out), "disk.raw");
  try {
    await run("cp", ["--sparse=always", disk, staged]);
    return await archive(staged, out, signal);
  } finally {
    await rm(staged, { force: true });
  }
}

async function archive(staged: string, out: string, signal?: AbortSignal): Promise<number> {
  const tar = spawn("tar", [...TAR_ARGS, "-C", dirname(staged), "-cf", "-", "disk.raw"], {
    stdio: ["ignore", "pipe", "pipe"],
    signal,
  });
  let stderr = "";
  tar.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve, reject) => {
    tar.on("error", reject);
    tar.on("close", resolve);
  });
  const file = createWriteStream(out);
  // level 6, no name, mtime 0: node's gzip header depends on nothing but the data.
  await pipeline(tar.stdout, createGzip({ level: 6 }), file, { signal });
  const code = await exited;
  if (code !== 0)
    throw new KubebakeError(
      `tar could not archive ${staged}: ${stderr.trim() || `exit ${code}`}`,
      ExitCode.internal,
    );
  return file.bytesWritten;
}
