import { mkdir, rename, rm, stat, readFile, writeFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { removeOnExit } from "../util/cleanup";
import { sha256File } from "../util/hash";

/**
 * Verified artifacts keyed by their SHA-256. Every read re-hashes the file, so a corrupted or
 * tampered cache entry is dropped and fetched again instead of baked.
 */
export class ArtifactCache {
  constructor(readonly dir: string) {}

  pathOf(sha256: string): string {
    return join(this.dir, "sha256", sha256);
  }

  /** The verified path of a cached artifact, or undefined. */
  async get(sha256: string): Promise<string | undefined> {
    const path = this.pathOf(sha256);
    try {
      await stat(path);
    } catch {
      return undefined;
    }
    if ((await sha256File(path)) === sha256) return path;
    await rm(path, { force: true });
    return undefined;
  }

  /** A private scratch path inside the cache (same filesystem, so put() is an atomic rename). */
  async scratch(label: string): Promise<string> {
    await mkdir(join(this.dir, "tmp"), { recursive: true });
    const safe = label.replace(/[^A-Za-z0-9._-]/g, "_").slice(-80);
    const path = join(this.dir, "tmp", `${randomUUID()}-${safe}`);
    removeOnExit(path); // a no-op once put() has moved it
    return path;
  }

  /** Moves a verified scratch file into the cache under its digest. */
  async put(scratchPath: string, sha256: string): Promise<string> {
    await mkdir(join(this.dir, "sha256"), { recursive: true });
    const path = this.pathOf(sha256);
    await rename(scratchPath, path);
    return path;
  }

  /** Named pointers to digests, for artifacts that are not addressed by a pinned digest (Debian packages). */
  async readPointer(name: string): Promise<string | undefined> {
    const text = await readFile(join(this.dir, "pointers", name), "utf8").catch(() => undefined);
    return text?.trim();
  }

  async writePointer(name: string, sha256: string): Promise<void> {
    await mkdir(join(this.dir, "pointers"), { recursive: true });
    const tmp = await this.scratch(name);
    await writeFile(tmp, `${sha256}\n`);
    await rename(tmp, join(this.dir, "pointers", name));
  }
}
