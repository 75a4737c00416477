import { copyFile, mkdtemp, readlink, lstat, rm, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { removeOnExit } from "../util/cleanup";
import { dirname, join, posix } from "node:path";
import { spawn } from "node:child_process";
import * as tar from "tar";
import { ExitCode, KubebakeError } from "../errors";

export type ArchiveFormat = "binary" | "tar.gz" | "deb";

export interface Take {
  from: string;
  /** Absolute destination on the host. */
  dest: string;
  mode: number;
}

/** "./a/b", "/a/b" and "a//b" name the same member as "a/b" (normalize drops "./" and repeated slashes). */
const normalize = (member: string) => posix.normalize(member).replace(/^\//, "");

/**
 * Copies the named files out of a verified artifact, and nothing else: a tarball or .deb
 * carries more than the image needs. Symlinks inside the archive are followed within it.
 */
export async function takeFiles(
  artifact: string,
  format: ArchiveFormat,
  takes: Take[],
  label: string,
): Promise<void> {
  if (format === "binary") {
    for (const t of takes) await placeFile(artifact, t);
    return;
  }
  // Stryker disable next-line StringLiteral: only the name of a temporary folder
  const work = await mkdtemp(join(tmpdir(), "kubebake-extract-"));
  const forget = removeOnExit(work);
  try {
    let wanted = new Set(takes.map((t) => normalize(t.from)));
    // Later rounds follow symlinks found in the earlier ones (runc's /usr/bin/runc -> ../sbin/runc), three at most.
    const resolved = new Map<string, string>();
    for (let round = 0; round < 3 && wanted.size > 0; round++) {
      await extract(artifact, format, work, wanted);
      const next = new Set<string>();
      for (const member of wanted) {
        const onDisk = join(work, member);
        const info = await lstat(onDisk).catch(() => undefined);
        if (!info) continue;
        if (info.isSymbolicLink()) {
          const target = normalize(posix.join(posix.dirname(member), await readlink(onDisk)));
          resolved.set(member, target);
          next.add(target);
        }
      }
      wanted = next;
    }
    for (const t of takes) {
      let member = normalize(t.from);
      // Stryker disable next-line EqualityOperator: a longer walk only goes further round a symlink cycle
      for (let hops = 0; resolved.has(member) && hops < 8; hops++) member = resolved.get(member)!;
      const source = join(work, member);
      const info = await lstat(source).catch(() => undefined);
      if (!info?.isFile()) {
        throw new KubebakeError(
          `${label}: the archive has no file "${t.from}" (install.from)`,
          ExitCode.invalidInput,
        );
      }
      await placeFile(source, t);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
    forget();
  }
}

async function placeFile(source: string, take: Take): Promise<void> {
  await mkdir(dirname(take.dest), { recursive: true });
  await copyFile(source, take.dest);
}

async function extract(
  artifact: string,
  format: ArchiveFormat,
  into: string,
  members: Set<string>,
): Promise<void> {
  const filter = (path: string) => members.has(normalize(path));
  if (format === "tar.gz") {
    await tar
      .x({ file: artifact, cwd: into, filter, preservePaths: false, strict: true })
      .catch((error: Error) => {
        throw new KubebakeError(
          `${artifact}: not a readable tar.gz (${error.message})`,
          ExitCode.invalidInput,
        );
      });
    return;
  }
  // dpkg-deb knows every compression a .deb may use; we only parse the uncompressed tar it writes.
  await new Promise<void>((resolve, reject) => {
    const child = spawn("dpkg-deb", ["--fsys-tarfile", artifact]);
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const sink = tar.x({ cwd: into, filter, preservePaths: false });
    child.stdout.pipe(sink);
    // Settled once dpkg-deb has ended: for a broken package its message says more than the tar error
    // of the empty stream it leaves behind (which alone would be an internal error, exit 1).
    let exit: number | null | undefined;
    let extracted = false;
    let tarError: Error | undefined;
    const settle = () => {
      if (exit === undefined) return;
      if (exit !== 0)
        reject(new KubebakeError(`dpkg-deb ${artifact}: ${stderr.trim()}`, ExitCode.invalidInput));
      else if (tarError)
        reject(
          new KubebakeError(`${artifact}: not a readable .deb (${tarError.message})`, ExitCode.invalidInput),
        );
      else if (extracted) resolve();
    };
    sink.on("finish", () => {
      extracted = true;
      settle();
    });
    sink.on("error", (error: Error) => {
      tarError = error;
      child.stdout.resume(); // unpiped now: drain it so that dpkg-deb can end
      settle();
    });
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new KubebakeError("dpkg-deb is not installed; Debian components need it", ExitCode.missingTool)
          : error,
      ),
    );
    child.on("close", (code) => {
      exit = code;
      settle();
    });
  });
}
