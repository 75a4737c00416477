/**
 * `--target aws`: the raw disk into an EBS snapshot (only the blocks that differ from the newest earlier AMI
 * of the same image name), registered as a UEFI, ENA, gp3 AMI tagged with the image id; copied to more
 * regions and shared with accounts. An image id that already has an AMI is not uploaded again. A failure or
 * an interrupt deletes what this run created, so nothing half-made is left and a rerun starts clean.
 */
import {
  CopyImageCommand,
  CreateTagsCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  ModifyImageAttributeCommand,
  RegisterImageCommand,
  type EC2Client,
} from "@aws-sdk/client-ec2";
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { ExitCode, KubebakeError } from "../../errors";
import { usableParent, type BlockDigests } from "../blocks";
import type { PublishedImage, PublishRequest } from "../types";
import { asCloudError, type PublishClients } from "./clients";
import {
  DISK_SHA256_TAG,
  IMAGE_ID_TAG,
  IMAGE_NAME_TAG,
  deleteSnapshot,
  deregisterImage,
  imageById,
  leftoverSnapshots,
  newestOfName,
  rootSnapshot,
  tagsOf,
  tagValue,
  waitFor,
  type Waiting,
} from "./images";
import { preflightAws, type AwsTargets } from "./preflight";
import { uploadSnapshot, type UploadStats } from "./upload";

export const AWS_BUILDER_TYPE = "kubebake-aws-ebs";
const ARCHITECTURES = { amd64: "x86_64", arm64: "arm64" } as const;
const ROOT_DEVICE = "/dev/xvda";

