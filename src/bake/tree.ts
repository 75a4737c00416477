import {
  chmod,
  lstat,
  lutimes,
  mkdir,
  readdir,
  readlink,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { sha256File, sha256Hex } from "../util/hash";
import type { TreeEntry } from "./render";

/** Every file and folder of the tree gets this time, so archives and filesystems made from it are reproducible. */
export const TREE_EPOCH = 315532800; // 1980-01-01T00:00:00Z

export type ManifestFile =
  | { path: string; mode: string; size: number; sha256: string }
  | { path: string; type: "symlink"; target: string };

/** The path of an image file inside the tree folder (join skips the empty parts of doubled slashes). */
export const inTree = (tree: string, imagePath: string) => join(tree, ...imagePath.split("/"));

export async function writeEntries(tree: string, entries: TreeEntry[]): Promise<void> {
  for (const entry of entries) {
    const dest = inTree(tree, entry.path);
    await mkdir(dirname(dest), { recursive: true, mode: 0o755 });
    if (entry.kind === "symlink") await symlink(entry.target, dest);
    else {
      await writeFile(dest, entry.content, { mode: entry.mode });
      await chmod(dest, entry.mode); // writeFile's mode passes through the umask; the image's must not
    }
  }
}

/** Lists the tree (sorted, so the same tree always gives the same list), fixing modes and times as it goes. */
export async function describeTree(tree: string, normalize: boolean): Promise<ManifestFile[]> {
  const files: ManifestFile[] = [];
  const walk = async (dir: string, prefix: string) => {
    // Stryker disable next-line MethodExpression: equivalent here, libuv's scandir already sorts; kept so the
    // order never rests on a platform detail.
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const full = join(dir, name);
      const path = `${prefix}/${name}`;
      const info = await lstat(full);
      if (info.isSymbolicLink()) {
        files.push({ path, type: "symlink", target: await readlink(full) });
        if (normalize) await lutimes(full, TREE_EPOCH, TREE_EPOCH);
      } else if (info.isDirectory()) {
        await walk(full, path);
        if (normalize) {
          await chmod(full, 0o755);
          await utimes(full, TREE_EPOCH, TREE_EPOCH);
        }
      } else if (info.isFile()) {
        const mode = info.mode & 0o7777;
        files.push({ path, mode: `0${mode.toString(8)}`, size: info.size, sha256: await sha256File(full) });
        if (normalize) await utimes(full, TREE_EPOCH, TREE_EPOCH);
      } else {
        throw new Error(`${full}: the image tree may hold only files, folders and symlinks`);
      }
    }
  };
  await walk(tree, "");
  return files;
}

/** A SHA-256 over the tree's paths, modes and contents: the image's identity. */
export function imageIdOf(files: ManifestFile[]): string {
  const lines = files.map((f) =>
    "type" in f ? `${f.path}\0symlink\0${f.target}\n` : `${f.path}\0${f.mode}\0${f.sha256}\n`,
  );
  return `sha256:${sha256Hex(lines.join(""))}`;
}
