/** Everything apply needs besides the spec: the account, the AMI, and the image's own cluster settings. */
import { DescribeImagesCommand, DescribeKeyPairsCommand } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { invalidInput } from "../../errors";
import { podCapacityProblem } from "../../cluster/pods";
import { loadImageSpec } from "../../spec/load";
import { packageRoot } from "../../util/package-root";
import type { AwsClusterSpec as ClusterSpec } from "../../cluster/schema";
import { bakedCluster, readManifest } from "../manifest";
import { ifExists, type AwsClients } from "./clients";
import type { Context } from "./context";
import { IMAGE_ID_TAG, partitionOf, type Inputs } from "./desired";

/** The root device of kubebake's published images (src/publish/aws/publish.ts registers them so). */
export const DEFAULT_ROOT_DEVICE = "/dev/xvda";

export async function resolveInputs(
  clients: AwsClients,
  spec: ClusterSpec,
  specPath: string,
): Promise<Inputs> {
  const base = dirname(resolve(specPath));
  const near = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const caller = await clients.sts.send(new GetCallerIdentityCommand({}));
  const account = caller.Account!;
  const partition = partitionOf(caller.Arn!);

  let ami = spec.image.ami;
  let rootDevice: string | undefined;
  // The cluster settings the nodes carry: from image.spec, else from the baked tree beside the manifest,
  // else (an AMI id alone) from the repository's image spec.
  let cluster = spec.image.spec ? loadImageSpec(near(spec.image.spec)).spec.cluster : undefined;
  if (spec.image.manifest) {
    const manifestPath = near(spec.image.manifest);
    const manifest = readManifest(manifestPath);
    const images = await clients.ec2.send(
      new DescribeImagesCommand({
        Owners: ["self"],
        Filters: [{ Name: `tag:${IMAGE_ID_TAG}`, Values: [manifest.imageId] }],
      }),
    );
    const available = (images.Images ?? []).filter((i) => (i.State ?? "available") === "available");
    if (available.length !== 1) {
      throw invalidInput(
        `image.manifest: expected one AMI tagged ${IMAGE_ID_TAG}=${manifest.imageId} in ${spec.region}, found ${available.length}`,
      );
    }
    ami = available[0]!.ImageId!;
    rootDevice = available[0]!.RootDeviceName;
    cluster ??= bakedCluster(manifestPath, manifest);
  }
  if (spec.image.manifest && !spec.image.spec) {
    // The bake's own pod network: every node the groups may grow to needs a range of it.
    const problem = podCapacityProblem(
      spec.groups,
      cluster!.podCIDR,
      `the podCIDR the image of ${spec.image.manifest} was baked with`,
    );
    if (problem) throw invalidInput(`${specPath}: groups.minions.max: ${problem}`);
  }
  cluster ??= loadImageSpec(join(packageRoot(), "image", "kubebake.yaml")).spec.cluster;
  // The encrypted root volume must name the AMI's own root device, or the instance gets a second volume
  // and an unencrypted root. An AMI this account cannot see launches nothing either way: kubebake's own.
  rootDevice ??=
    (await ifExists(() => clients.ec2.send(new DescribeImagesCommand({ ImageIds: [ami!] }))))?.Images?.[0]
      ?.RootDeviceName ?? DEFAULT_ROOT_DEVICE;
  return {
    spec,
    account,
    partition,
    rootDevice,
    ami: ami!,
    discoveryDomain: cluster.discoveryDomain,
  };
}

/** A key pair the region lacks would only show as failed launches in the groups' activity: say it now. */
export async function checkSshKey(ctx: Pick<Context, "clients" | "inputs">): Promise<void> {
  const { sshKey, region } = ctx.inputs.spec;
  if (!sshKey) return;
  const found = await ifExists(() =>
    ctx.clients.ec2.send(new DescribeKeyPairsCommand({ KeyNames: [sshKey] })),
  );
  if (!found?.KeyPairs?.length)
    throw invalidInput(`sshKey: key pair ${JSON.stringify(sshKey)} does not exist in ${region}`);
}
