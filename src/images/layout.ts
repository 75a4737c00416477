import { chmod, copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { NODE_PATHS } from "../bake/render";
import type { ArtifactCache } from "../fetch/cache";
import type { ImageSpec } from "../spec/schema";
import { containerdNames, parsePinnedImage, type PinnedImage } from "./reference";
import type { PulledImage } from "./pull";

/**
 * The preloaded images live in the image as ONE OCI image layout: blobs shared between images are stored
 * once, and `ctr images import` reads it (as a tar stream) into containerd's store before the kubelet starts.
 */
export const IMAGES_DIR = NODE_PATHS.images;

/** Pure: the images a spec preloads, named as the spec names them (addons.pause, addons.extra[0]…). */
export function specImages(spec: ImageSpec): { name: string; image: PinnedImage }[] {
  const named: [string, string][] = [
    ["addons.pause", spec.addons.pause],
    ["addons.flannel", spec.addons.flannel],
    ["addons.flannelCNIPlugin", spec.addons.flannelCNIPlugin],
    ["addons.coredns", spec.addons.coredns],
    ...spec.addons.extra.map((ref, i): [string, string] => [`addons.extra[${i}]`, ref]),
  ];
  // The schema admits only pinned references, so every one parses.
  return named.map(([name, ref]) => ({ name, image: parsePinnedImage(ref)! }));
}

export const ANNOTATION_IMAGE_NAME = "io.containerd.image.name";
const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";

/** Pure: index.json of the layout: one entry per name containerd should know each image by. */
export function layoutIndex(images: PulledImage[]): string {
  const manifests = images.flatMap((p) =>
    containerdNames(p.image).map((name) => ({
      mediaType: p.top.mediaType,
      digest: p.top.digest,
      size: p.top.size,
      annotations: { [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: p.image.tag ?? p.image.digest },
    })),
  );
  return (
    JSON.stringify(
      { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests },
      null,
      2,
    ) + "\n"
  );
}

/** Pure: every blob digest of the images, each once, sorted. */
export function layoutBlobs(images: PulledImage[]): string[] {
  const all = images.flatMap((p) => [p.top, p.manifest, p.config, ...p.layers].map((d) => d.digest));
  return [...new Set(all)].sort();
}

/** Writes the layout into the image tree (folder = the tree path of IMAGES_DIR), blobs copied from the cache. */
export async function writeLayout(
  folder: string,
  images: PulledImage[],
  cache: ArtifactCache,
): Promise<void> {
  const blobs = join(folder, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  for (const digest of layoutBlobs(images)) {
    const hex = digest.replace(/^sha256:/, "");
    await copyFile(cache.pathOf(hex), join(blobs, hex));
    await chmod(join(blobs, hex), 0o644); // copyFile keeps the cache file's mode, which depends on its source
  }
}
