import { copyFile, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { ExitCode, invalidInput, KubebakeError } from "../errors";
import type { ArtifactCache } from "../fetch/cache";
import { download, type DownloadOptions } from "../fetch/download";
import type { Mirror } from "../fetch/mirror";
import type { Arch } from "../spec/schema";
import { sha256File } from "../util/hash";
import type { Progress } from "../util/progress";
import { registryEndpoint, type PinnedImage } from "./reference";
import { MANIFEST_TYPES, type RegistryClient } from "./registry";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
}

/** One pulled image: every blob of it for one platform is verified and in the cache. */
export interface PulledImage {
  /** The spec's name for it (addons.pause, addons.extra[0], …). */
  name: string;
  image: PinnedImage;
  /** The pinned top descriptor (an index, or a manifest). */
  top: Descriptor;
  /** The platform's manifest (the same as top when the pin is a single manifest). */
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** Bytes of every blob (index, manifest, config, layers). */
  size: number;
  fromCache: boolean;
}

const INDEX_TYPES = new Set([MANIFEST_TYPES[0], MANIFEST_TYPES[1]]);

export interface PullContext {
  cache: ArtifactCache;
  client: RegistryClient;
  mirror?: Mirror;
  download: DownloadOptions;
  progress: Progress;
}

/**
 * Pulls image for linux/arch through its pinned digest: the index (if any), the platform's manifest, the
 * config and the layers, each verified against its digest before it enters the cache.
 */
export async function pullImage(
  name: string,
  image: PinnedImage,
  arch: Arch,
  ctx: PullContext,
): Promise<PulledImage> {
  const source = sourceOf(image, ctx.mirror);
  let fromCache = true;
  const blob = async (d: { digest: string; size?: number }, kind: "manifests" | "blobs", accept?: string) => {
    const got = await obtainBlob(d.digest, kind, source, ctx, accept);
    fromCache &&= got.fromCache;
    return got.path;
  };
  const topBody = await readFile(
    await blob({ digest: image.digest }, "manifests", MANIFEST_TYPES.join(", ")),
  );
  const topJson = parseJson(topBody, image.reference);
  const top: Descriptor = {
    mediaType: mediaTypeOf(topJson, image.reference),
    digest: image.digest,
    size: topBody.length,
  };

  let manifest = top;
  let manifestJson = topJson;
  if (INDEX_TYPES.has(top.mediaType)) {
    const entries = (topJson.manifests ?? []) as Descriptor[];
    const wanted = entries.find(
      (m) =>
        m.platform?.os === "linux" &&
        m.platform.architecture === arch &&
        (arch !== "arm64" || [undefined, "v8"].includes(m.platform.variant)),
    );
    if (!wanted) {
      const have = entries
        .map((m) => (m.platform ? `${m.platform.os}/${m.platform.architecture}` : "?"))
        .join(", ");
      throw invalidInput(
        `${name}: ${image.reference} has no linux/${arch} image (its index lists ${have || "nothing"})`,
      );
    }
    const body = await readFile(await blob(wanted, "manifests", wanted.mediaType));
    checkSize(wanted, body.length, image.reference);
    manifestJson = parseJson(body, image.reference);
    manifest = {
      mediaType: wanted.mediaType,
      digest: wanted.digest,
      size: body.length,
      platform: wanted.platform,
    };
  }
  const config = manifestJson.config as Descriptor | undefined;
  const layers = (manifestJson.layers ?? []) as Descriptor[];
  if (!config || !Array.isArray(manifestJson.layers)) {
    throw new KubebakeError(
      `${name}: ${image.reference}: manifest ${manifest.digest} has no config or layers`,
      ExitCode.downloadFailed,
    );
  }
  const configBody = await readFile(await blob(config, "blobs"));
  checkSize(config, configBody.length, image.reference);
  const configJson = parseJson(configBody, image.reference);
  if (configJson.architecture !== arch || configJson.os !== "linux") {
    throw invalidInput(
      `${name}: ${image.reference}: the image for linux/${arch} is built for ${String(configJson.os)}/${String(configJson.architecture)}`,
    );
  }
  for (const layer of layers) {
    const path = await blob(layer, "blobs");
    checkSize(layer, (await stat(path)).size, image.reference);
  }
  const size = [top, ...(manifest === top ? [] : [manifest]), config, ...layers].reduce(
    (n, d) => n + d.size,
    0,
  );
  ctx.progress.info(`${name} ${image.reference.split("@")[0]} ${fromCache ? "(cached)" : "(pulled)"}`);
  return { name, image, top, manifest, config: strip(config), layers: layers.map(strip), size, fromCache };
}

