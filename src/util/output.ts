import { existsSync } from "node:fs";
import { mkdir, rmdir, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { invalidInput, KubebakeError } from "../errors";

/** Why an output path cannot be written, in words; these are the user's to fix (exit 2), not bugs. */
const REASONS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "not permitted",
  ENOTDIR: "a part of the path is a file, not a folder",
  EROFS: "the file system is read-only",
  EEXIST: "exists and is not a folder",
  EISDIR: "is a folder",
  ENOENT: "cannot be created there (a file system that takes no new files, like /proc)",
  ENOSPC: "no space left on the device",
  EDQUOT: "over the disk quota",
  ENAMETOOLONG: "the name is too long",
  ELOOP: "too many symbolic links",
};

/** A file system error on an output path as an invalid-input error naming the option, the path and why. */
export function outputError(option: string, path: string, error: unknown): unknown {
  if (error instanceof KubebakeError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  const reason = code === undefined ? undefined : REASONS[code];
  return reason === undefined ? error : invalidInput(`${option} ${path}: ${reason} (${code})`);
}

/**
 * mkdir -p, one level at a time. Node's recursive mkdir never returns on some paths (under /proc it
 * retries forever), and reports the wrong error on others (ENOENT for a read-only file system).
 * Returns the folders it created, outermost first, so that a failed run can remove them again.
 */
export async function makeFolders(path: string, mode?: number): Promise<string[]> {
  const missing: string[] = [];
  for (let at = resolve(path); ; at = dirname(at)) {
    const info = await stat(at).catch((error: NodeJS.ErrnoException) => {
      // ENOTDIR: a file further up; the loop reaches it and says so.
      if (error.code === "ENOENT" || error.code === "ENOTDIR") return undefined;
      throw error;
    });
    if (info?.isDirectory()) break;
    if (info) throw Object.assign(new Error(`${at} is not a folder`), { code: "ENOTDIR" });
    missing.unshift(at);
    if (dirname(at) === at) break;
  }
  const created: string[] = [];
  try {
    for (const dir of missing) {
      await mkdir(dir, { mode });
      created.push(dir);
    }
  } catch (error) {
    await removeFolders(created);
    throw error;
  }
  return created;
}

/** Removes folders makeFolders created (innermost first), if they are still empty. */
export async function removeFolders(created: string[]): Promise<void> {
  for (const dir of [...created].reverse()) await rmdir(dir).catch(() => undefined);
}

/** Writes an output file (a schema, a report); a path that cannot be written is exit 2, not a crash. */
export async function writeOutputFile(option: string, path: string, content: string): Promise<void> {
  try {
    await writeFile(path, content);
  } catch (error) {
    const folder = dirname(resolve(path));
    if ((error as NodeJS.ErrnoException).code === "ENOENT" && !existsSync(folder)) {
      throw invalidInput(`${option} ${path}: the folder ${folder} does not exist`);
    }
    throw outputError(option, path, error);
  }
}
