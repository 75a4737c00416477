/** AMIs and snapshots of kubebake images, found by their tags (the source of truth, not local files). */
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Image,
  type Snapshot,
  type Tag,
} from "@aws-sdk/client-ec2";
import { ExitCode, KubebakeError } from "../../errors";
import { IMAGE_ID_TAG } from "../../launch/aws/desired";

export { IMAGE_ID_TAG };
/** The image spec's name: AMIs of one name are versions of one image, and the newest is the next parent. */
export const IMAGE_NAME_TAG = "kubebake:image-name";
/** The SHA-256 of the raw disk a snapshot (and its AMI) holds: which recorded block digests describe it. */
export const DISK_SHA256_TAG = "kubebake:disk-sha256";

export const tagsOf = (tags: Record<string, string>): Tag[] =>
  Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
export const tagValue = (tags: Tag[] | undefined, key: string) => tags?.find((t) => t.Key === key)?.Value;

const USABLE = new Set(["available", "pending"]);

/** Our AMI of this image id in the client's region (available or still pending), if any. */
export async function imageById(ec2: EC2Client, imageId: string): Promise<Image | undefined> {
  const answer = await ec2.send(
    new DescribeImagesCommand({
      Owners: ["self"],
      Filters: [{ Name: `tag:${IMAGE_ID_TAG}`, Values: [imageId] }],
    }),
  );
  return (answer.Images ?? []).find((i) => USABLE.has(i.State ?? "available"));
}

/** The newest available AMI of the image name and architecture: the candidate parent of a new snapshot. */
export async function newestOfName(
  ec2: EC2Client,
  name: string,
  architecture: string,
): Promise<Image | undefined> {
  const answer = await ec2.send(
    new DescribeImagesCommand({
      Owners: ["self"],
      Filters: [{ Name: `tag:${IMAGE_NAME_TAG}`, Values: [name] }],
    }),
  );
  // The architecture is compared here, not filtered by EC2: an emulator may not record it.
  return (answer.Images ?? [])
    .filter(
      (i) => (i.State ?? "available") === "available" && (i.Architecture ?? architecture) === architecture,
    )
    .sort((a, b) => (b.CreationDate ?? "").localeCompare(a.CreationDate ?? ""))[0];
}

/**
 * The snapshot behind an AMI's root volume, if it is ours and holds the AMI's image: from the root block
 * device mapping, else (an emulator that invents mappings) the completed snapshot tagged with the image id.
 */
export async function rootSnapshot(
  ec2: EC2Client,
  image: Image,
): Promise<{ snapshotId: string; volumeSizeGiB: number } | undefined> {
  const imageId = tagValue(image.Tags, IMAGE_ID_TAG);
  if (!imageId) return undefined;
  const root = image.BlockDeviceMappings?.find((m) => m.DeviceName === image.RootDeviceName)?.Ebs?.SnapshotId;
  const ours = (snapshots: Snapshot[] | undefined) =>
    (snapshots ?? []).find((s) => s.State === "completed" && tagValue(s.Tags, IMAGE_ID_TAG) === imageId);
  let snapshot = root
    ? ours(
        (await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ["self"], SnapshotIds: [root] }))).Snapshots,
      )
    : undefined;
  snapshot ??= ours(
    (
      await ec2.send(
        new DescribeSnapshotsCommand({
          OwnerIds: ["self"],
          Filters: [{ Name: `tag:${IMAGE_ID_TAG}`, Values: [imageId] }],
        }),
      )
    ).Snapshots,
  );
  return snapshot?.SnapshotId && snapshot.VolumeSize
    ? { snapshotId: snapshot.SnapshotId, volumeSizeGiB: snapshot.VolumeSize }
    : undefined;
}

/**
 * Snapshots of this image id that no AMI uses: what an interrupted earlier publish left (a process killed
 * before it could clean up). Only called when no AMI of the image id exists, so none of them is in use.
 */
export async function leftoverSnapshots(ec2: EC2Client, imageId: string): Promise<string[]> {
  const answer = await ec2.send(
    new DescribeSnapshotsCommand({
      OwnerIds: ["self"],
      Filters: [{ Name: `tag:${IMAGE_ID_TAG}`, Values: [imageId] }],
    }),
  );
  return (answer.Snapshots ?? []).map((s) => s.SnapshotId!).filter(Boolean);
}

export const deleteSnapshot = (ec2: EC2Client, SnapshotId: string) =>
  ec2.send(new DeleteSnapshotCommand({ SnapshotId }));
export const deregisterImage = (ec2: EC2Client, ImageId: string) =>
  ec2.send(new DeregisterImageCommand({ ImageId }));

export interface Waiting {
  pollMs: number;
  timeoutMs: number;
  sleep: (ms: number) => Promise<void>;
  signal?: AbortSignal;
}

/** Polls until `done` says yes (true) or failed (throws); gives up at the deadline. */
export async function waitFor(what: string, wait: Waiting, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + wait.timeoutMs;
  while (!(await done())) {
    wait.signal?.throwIfAborted();
    if (Date.now() > deadline) throw new KubebakeError(`timed out waiting for ${what}`, ExitCode.cloudFailed);
    await wait.sleep(wait.pollMs);
  }
}
