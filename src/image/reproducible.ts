import { lstat, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../util/run";

/**
 * What makes two bakes of the same inputs give the same disk, byte for byte, beyond the fixed UUIDs:
 * mkfs.ext4 -d (e2fsprogs 1.47.0, Debian 12) takes every inode's ctime and atime from the host folder,
 * and the host kernel sets a ctime on every change and an atime on every read; neither can be set
 * from user space. So the times are pinned in the finished file system with debugfs instead.
 */

/** The inode numbers in use, from `dumpe2fs` (its per-group "Free inodes:" lists). */
export function usedInodes(dumpe2fs: string): number[] {
  const perGroup = /^Inodes per group:\s+(\d+)$/m.exec(dumpe2fs);
  if (!perGroup) throw new Error("dumpe2fs: no 'Inodes per group' line");
  const size = Number(perGroup[1]);
  const used: number[] = [];
  const groups = [...dumpe2fs.matchAll(/^Group (\d+):[\s\S]*?^\s+Free inodes: ?(.*)$/gm)];
  if (groups.length === 0) throw new Error("dumpe2fs: no groups");
  for (const [, group, list] of groups) {
    const first = Number(group) * size + 1;
    const free = new Set<number>();
    for (const range of list!.split(",").map((r) => r.trim())) {
      if (!range) continue;
      const [from, to = from] = range.split("-").map(Number) as [number, number?];
      for (let n = from; n <= to!; n++) free.add(n);
    }
    for (let n = first; n < first + size; n++) if (!free.has(n)) used.push(n);
  }
  return used;
}

/** A debugfs script setting every given inode's access, change and modification times to `epoch`. */
export function pinTimesScript(inodes: number[], epoch: number): string {
  return inodes
    .flatMap((n) => ["atime", "ctime", "mtime"].map((field) => `sif <${n}> ${field} @${epoch}\n`))
    .join("");
}

/** debugfs answers 0 even when a command fails; its stderr holds the banner and any errors. */
export function debugfsErrors(stderr: string): string[] {
  return stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^debugfs \d+\.\d+/.test(l));
}

/**
 * Pins all inode times of an ext4 image to `epoch`. E2FSPROGS_FAKE_TIME keeps debugfs from stamping
 * the superblock's last-write time with the clock.
 */
export async function pinExt4Times(image: string, script: string, epoch: number): Promise<void> {
  const env = { E2FSPROGS_FAKE_TIME: String(epoch) };
  const inodes = usedInodes(await run("dumpe2fs", [image], { env }));
  await writeFile(script, pinTimesScript(inodes, epoch));
  // stderr only (stdout echoes every command): the banner, and a line per failed command
  const stderr = await run("sh", ["-c", 'debugfs -w -f "$1" "$2" 2>&1 >/dev/null', "sh", script, image], {
    env,
  });
  const errors = debugfsErrors(stderr);
  if (errors.length > 0) throw new Error(`debugfs, pinning inode times: ${errors.slice(0, 3).join("; ")}`);
}

const BLOCK = 4096;

/**
 * The bytes a folder takes in ext4 with 4 KiB blocks, counted from what is in it (sizes, kinds, hard
 * links once) rather than from `du`, which measures the host's file system (tmpfs, btrfs and ext4 give
 * different figures) and so would make the partition size, and the disk, depend on the build machine.
 */
export async function ext4Bytes(root: string): Promise<number> {
  const seen = new Set<string>();
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const info = await lstat(path);
      if (info.nlink > 1 && !info.isDirectory()) {
        const key = `${info.dev}:${info.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      // a symlink up to 59 bytes lives in its inode; a longer one takes a block
      if (info.isSymbolicLink()) bytes += info.size > 59 ? BLOCK : 0;
      else if (info.isFile()) bytes += Math.ceil(info.size / BLOCK) * BLOCK;
      if (info.isDirectory()) {
        bytes += BLOCK;
        await walk(path);
      }
    }
  };
  await walk(root);
  return bytes + BLOCK;
}
