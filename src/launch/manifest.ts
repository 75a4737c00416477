/** A bake's manifest and the image spec it baked with, as a launch on any cloud reads them. */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { podCapacityProblem } from "../cluster/pods";
import { invalidInput } from "../errors";
import { loadImageSpec } from "../spec/load";
import { packageRoot } from "../util/package-root";
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

/** A path in a cluster file, relative to that file. */
export const nearSpec = (specPath: string, path: string) =>
  isAbsolute(path) ? path : join(dirname(resolve(specPath)), path);

interface ImageFields {
  image: { spec?: string; manifest?: string };
  groups: Parameters<typeof podCapacityProblem>[0];
}

/**
 * The cluster settings the nodes carry, as every cloud's launch reads them: image.spec's, else the bake's
 * beside the manifest (whose pod range must hold every node the groups may grow to), else the
 * repository's image spec (an image named by id alone).
 */
export function imageClusterSettings(
  spec: ImageFields,
  specPath: string,
  baked?: { path: string; manifest: ManifestRef },
): ImageSpec["cluster"] {
  if (spec.image.spec) return loadImageSpec(nearSpec(specPath, spec.image.spec)).spec.cluster;
  if (baked) {
    const cluster = bakedCluster(baked.path, baked.manifest);
    const problem = podCapacityProblem(
      spec.groups,
      cluster.podCIDR,
      `the podCIDR the image of ${spec.image.manifest} was baked with`,
    );
    if (problem) throw invalidInput(`${specPath}: groups.minions.max: ${problem}`);
    return cluster;
  }
  return loadImageSpec(join(packageRoot(), "image", "kubebake.yaml")).spec.cluster;
}

/** The bake a cluster file's image.manifest names: its path and its manifest. */
export function bakeOf(specPath: string, manifest: string): { path: string; manifest: ManifestRef } {
  const path = nearSpec(specPath, manifest);
  return { path, manifest: readManifest(path) };
}
