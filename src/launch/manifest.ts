/** A bake's manifest and the image spec it baked with, as a launch on any cloud reads them. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { invalidInput } from "../errors";
import { imageSpecSchema, type ImageSpec } from "../spec/schema";

export interface ManifestRef {
  imageId: string;
  rootfs?: string;
}

/** The manifest's image id (what the published images are labelled or tagged with). */
export function readManifest(manifestPath: string): ManifestRef {
  let manifest: ManifestRef;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch (error) {
    throw invalidInput(
      `image.manifest: cannot read ${manifestPath} as a bake manifest (${(error as Error).message})`,
    );
  }
  if (typeof manifest.imageId !== "string")
    throw invalidInput(`image.manifest: ${manifestPath} has no imageId`);
  return manifest;
}

/** The image spec a bake wrote into its tree (/etc/kubebake/image-spec.json), as the nodes have it. */
export function bakedCluster(manifestPath: string, manifest: ManifestRef): ImageSpec["cluster"] {
  const path = join(dirname(manifestPath), manifest.rootfs ?? "rootfs", "etc/kubebake/image-spec.json");
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw invalidInput(
      `image.manifest: the bake's image spec ${path} is missing or unreadable; set image.spec to the spec the image was baked with`,
    );
  }
  const result = imageSpecSchema.safeParse(parsed);
  if (!result.success)
    throw invalidInput(`image.manifest: ${path} is not an image spec; set image.spec instead`);
  return result.data.cluster;
}