export interface AwsPublishOptions extends AwsTargets {
  clients: PublishClients;
  /** Block digests of earlier disks (recorded by earlier publishes): the parent's are looked up here. */
  knownDigests?: BlockDigests[];
  /** Told the digests of the uploaded disk, to record for the next publish. */
  recordDigests?: (digests: BlockDigests) => Promise<void> | void;
  /** Explicit snapshot encryption; undefined: the account's default (and the parent's). */
  encrypted?: boolean;
  concurrency?: number;
  pollMs?: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export async function publishAws(
  request: PublishRequest,
  options: AwsPublishOptions,
): Promise<PublishedImage[]> {
  const { clients } = options;
  try {
    await preflightAws(clients, options);
    return await publish(request, options);
  } catch (error) {
    throw asCloudError(clients.calls, error);
  }
}

async function publish(request: PublishRequest, options: AwsPublishOptions): Promise<PublishedImage[]> {
  const { manifest, progress, signal } = request;
  const { clients } = options;
  if (!manifest.disk) throw new KubebakeError("the bake has no raw disk to publish", ExitCode.invalidInput);
  const wait: Waiting = {
    pollMs: options.pollMs ?? 5000,
    timeoutMs: options.timeoutMs ?? 60 * 60_000,
    sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    signal,
  };
  const home = clients.inRegion(options.region);
  let ami = await imageById(home.ec2, manifest.imageId);
  let snapshotId: string | undefined;
  if (ami) {
    progress.step(
      `${options.region}: ${ami.ImageId} already holds image ${manifest.imageId}; nothing to upload`,
    );
  } else {
    for (const leftover of await leftoverSnapshots(home.ec2, manifest.imageId)) {
      progress.info(`deleting ${leftover}, left by an interrupted publish`);
      await deleteSnapshot(home.ec2, leftover);
    }
    const made = await createImage(request, options, wait);
    ami = made.image;
    snapshotId = made.snapshotId;
  }
  const amis = new Map([[options.region, ami.ImageId!]]);
  for (const region of options.regions.filter((r) => r !== options.region)) {
    amis.set(region, await copyTo(region, ami.ImageId!, request, options, wait));
  }
  for (const [region, imageId] of amis) {
    if (options.shareWith.length === 0) continue;
    await clients.inRegion(region).ec2.send(
      new ModifyImageAttributeCommand({
        ImageId: imageId,
        LaunchPermission: { Add: options.shareWith.map((UserId) => ({ UserId })) },
      }),
    );
    progress.info(`${region}: ${imageId} shared with ${options.shareWith.join(", ")}`);
  }
  const buildTime = Math.floor(Date.now() / 1000);
  return [...amis].map(([region, imageId]) => ({
    builder_type: AWS_BUILDER_TYPE,
    artifact_id: `${region}:${imageId}`,
    build_time: buildTime,
    custom_data: {
      imageId: manifest.imageId,
      diskSha256: manifest.disk!.sha256,
      region,
      ...(snapshotId && region === options.region ? { snapshotId } : {}),
    },
  }));
}

const amiName = (request: PublishRequest) =>
  `${request.manifest.name}-${request.manifest.imageId.replace(/^sha256[:-]/, "").slice(0, 16)}`;

function tagsFor(request: PublishRequest): Record<string, string> {
  const { manifest } = request;
  return {
    Name: amiName(request),
    [IMAGE_ID_TAG]: manifest.imageId,
    [IMAGE_NAME_TAG]: manifest.name,
    [DISK_SHA256_TAG]: manifest.disk!.sha256,
  };
}

/** Upload, wait, register; on any failure (an interrupt too) delete what was made. */
async function createImage(request: PublishRequest, options: AwsPublishOptions, wait: Waiting) {
  const { manifest, progress, signal } = request;
  const home = options.clients.inRegion(options.region);
  const architecture = ARCHITECTURES[manifest.arch];
  const { size } = await stat(request.disk);
  const parent = await findParent(home.ec2, manifest.name, architecture, size, options.knownDigests ?? []);
  progress.step(
    parent
      ? `${options.region}: uploading the blocks that differ from ${parent.snapshotId}`
      : `${options.region}: uploading ${request.disk} into a new snapshot`,
  );
  let snapshotId: string | undefined;
  let imageId: string | undefined;
  try {
    const uploaded = await uploadSnapshot({
      ebs: home.ebs,
      disk: request.disk,
      diskSha256: manifest.disk!.sha256,
      tags: tagsFor(request),
      description: `kubebake image ${manifest.imageId}`,
      parent,
      encrypted: options.encrypted,
      concurrency: options.concurrency,
      signal,
      onStarted: (id) => (snapshotId = id),
      onBlock: uploadProgress(request),
    });
    const { stats } = uploaded;
    progress.info(
      `${uploaded.snapshotId}: ${stats.written} block(s) written, ${stats.skipped} skipped, waiting until it completes`,
    );
    await waitFor(`snapshot ${uploaded.snapshotId}`, wait, async () => {
      const answer = await home.ec2.send(
        new DescribeSnapshotsCommand({ SnapshotIds: [uploaded.snapshotId] }),
      );
      const state = answer.Snapshots?.[0]?.State;
      if (state === "error")
        throw new KubebakeError(`snapshot ${uploaded.snapshotId} failed`, ExitCode.cloudFailed);
      return state === "completed";
    });
    const tags = tagsOf(tagsFor(request));
    const registered = await home.ec2.send(
      new RegisterImageCommand({
        Name: amiName(request),
        Description: `kubebake image ${manifest.imageId}`,
        Architecture: architecture,
        BootMode: "uefi",
        EnaSupport: true,
        VirtualizationType: "hvm",
        RootDeviceName: ROOT_DEVICE,
        BlockDeviceMappings: [
          {
            DeviceName: ROOT_DEVICE,
            Ebs: {
              SnapshotId: uploaded.snapshotId,
              VolumeType: "gp3",
              VolumeSize: uploaded.volumeSizeGiB,
              DeleteOnTermination: true,
            },
          },
        ],
        TagSpecifications: [{ ResourceType: "image", Tags: tags }],
      }),
    );
    imageId = registered.ImageId!;
    // Given at registration already; again for emulators that ignore TagSpecifications (CreateTags is idempotent).
    await home.ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: tags }));
    await waitUntilAvailable(home.ec2, imageId, wait);
    await options.recordDigests?.(uploaded.digests);
    progress.step(`${options.region}: registered ${imageId} (${amiName(request)})`);
    const image = (await home.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0]!;
    return { image, snapshotId: uploaded.snapshotId };
  } catch (error) {
    await undo(home.ec2, { imageId, snapshotId }, progress);
    throw error;
  }
}

