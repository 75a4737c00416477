import { copyFile, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode, KubebakeError } from "../errors";
import type { ArtifactPlan, DebianFetch, UpstreamFetch } from "../bake/plan";
import { removeOnExit } from "../util/cleanup";
import { sha256File } from "../util/hash";
import { run } from "../util/run";
import type { Progress } from "../util/progress";
import { ArtifactCache } from "./cache";
import { download, type DownloadOptions } from "./download";
import { debFileName, mirrorDebianLocation, mirrorLocation, type Mirror } from "./mirror";

export interface FetchedArtifact {
  /** Verified file in the cache. */
  path: string;
  sha256: string;
  /** Where it came from, for the manifest: the upstream URL or the Debian package. */
  origin: string;
  fromCache: boolean;
}

export interface FetcherOptions {
  cache: ArtifactCache;
  mirror?: Mirror;
  download: DownloadOptions;
  progress: Progress;
}

/** Fetches and verifies artifacts; nothing unverified ever leaves this class. */
export class ArtifactFetcher {
  /** Network requests and apt calls made, for tests and benches that check "no request when cached". */
  requests = 0;

  constructor(private readonly options: FetcherOptions) {}

  fetch(plan: ArtifactPlan): Promise<FetchedArtifact> {
    return plan.source.kind === "upstream"
      ? this.fetchUpstream(plan.source)
      : this.fetchDebian(plan.source, plan.arch);
  }

  private async fetchUpstream(source: UpstreamFetch): Promise<FetchedArtifact> {
    const { cache, mirror } = this.options;
    const cached = await cache.get(source.sha256);
    if (cached) return { path: cached, sha256: source.sha256, origin: source.url, fromCache: true };

    const location = mirror ? mirrorLocation(mirror, source.url) : source.url;
    const actual = await this.obtain(location, source.url, mirror);
    const scratch = actual.path;
    if (actual.sha256 !== source.sha256) {
      await rm(scratch);
      throw digestMismatch(location, source.sha256, actual.sha256);
    }
    return {
      path: await cache.put(scratch, source.sha256),
      sha256: source.sha256,
      origin: source.url,
      fromCache: false,
    };
  }

  private async fetchDebian(source: DebianFetch, arch: string): Promise<FetchedArtifact> {
    const { cache, mirror } = this.options;
    const file = debFileName(source.package, source.version, arch);
    const origin = `debian:${source.package}=${source.version}:${arch}`;
    const pointer = source.sha256 ?? (await cache.readPointer(file));
    if (pointer) {
      const cached = await cache.get(pointer);
      if (cached) return { path: cached, sha256: pointer, origin, fromCache: true };
    }

    let fetched: { path: string; sha256: string };
    let location: string;
    if (mirror) {
      location = mirrorDebianLocation(mirror, source.package, source.version, arch);
      fetched = await this.obtain(location, origin, mirror);
    } else {
      location = `apt-get download ${source.package}:${arch}=${source.version}`;
      fetched = await this.aptDownload(source, arch);
    }
    if (source.sha256 && fetched.sha256 !== source.sha256) {
      await rm(fetched.path);
      throw digestMismatch(location, source.sha256, fetched.sha256);
    }
    const path = await cache.put(fetched.path, fetched.sha256);
    await cache.writePointer(file, fetched.sha256);
    return { path, sha256: fetched.sha256, origin, fromCache: false };
  }

  /** Copies from a mirror folder or downloads into a cache scratch file; returns its digest. */
  private async obtain(
    location: string,
    label: string,
    mirror?: Mirror,
  ): Promise<{ path: string; sha256: string }> {
    const scratch = await this.options.cache.scratch(label);
    this.options.progress.info(`fetch ${location}`);
    if (mirror?.kind === "dir") {
      try {
        await copyFile(location, scratch);
      } catch (error) {
        throw new KubebakeError(
          `the mirror has no ${label}: cannot read ${location} (${(error as NodeJS.ErrnoException).code})`,
          ExitCode.downloadFailed,
        );
      }
      return { path: scratch, sha256: await sha256File(scratch) };
    }
    this.requests++;
    const sha256 = await download(location, scratch, {
      ...this.options.download,
      onRetry: (attempt, reason, delay) =>
        this.options.progress.info(`retry ${attempt} of ${location} in ${delay} ms: ${reason}`),
    });
    return { path: scratch, sha256 };
  }

  /** apt checks the package against the archive's signed index; we then pin what it gave us. */
  private async aptDownload(source: DebianFetch, arch: string): Promise<{ path: string; sha256: string }> {
    this.requests++;
    // Stryker disable next-line StringLiteral: only the name of a temporary folder
    const dir = await mkdtemp(join(tmpdir(), "kubebake-apt-"));
    const forget = removeOnExit(dir);
    try {
      const spec = `${source.package}:${arch}=${source.version}`;
      this.options.progress.info(`apt-get download ${spec}`);
      await run("apt-get", ["download", "-q", spec], {
        cwd: dir,
        failCode: ExitCode.downloadFailed,
        // apt's own errors are its "E:" lines; the rest is progress and warnings.
        detail: (stderr) =>
          stderr
            .split("\n")
            .filter((l) => l.startsWith("E:"))
            .join(" "),
      });
      const debs = (await readdir(dir)).filter((f) => f.endsWith(".deb"));
      if (debs.length !== 1)
        throw new KubebakeError(`apt-get download ${spec} gave no .deb`, ExitCode.downloadFailed);
      const scratch = await this.options.cache.scratch(debs[0]!);
      await copyFile(join(dir, debs[0]!), scratch);
      return { path: scratch, sha256: await sha256File(scratch) };
    } finally {
      await rm(dir, { recursive: true, force: true });
      forget();
    }
  }
}

function digestMismatch(location: string, expected: string, actual: string): KubebakeError {
  return new KubebakeError(
    `SHA-256 mismatch for ${location}: expected ${expected}, got ${actual}; the file was discarded`,
    ExitCode.digestMismatch,
  );
}
