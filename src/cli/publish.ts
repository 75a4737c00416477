/**
 * `--target aws`: checks the cloud before the bake (credentials, regions, permission), then publishes the
 * baked raw disk and records the result in OUT (a thin shell over src/publish).
 */
import { join, resolve } from "node:path";
import type { Manifest, PublishTarget } from "../bake/manifest";
import { ExitCode, KubebakeError } from "../errors";
import type { PublishedImage } from "../publish/types";
import { onInterrupt } from "../util/cleanup";
import type { Progress } from "../util/progress";

export interface PublishArgs {
  target: PublishTarget;
  region?: string;
  regions: string[];
  shareWith: string[];
  previousManifest?: string;
  /** Snapshot encryption; undefined: the account's default. */
  encrypted?: boolean;
}

/** A list option given as `--x a,b` or `--x a --x b`. */
export const listOf = (values: unknown): string[] =>
  ([] as unknown[])
    .concat(values ?? [])
    .flatMap((v) => String(v).split(","))
    .map((v) => v.trim())
    .filter(Boolean);

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

/** Everything checked before the bake; returns the publish step to run after it. */
export async function preparePublish(args: PublishArgs) {
  const { publishClients, preflightAws, publishAws } = await import("../publish/aws");
  const clients = publishClients({ endpoint: process.env.AWS_ENDPOINT_URL || undefined });
  const targets = { region: await awsRegion(args.region), regions: args.regions, shareWith: args.shareWith };
  await preflightAws(clients, targets);

  return async (out: string, manifest: Manifest, progress: Progress): Promise<Manifest> => {
    const { knownDigests, recordBuilds, recordDigests } = await import("../publish/record");
    if (!manifest.disk) throw new KubebakeError("the bake made no disk to publish", ExitCode.internal);
    const controller = new AbortController();
    const run = publishAws(
      { disk: join(resolve(out), manifest.disk.file), manifest, progress, signal: controller.signal },
      {
        clients,
        ...targets,
        knownDigests: await knownDigests(out, args.previousManifest),
        recordDigests: (digests) => recordDigests(out, digests),
        encrypted: args.encrypted,
        pollMs: Number(process.env.KUBEBAKE_POLL_MS) || undefined,
      },
    );
    // Ctrl-C: stop the upload and wait while it deletes its snapshot, then exit.
    const forget = onInterrupt(async () => {
      controller.abort();
      await run.catch(() => undefined);
    });
    let images: PublishedImage[];
    try {
      images = await run;
    } finally {
      forget();
    }
    return recordBuilds(out, images);
  };
}
