import { chmod, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { invalidInput } from "../errors";
import { makeFolders, outputError, removeFolders } from "../util/output";
import { adminFiles, caPairs, readAdminKubeconfig, rotateCa, type CaName } from "./ca";
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
 * One rotation step on an encryption config file: read, check, and replace it atomically (see replaceFiles).
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
  await replaceFiles(
    dirname(file),
    [{ name: basename(file), content: encryptionConfig(keys), secret: true }],
    () => ["--file", file],
  );
  return keys.map((k) => k.name);
}

/** One CA as a step left it, the signing CA first. */
export interface CaSummary {
  subject: string;
  notBefore: string;
  notAfter: string;
}

/**
 * One rotation step of a CA in a PKI folder (src/pki/ca.ts): <ca>.crt and <ca>.key, and for the cluster CA
 * the operator's admin.kubeconfig (and on `use` admin.crt and admin.key), checked, then replaced together.
 * Returns the CAs after the step and the files rewritten.
 */
export async function rewriteCa(
  dir: string,
  ca: CaName,
  step: RotationStep,
  now: Date,
): Promise<{ cas: CaSummary[]; files: string[] }> {
  const files = { cert: join(dir, `${ca}.crt`), key: join(dir, `${ca}.key`) };
  const pairs = caPairs(await readPkiFile(files.cert), await readPkiFile(files.key), files);
  const kubeconfig = join(dir, "admin.kubeconfig");
  const admin = ca === "ca" ? readAdminKubeconfig(await readPkiFile(kubeconfig), kubeconfig) : undefined;
  const after = await rotateCa(pairs, step, now, files.cert);
  const written: PkiFile[] = [
    { name: `${ca}.crt`, content: after.map((p) => p.cert).join(""), secret: false },
    { name: `${ca}.key`, content: after.map((p) => p.key).join(""), secret: true },
    ...(admin ? await adminFiles(admin, after, step, now, files.key) : []),
  ];
  await replaceFiles(dir, written, (name) => ["--dir", join(dir, name)]);
  return {
    cas: after.map(({ certificate: c }) => ({
      subject: c.subject,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
    })),
    files: written.map((f) => f.name),
  };
}

const readPkiFile = (file: string) =>
  readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw invalidInput(`${file}: cannot read it (${error.code ?? error.message})`);
  });

/**
 * Replaces files in a folder: every new content is written to a temporary file beside its target first
 * (created with its final mode: secrets 0600, certificates 0644, and synced), then each is renamed over its
 * target. A failure before the renames leaves every file as it was; a crash can only fall between two
 * renames, which the next step's checks find (a key that does not belong to its certificate).
 * `option` names what failed for the message: the option and path.
 */
async function replaceFiles(
  dir: string,
  files: readonly PkiFile[],
  option: (name: string) => [string, string],
): Promise<void> {
  const temporary = (name: string) => join(dir, `.${name}.${process.pid}.tmp`);
  const made: string[] = [];
  let current = files[0]!.name;
  try {
    for (const file of files) {
      current = file.name;
      const mode = file.secret ? 0o600 : 0o644;
      const handle = await open(temporary(file.name), "wx", mode);
      made.push(temporary(file.name));
      try {
        await handle.writeFile(file.content);
        await handle.chmod(mode);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    for (const file of files) {
      current = file.name;
      await rename(temporary(file.name), join(dir, file.name));
    }
  } catch (error) {
    for (const path of made) await rm(path).catch(() => undefined); // a renamed one is gone already
    throw outputError(...option(current), error);
  }
}