const strip = (d: Descriptor): Descriptor => ({ mediaType: d.mediaType, digest: d.digest, size: d.size });

type Source =
  | { kind: "registry"; endpoint: string; repository: string; label: string }
  | { kind: "dir"; dir: string; label: string };

/**
 * A URL mirror is a registry holding every upstream under <host>/<repository> (what `skopeo sync` or a
 * pull-through proxy with one project per registry gives); a folder mirror holds blobs by digest in
 * <mirror>/oci/blobs/sha256/ (an OCI layout: `skopeo copy … oci:<mirror>/oci` fills it).
 */
function sourceOf(image: PinnedImage, mirror?: Mirror): Source {
  const label = `${image.registry}/${image.repository}`;
  if (mirror?.kind === "dir") return { kind: "dir", dir: join(mirror.dir, "oci", "blobs", "sha256"), label };
  if (mirror?.kind === "url") return { kind: "registry", endpoint: mirror.base, repository: label, label };
  return {
    kind: "registry",
    endpoint: registryEndpoint(image.registry),
    repository: image.repository,
    label,
  };
}

async function obtainBlob(
  digest: string,
  kind: "manifests" | "blobs",
  source: Source,
  ctx: PullContext,
  accept?: string,
): Promise<{ path: string; fromCache: boolean }> {
  const hex = digest.replace(/^sha256:/, "");
  if (!/^[0-9a-f]{64}$/.test(hex) || !digest.startsWith("sha256:")) {
    throw new KubebakeError(
      `${source.label}: unsupported digest ${digest} (kubebake verifies sha256 only)`,
      ExitCode.downloadFailed,
    );
  }
  const cached = await ctx.cache.get(hex);
  if (cached) return { path: cached, fromCache: true };
  const scratch = await ctx.cache.scratch(`${hex}.blob`);
  let location: string;
  let actual: string;
  if (source.kind === "dir") {
    location = join(source.dir, hex);
    await copyFile(location, scratch).catch((error: NodeJS.ErrnoException) => {
      throw new KubebakeError(
        `the mirror has no ${source.label}@${digest}: cannot read ${location} (${error.code})`,
        ExitCode.downloadFailed,
      );
    });
    actual = await sha256File(scratch);
  } else {
    location = `${source.endpoint}/v2/${source.repository}/${kind}/${digest}`;
    ctx.progress.info(`fetch ${location}`);
    ctx.client.requests++;
    // Registries answer blob requests with a redirect to storage; fetch drops the token on the way there.
    actual = await download(location, scratch, {
      ...ctx.download,
      headers: {
        ...(accept ? { accept } : {}),
        ...(await ctx.client.authorization(source.endpoint, source.repository)),
      },
    });
  }
  if (actual !== hex) {
    await rm(scratch, { force: true });
    throw new KubebakeError(
      `SHA-256 mismatch for ${location}: expected ${hex}, got ${actual}; the blob was discarded`,
      ExitCode.digestMismatch,
    );
  }
  return { path: await ctx.cache.put(scratch, hex), fromCache: false };
}

function parseJson(body: Buffer, reference: string): Record<string, unknown> {
  try {
    return JSON.parse(body.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new KubebakeError(`${reference}: a manifest that is not JSON`, ExitCode.downloadFailed);
  }
}

function mediaTypeOf(json: Record<string, unknown>, reference: string): string {
  if (typeof json.mediaType === "string") return json.mediaType;
  // OCI makes mediaType optional: an index has manifests, a manifest has a config.
  if (Array.isArray(json.manifests)) return MANIFEST_TYPES[0]!;
  if (json.config) return MANIFEST_TYPES[2]!;
  throw new KubebakeError(`${reference}: neither an image index nor a manifest`, ExitCode.downloadFailed);
}

function checkSize(d: Descriptor, actual: number, reference: string): void {
  if (d.size !== actual) {
    throw new KubebakeError(
      `${reference}: ${d.digest} has ${actual} bytes, its descriptor says ${d.size}`,
      ExitCode.digestMismatch,
    );
  }
}
