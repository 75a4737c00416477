import { dirname, isAbsolute, join, resolve } from "node:path";
import { invalidInput } from "../errors";
import { loadImageSpec, loadYamlWithSchema } from "../spec/load";
import { podCapacityProblem } from "./pods";
import { clusterSpecSchema, type Cloud, type ClusterSpec } from "./schema";

export function loadClusterSpec(path: string): { path: string; spec: ClusterSpec } {
  const { spec } = loadYamlWithSchema(path, clusterSpecSchema);
  // The schema checks a bare AMI against the repository's image spec; an image.spec names its own pod
  // network, in a file beside this one. (An image.manifest's is checked where apply reads the bake.)
  if (spec.image.spec !== undefined) {
    const imageSpec = isAbsolute(spec.image.spec)
      ? spec.image.spec
      : join(dirname(resolve(path)), spec.image.spec);
    const { podCIDR } = loadImageSpec(imageSpec).spec.cluster;
    const problem = podCapacityProblem(spec.groups, podCIDR, `cluster.podCIDR of ${spec.image.spec}`);
    if (problem) throw invalidInput(`${path}: groups.minions.max: ${problem}`);
  }
  return { path, spec };
}

/** A spec that must be of one cloud (a cloud's own command or test); another cloud's is bad input. */
export function loadCloudSpec<C extends Cloud>(path: string, cloud: C): Extract<ClusterSpec, { cloud: C }> {
  const { spec } = loadClusterSpec(path);
  if (spec.cloud !== cloud) throw invalidInput(`${path}: cloud: expected ${cloud}, got ${spec.cloud}`);
  return spec as Extract<ClusterSpec, { cloud: C }>;
}
