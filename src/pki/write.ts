import { chmod, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { invalidInput } from "../errors";
import { makeFolders, outputError, removeFolders } from "../util/output";
import { encryptionConfig, encryptionKeys, rotate, type RotationStep } from "./encryption";
import type { PkiFile } from "./pki";

/**
 * Writes the PKI into a new or empty folder (0700): secrets 0600 from the moment they exist, certificates
 * 0644. A PKI is generated once; an existing one is never overwritten. On failure nothing is left.
 */
export async function writePki(dir: string, files: PkiFile[]): Promise<void> {
  if ((await stat(dir).catch(() => undefined))?.isDirectory() === false) {
    throw outputError("--out", dir, { code: "EEXIST" });
  }
  const existing = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return undefined; // makeFolders says which
    throw outputError("--out", dir, error);
  });
  if (existing && existing.length > 0) {
    throw invalidInput(
      `--out ${dir}: already holds files (${existing.slice(0, 3).join(", ")}…); a cluster PKI is generated once and never overwritten`,
    );
  }
  let created: string[] = [];
  try {
    created = await makeFolders(dir, 0o700);
    await chmod(dir, 0o700);
    for (const file of files) {
      // Created with its final mode: a key is never world-readable, not even for a moment.
      const handle = await open(join(dir, file.name), "wx", file.secret ? 0o600 : 0o644);
      try {
        await handle.writeFile(file.content);
        await handle.chmod(file.secret ? 0o600 : 0o644);
      } finally {
        await handle.close();
      }
    }
  } catch (error) {
    for (const file of files) await rm(join(dir, file.name), { force: true }).catch(() => undefined);
    await removeFolders(created);
    throw outputError("--out", dir, error);
  }
}

/**
 * One rotation step on an encryption config file: read, check, and replace it atomically (a temporary file
 * created 0600 beside it, then renamed), so a crash leaves the old file or the new one, never half of one.
 * Returns the key names after the step, the writing key first.
 */
export async function rewriteEncryptionConfig(
  file: string,
  step: RotationStep,
  now: Date,
): Promise<string[]> {
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw invalidInput(`--file ${file}: cannot read it (${error.code ?? error.message})`);
  });
  const keys = rotate(encryptionKeys(text, file), step, now);
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    const handle = await open(temporary, "wx", 0o600);
    try {
      await handle.writeFile(encryptionConfig(keys));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw outputError("--file", file, error);
  }
  return keys.map((k) => k.name);
}
