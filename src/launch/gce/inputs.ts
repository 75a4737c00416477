/** Everything a GCE apply needs besides the spec: the image and the image's own cluster settings. */
import type { GceSpec } from "../../cluster/schema";
import { invalidInput } from "../../errors";
import { digestLabel, IMAGE_ID_LABEL } from "../../publish/gce/names";
import { bakeOf, imageClusterSettings } from "../manifest";
import { ifFound, type GceClients } from "./clients";
import type { GceInputs } from "./desired";

export async function resolveGceInputs(
  clients: GceClients,
  spec: GceSpec,
  specPath: string,
): Promise<GceInputs> {
  const { project } = clients;
  // Local first: the image spec or the bake's tree, before any Google call.
  const baked = spec.image.manifest ? bakeOf(specPath, spec.image.manifest) : undefined;
  const cluster = imageClusterSettings(spec, specPath, baked);
  let image: string;
  if (baked) {
    // The publish labels each image with its id (src/publish/gce/names.ts), in this project.
    const label = digestLabel(baked.manifest.imageId);
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
  } else {
    const name = spec.image.name!;
    image = name.includes("/") ? name : `projects/${project}/global/images/${name}`;
    const [, imageProject, , , imageName] = image.split("/");
    const found = await ifFound(() => clients.images.get({ project: imageProject!, image: imageName! }));
    if (!found)
      throw invalidInput(`image.name: image ${image} does not exist (or this account cannot see it)`);
  }
  return { spec, project, image, discoveryDomain: cluster.discoveryDomain };
}
