/** Everything apply needs besides the spec: the account, the AMI, and the image's own cluster settings. */
import { DescribeImagesCommand, DescribeKeyPairsCommand } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { invalidInput } from "../../errors";
import type { AwsClusterSpec as ClusterSpec } from "../../cluster/schema";
import { bakeOf, imageClusterSettings } from "../manifest";
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
  // Local first: the image spec or the bake's tree, before any AWS call.
  const baked = spec.image.manifest ? bakeOf(specPath, spec.image.manifest) : undefined;
  const cluster = imageClusterSettings(spec, specPath, baked);
  const caller = await clients.sts.send(new GetCallerIdentityCommand({}));
  const account = caller.Account!;
  const partition = partitionOf(caller.Arn!);

  let ami = spec.image.ami;
  let rootDevice: string | undefined;
  if (baked) {
    const { manifest } = baked;
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
  }
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
