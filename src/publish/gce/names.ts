import type { Manifest } from "../../bake/manifest";
import type { Arch } from "../../spec/schema";

/**
 * The pure part of a GCE publish: names, labels and the image resource, derived from the manifest alone so
 * a rerun computes the same ones (and finds what an earlier run made).
 */
export const IMAGE_ID_LABEL = "kubebake-image-id";
export const DISK_LABEL = "kubebake-disk-sha256";

/** GCE names and label values: lowercase letters, digits and dashes, at most 63 characters. */
const MAX_NAME = 63;

/**
 * A sha256 digest as a GCE label value. Label values hold at most 63 characters of [-_a-z0-9], one fewer
 * than the 64 hex digits of a sha256: the label keeps the first 63 (252 bits, unique for any practical
 * number of images, and still a prefix a person can match against `sha256:…`). The image's description
 * carries the full id.
 */
export function digestLabel(digest: string): string {
  const hex = digest.replace(/^sha256:/, "");
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`not a sha256 digest: ${digest}`);
  return hex.slice(0, MAX_NAME);
}

/** A spec's image name as a GCE name: lowercase, other characters as dashes, starting with a letter. */
export function gceName(name: string, max = MAX_NAME): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  const lettered = /^[a-z]/.test(cleaned) ? cleaned : `k-${cleaned}`;
  return lettered.slice(0, max).replace(/-+$/, "");
}

/** One image per image id: the family (the image name) and the id's first 12 hex digits. */
export function imageNameFor(family: string, imageId: string): string {
  const short = digestLabel(imageId).slice(0, 12);
  return `${gceName(family, MAX_NAME - short.length - 1)}-${short}`;
}

export function gceArchitecture(arch: Arch): "X86_64" | "ARM64" {
  return arch === "arm64" ? "ARM64" : "X86_64";
}

/** The temporary object the tarball is uploaded as; deleted once the image exists (or failed). */
export const objectNameFor = (imageName: string) => `kubebake-publish/${imageName}.tar.gz`;

export interface ImagePlan {
  name: string;
  family: string;
  bucket: string;
  object: string;
  /** What images.insert is sent (compute.v1 Image). */
  resource: {
    name: string;
    family: string;
    description: string;
    architecture: "X86_64" | "ARM64";
    guestOsFeatures: { type: string }[];
    labels: Record<string, string>;
    rawDisk: { source: string; containerType: "TAR" };
  };
}

export function planImage(manifest: Manifest, options: { bucket: string; family?: string }): ImagePlan {
  const diskSha256 = manifest.disk!.sha256;
  const family = gceName(options.family ?? manifest.name);
  const name = imageNameFor(family, manifest.imageId);
  const object = objectNameFor(name);
  return {
    name,
    family,
    bucket: options.bucket,
    object,
    resource: {
      name,
      family,
      description: `kubebake image ${manifest.imageId} (disk sha256:${diskSha256.replace(/^sha256:/, "")})`,
      architecture: gceArchitecture(manifest.arch),
      guestOsFeatures: [{ type: "UEFI_COMPATIBLE" }, { type: "GVNIC" }],
      labels: { [IMAGE_ID_LABEL]: digestLabel(manifest.imageId), [DISK_LABEL]: digestLabel(diskSha256) },
      rawDisk: { source: `https://storage.googleapis.com/${options.bucket}/${object}`, containerType: "TAR" },
    },
  };
}
