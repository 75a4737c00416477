/** Everything a GCE apply needs besides the spec: the image and the image's own cluster settings. */
import { dirname, isAbsolute, join, resolve } from "node:path";
import type { GceSpec } from "../../cluster/schema";
import { podCapacityProblem } from "../../cluster/pods";
import { invalidInput } from "../../errors";
import { digestLabel, IMAGE_ID_LABEL } from "../../publish/gce/names";
import { loadImageSpec } from "../../spec/load";
import { packageRoot } from "../../util/package-root";
import { bakedCluster, readManifest } from "../manifest";
import { ifFound, type GceClients } from "./clients";
import type { GceInputs } from "./desired";

export async function resolveGceInputs(
  clients: GceClients,
  spec: GceSpec,
  specPath: string,
): Promise<GceInputs> {
  const near = (p: string) => (isAbsolute(p) ? p : join(dirname(resolve(specPath)), p));
  const { project } = clients;
  let cluster = spec.image.spec ? loadImageSpec(near(spec.image.spec)).spec.cluster : undefined;
  let image: string;
  if (spec.image.manifest) {
    const manifestPath = near(spec.image.manifest);
    const manifest = readManifest(manifestPath);
    // The publish labels each image with its id (src/publish/gce/names.ts), in this project.
    const label = digestLabel(manifest.imageId);
    const [images] = await clients.images.list(
      { project, filter: `labels.${IMAGE_ID_LABEL} = "${label}"`, maxResults: 500 },
      { autoPaginate: false },
    );
    const ready = (images ?? []).filter((i) => (i.status ?? "READY") === "READY");
    if (ready.length !== 1)
      throw invalidInput(
        `image.manifest: expected one image labelled ${IMAGE_ID_LABEL}=${label} in project ${project}, found ${ready.length} (publish it with bake-image --target gce)`,
      );
    image = `projects/${project}/global/images/${ready[0]!.name}`;
    cluster ??= bakedCluster(manifestPath, manifest);
    if (!spec.image.spec) {
      const problem = podCapacityProblem(
        spec.groups,
        cluster.podCIDR,
        `the podCIDR the image of ${spec.image.manifest} was baked with`,
      );
      if (problem) throw invalidInput(`${specPath}: groups.minions.max: ${problem}`);
    }
  } else {
    const name = spec.image.name!;
    image = name.includes("/") ? name : `projects/${project}/global/images/${name}`;
    const [, imageProject, , , imageName] = image.split("/");
    const found = await ifFound(() => clients.images.get({ project: imageProject!, image: imageName! }));
    if (!found)
      throw invalidInput(`image.name: image ${image} does not exist (or this account cannot see it)`);
  }
  cluster ??= loadImageSpec(join(packageRoot(), "image", "kubebake.yaml")).spec.cluster;
  return { spec, project, image, discoveryDomain: cluster.discoveryDomain };
}
