/** `--target aws`: credentials, regions and permission checked before the bake; the EBS upload after it. */
import { ExitCode, KubebakeError } from "../errors";
import { publishStep, type PublishStep } from "./publish";

export interface AwsPublishArgs {
  region?: string;
  regions: string[];
  shareWith: string[];
  previousManifest?: string;
  /** Snapshot encryption; undefined: the account's default. */
  encrypted?: boolean;
}

async function awsRegion(explicit?: string): Promise<string> {
  if (explicit) return explicit;
  // The SDK's own resolution: AWS_REGION, then the profile's region in ~/.aws/config.
  const { STSClient } = await import("@aws-sdk/client-sts");
  try {
    return await new STSClient({}).config.region();
  } catch {
    throw new KubebakeError(
      "no AWS region: pass --region, set AWS_REGION, or set a region in the AWS profile",
      ExitCode.cloudFailed,
    );
  }
}

export async function prepareAws(args: AwsPublishArgs): Promise<PublishStep> {
  const { publishClients, preflightAws, publishAws } = await import("../publish/aws");
  const { knownDigests, previousDigests, recordDigests } = await import("../publish/record");
  const clients = publishClients({ endpoint: process.env.AWS_ENDPOINT_URL || undefined });
  const targets = { region: await awsRegion(args.region), regions: args.regions, shareWith: args.shareWith };
  await preflightAws(clients, targets);
  const previous = args.previousManifest ? await previousDigests(args.previousManifest) : [];

  return publishStep(async (request, out) =>
    publishAws(request, {
      clients,
      ...targets,
      knownDigests: await knownDigests(out, previous),
      recordDigests: (digests) => recordDigests(out, digests),
      encrypted: args.encrypted,
      pollMs: Number(process.env.KUBEBAKE_POLL_MS) || undefined,
    }),
  );
}
