/**
 * `--target aws|gce|azure`: each cloud's preparer checks the cloud before the bake (options, credentials)
 * and returns the publish step run after it; the step shares the Ctrl-C handling and the record of
 * `builds[]` in OUT (a thin shell over src/publish).
 */
import { join, resolve } from "node:path";
import type { Manifest, PublishTarget } from "../bake/manifest";
import { ExitCode, KubebakeError, invalidInput } from "../errors";
import type { PublishedImage, PublishRequest } from "../publish/types";
import type { AwsPublishArgs } from "./publish-aws";
import type { AzurePublishArgs } from "./publish-azure";
import type { GcePublishArgs } from "./publish-gce";
import { onInterrupt } from "../util/cleanup";
import type { Progress } from "../util/progress";

/** A cloud target and its options. */
export type PublishArgs =
  | ({ target: "aws" } & AwsPublishArgs)
  | ({ target: "gce" } & GcePublishArgs)
  | ({ target: "azure" } & AzurePublishArgs);

/** Everything checked before the bake (the target cloud's preparer); returns the publish step to run after it. */
export async function preparePublish(args: PublishArgs): Promise<PublishStep> {
  // Loaded on demand: each cloud's SDK only when its target is asked for.
  switch (args.target) {
    case "aws":
      return (await import("./publish-aws")).prepareAws(args);
    case "gce":
      return (await import("./publish-gce")).prepareGce(args);
    case "azure":
      return (await import("./publish-azure")).prepareAzure(args);
  }
}

/** The publish run after the bake: OUT/manifest.json gains the images, which are returned. */
export type PublishStep = (out: string, manifest: Manifest, progress: Progress) => Promise<Manifest>;

/** The command-line options of each cloud: one given with another --target is refused (exit 2). */
export const CLOUD_OPTIONS: Record<PublishTarget, readonly string[]> = {
  aws: ["region", "regions", "share-with", "encrypted", "previous-manifest"],
  gce: ["project", "bucket", "family"],
  azure: ["subscription", "resource-group", "location", "storage-account", "container", "keep-blob"],
};

/** The first cloud option given that does not belong to `target`, as one line, or undefined. */
export function misplacedOption(target: string, given: (option: string) => boolean): string | undefined {
  for (const [cloud, options] of Object.entries(CLOUD_OPTIONS)) {
    if (cloud === target) continue;
    const option = options.find(given);
    if (option) return `--${option} applies to --target ${cloud} only`;
  }
  return undefined;
}

/** A list option given as `--x a,b` or `--x a --x b`. */
export const listOf = (values: unknown): string[] =>
  ([] as unknown[])
    .concat(values ?? [])
    .flatMap((v) => String(v).split(","))
    .map((v) => v.trim())
    .filter(Boolean);

/** The value of a required option, from the command line or the environment; exit 2 naming both if absent. */
export function required(value: string | undefined, option: string, target: string, env: string[] = []) {
  for (const name of env) value ||= process.env[name];
  if (value) return value;
  const from = env.length > 0 ? ` (or ${env.join(" or ")})` : "";
  throw invalidInput(`--target ${target} needs --${option}${from}\nRun 'bake-image --help' for usage.`);
}

/**
 * The step every cloud shares: publishes OUT's raw disk with `publish`, stopping it on Ctrl-C and waiting
 * while it removes what it made, then records the images in OUT/manifest.json.
 */
export function publishStep(
  publish: (request: PublishRequest, out: string) => Promise<PublishedImage[]>,
): PublishStep {
  return async (out, manifest, progress) => {
    const { recordBuilds } = await import("../publish/record");
    if (!manifest.disk) throw new KubebakeError("the bake made no disk to publish", ExitCode.internal);
    const controller = new AbortController();
    const disk = join(resolve(out), manifest.disk.file);
    const run = publish({ disk, manifest, progress, signal: controller.signal }, out);
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
