/** Everything apply needs besides the spec: the account, the AMI, and the image's own cluster settings. */
import { DescribeImagesCommand } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { invalidInput } from "../../errors";
import { loadImageSpec } from "../../spec/load";
import { packageRoot } from "../../util/package-root";
import type { ClusterSpec } from "../../cluster/schema";
import type { AwsClients } from "./clients";
import { IMAGE_ID_TAG, type Inputs } from "./desired";

interface ManifestRef {
  imageId: string;
  spec?: { path: string; sha256: string };
}

export async function resolveInputs(
  clients: AwsClients,
  spec: ClusterSpec,
  specPath: string,
): Promise<Inputs> {
  const base = dirname(resolve(specPath));
  const near = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const account = (await clients.sts.send(new GetCallerIdentityCommand({}))).Account!;

  let ami = spec.image.ami;
  let imageSpecPath = spec.image.spec ? near(spec.image.spec) : undefined;
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
    if (!imageSpecPath && manifest.spec?.path && existsSync(manifest.spec.path)) {
      const digest = createHash("sha256").update(readFileSync(manifest.spec.path)).digest("hex");
      if (digest === manifest.spec.sha256) imageSpecPath = manifest.spec.path;
    }
  }
  const image = loadImageSpec(imageSpecPath ?? join(packageRoot(), "image", "kubebake.yaml")).spec;
  return {
    spec,
    account,
    ami: ami!,
    discoveryDomain: image.cluster.discoveryDomain,
    clusterDomain: image.cluster.clusterDomain,
    serviceCIDR: image.cluster.serviceCIDR,
  };
}
