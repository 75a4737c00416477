/**
 * Whether the pod network can give every node the groups may grow to a range of its own. The controller
 * manager (units/systemd/kube-controller-manager.service.ejs: --allocate-node-cidrs, --cluster-cidr from the
 * image spec's cluster.podCIDR) cuts the pod CIDR into one /NODE_CIDR_MASK_SIZE per node; a node beyond that
 * gets none, and flannel never starts on it.
 */
import { join } from "node:path";
import { loadImageSpec } from "../spec/load";
import { packageRoot } from "../util/package-root";

/**
 * The size of each node's pod range: kube-controller-manager's default --node-cidr-mask-size for IPv4. The
 * unit does not set the flag and no spec field changes it.
 */
export const NODE_CIDR_MASK_SIZE = 24;

/** How many nodes a pod CIDR gives a range of /mask each (none when the CIDR is smaller than one range). */
export function podCapacity(podCIDR: string, mask = NODE_CIDR_MASK_SIZE): number {
  const prefix = Number(podCIDR.split("/")[1]);
  return prefix <= mask ? 2 ** (mask - prefix) : 0;
}

/**
 * Why the groups do not fit the pod network (undefined when they do): the masters plus the minions' maximum
 * against podCapacity. `where` says where the pod CIDR comes from, for the message.
 */
export function podCapacityProblem(
  groups: { masters: { count: number }; minions: { max: number } },
  podCIDR: string,
  where: string,
  mask = NODE_CIDR_MASK_SIZE,
): string | undefined {
  const nodes = groups.masters.count + groups.minions.max;
  const capacity = podCapacity(podCIDR, mask);
  if (nodes <= capacity) return undefined;
  const needed = mask - Math.ceil(Math.log2(nodes));
  const holds = capacity === 0 ? "holds no node" : `holds ${capacity} node${capacity === 1 ? "" : "s"}`;
  return (
    `the pod network ${podCIDR} (${where}) ${holds} at /${mask} per node (kube-controller-manager's default ` +
    `--node-cidr-mask-size), but the groups may grow to ${nodes} (masters ${groups.masters.count} + minions ` +
    `${groups.minions.max}); lower groups.minions.max to ${Math.max(capacity - groups.masters.count, 0)} or less, ` +
    `or bake the image with a /${needed} or larger podCIDR`
  );
}

let repositoryPodCIDR: string | undefined;

/**
 * The pod CIDR of the repository's image spec (image/kubebake.yaml): the one apply assumes for a cluster that
 * names a bare AMI (src/launch/aws/inputs.ts). Read once.
 */
export function repositoryImagePodCIDR(): { podCIDR: string; where: string } {
  repositoryPodCIDR ??= loadImageSpec(join(packageRoot(), "image", "kubebake.yaml")).spec.cluster.podCIDR;
  return { podCIDR: repositoryPodCIDR, where: "cluster.podCIDR of image/kubebake.yaml" };
}
