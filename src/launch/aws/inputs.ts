/** Everything apply needs besides the spec: the account, the AMI, and the image's own cluster settings. */
import { DescribeImagesCommand, DescribeKeyPairsCommand } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { invalidInput } from "../../errors";
import { podCapacityProblem } from "../../cluster/pods";
import { loadImageSpec } from "../../spec/load";
import { imageSpecSchema, type ImageSpec } from "../../spec/schema";
import { packageRoot } from "../../util/package-root";
import type { ClusterSpec } from "../../cluster/schema";
import { ifExists, type AwsClients } from "./clients";
import type { Context } from "./context";
import { IMAGE_ID_TAG, partitionOf, type Inputs } from "./desired";

/** The root device of kubebake's published images (src/publish/aws/publish.ts registers them so). */
export const DEFAULT_ROOT_DEVICE = "/dev/xvda";

interface ManifestRef {
  imageId: string;
  rootfs?: string;
}

/** The image spec a bake wrote into its tree (/etc/kubebake/image-spec.json), as the nodes have it. */
function bakedCluster(path: string): ImageSpec["cluster"] {
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
    cluster ??= bakedCluster(
      join(dirname(manifestPath), manifest.rootfs ?? "rootfs", "etc/kubebake/image-spec.json"),
    );
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