/** Removes a half-made AMI and its snapshot; a failure here is reported, the original error kept. */
async function undo(
  ec2: EC2Client,
  made: { imageId?: string; snapshotId?: string },
  progress: PublishRequest["progress"],
): Promise<void> {
  try {
    if (made.imageId) await deregisterImage(ec2, made.imageId);
    if (made.snapshotId) await deleteSnapshot(ec2, made.snapshotId);
  } catch (error) {
    progress.info(
      `could not delete ${made.snapshotId ?? made.imageId} (${(error as Error).message}); the next publish deletes it`,
    );
  }
}

async function findParent(
  ec2: EC2Client,
  name: string,
  architecture: string,
  size: number,
  known: BlockDigests[],
) {
  const earlier = await newestOfName(ec2, name, architecture);
  if (!earlier) return undefined;
  const diskSha256 = tagValue(earlier.Tags, DISK_SHA256_TAG);
  const digests = known.find((d) => d.diskSha256 === diskSha256);
  if (!digests) return undefined; // its blocks are not known here: a full upload is still correct
  const snapshot = await rootSnapshot(ec2, earlier);
  if (!snapshot) return undefined;
  const parent = usableParent(size, { volumeSizeGiB: snapshot.volumeSizeGiB, digests }, diskSha256);
  return parent && { ...parent, snapshotId: snapshot.snapshotId };
}

async function waitUntilAvailable(ec2: EC2Client, imageId: string, wait: Waiting): Promise<void> {
  await waitFor(`AMI ${imageId}`, wait, async () => {
    const state = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0]?.State;
    if (state === "failed" || state === "error" || state === "invalid")
      throw new KubebakeError(`AMI ${imageId} is ${state}`, ExitCode.cloudFailed);
    return (state ?? "available") === "available";
  });
}

/** The AMI in another region: an existing copy is kept; a new copy is tagged and waited for, or removed. */
async function copyTo(
  region: string,
  sourceImageId: string,
  request: PublishRequest,
  options: AwsPublishOptions,
  wait: Waiting,
): Promise<string> {
  const { ec2 } = options.clients.inRegion(region);
  const existing = await imageById(ec2, request.manifest.imageId);
  if (existing) {
    await waitUntilAvailable(ec2, existing.ImageId!, wait);
    request.progress.info(`${region}: ${existing.ImageId} already holds the image`);
    return existing.ImageId!;
  }
  const tags = tagsOf(tagsFor(request));
  const copied = await ec2.send(
    new CopyImageCommand({
      SourceRegion: options.region,
      SourceImageId: sourceImageId,
      Name: amiName(request),
      Description: `kubebake image ${request.manifest.imageId}`,
      CopyImageTags: true,
      TagSpecifications: [{ ResourceType: "image", Tags: tags }],
      // The same copy for a retried call of the same source.
      ClientToken: createHash("sha256").update(`${sourceImageId}:${region}`).digest("hex").slice(0, 64),
      Encrypted: options.encrypted,
    }),
  );
  const imageId = copied.ImageId!;
  try {
    await ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: tags }));
    await waitUntilAvailable(ec2, imageId, wait);
  } catch (error) {
    await undo(ec2, { imageId }, request.progress);
    throw error;
  }
  request.progress.step(`${region}: copied to ${imageId}`);
  return imageId;
}

/** One progress line every few seconds: bytes, rate, blocks skipped. */
function uploadProgress(request: PublishRequest): (stats: UploadStats) => void {
  const started = Date.now();
  let last = started;
  const mib = (bytes: number) => (bytes / 1024 ** 2).toFixed(0);
  return (stats) => {
    const now = Date.now();
    if (now - last < 2000 && stats.done < stats.blocks) return;
    last = now;
    const rate = stats.bytesWritten / 1024 ** 2 / Math.max((now - started) / 1000, 0.001);
    request.progress.info(
      `${stats.done}/${stats.blocks} blocks, ${mib(stats.bytesWritten)} MiB written (${rate.toFixed(1)} MiB/s), ${stats.skipped} skipped`,
    );
  };
}
