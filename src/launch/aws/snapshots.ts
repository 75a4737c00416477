/**
 * The cluster's etcd snapshot bucket: private, encrypted, versioned, reachable only over TLS, snapshots
 * expiring after `etcd.snapshotRetentionDays`. S3 names are global across accounts, so every call after
 * creation names this account as the expected owner, and only a bucket carrying the cluster id is
 * configured or deleted; another of its name is refused (exit 8), and left by destroy.
 */
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  ListObjectVersionsCommand,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
  PutPublicAccessBlockCommand,
  type BucketLocationConstraint,
  type LifecycleRule,
  type PublicAccessBlockConfiguration,
} from "@aws-sdk/client-s3";
import { isDeepStrictEqual } from "node:util";
import { ExitCode, KubebakeError } from "../../errors";
import type { ChangeRecorder } from "../changes";
import { awsErrorCode, type AwsClients } from "./clients";
import type { BaseContext, Context } from "./context";
import {
  asTagList,
  BLOCKED_ENCRYPTION,
  OWNER_TAG,
  PUBLIC_ACCESS_BLOCK,
  SNAPSHOT_ENCRYPTION,
  snapshotBucket,
  snapshotBucketPolicy,
  snapshotLifecycleRules,
  tagsFor,
} from "./desired";
import { assertOwned, ownedBy, ownerOf } from "./owner";

const KIND = "s3-bucket";

/** A bucket as read with this account as its expected owner. */
type Observed =
  | { state: "absent" }
  /** HeadBucket answered 403: another account's bucket, or one these credentials may not read. */
  | { state: "unreadable" }
  | { state: "found"; tags: Record<string, string> };

/** The bucket and its expected owner, the first fields of every call on an existing bucket. */
const owned = (bucket: string, account: string) => ({ Bucket: bucket, ExpectedBucketOwner: account });

/** A read whose answer is `undefined` when S3 says the bucket has no such configuration. */
async function unlessAbsent<T>(codes: string[], read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (codes.includes(awsErrorCode(error))) return undefined;
    throw error;
  }
}

const httpStatus = (error: unknown) =>
  (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;

async function observeBucket(clients: AwsClients, bucket: string, account: string): Promise<Observed> {
  try {
    // HeadBucket answers with a status only: 404 absent, 403 not this account's to read.
    await clients.s3.send(new HeadBucketCommand(owned(bucket, account)));
  } catch (error) {
    if (httpStatus(error) === 404) return { state: "absent" };
    if (httpStatus(error) === 403) return { state: "unreadable" };
    throw error;
  }
  // An untagged bucket answers NoSuchTagSet rather than an empty set.
  const tagging = await unlessAbsent(["NoSuchTagSet"], () =>
    clients.s3.send(new GetBucketTaggingCommand(owned(bucket, account))),
  );
  return {
    state: "found",
    tags: Object.fromEntries((tagging?.TagSet ?? []).map((t) => [t.Key ?? "", t.Value ?? ""])),
  };
}

function unreadable(bucket: string): KubebakeError {
  return new KubebakeError(
    `${KIND} ${bucket} exists but this account cannot read it (HeadBucket: 403): it belongs to another ` +
      "account, or these credentials lack s3:ListBucket on it. kubebake neither adopts nor deletes it; " +
      "if it is another account's, give this cluster another name.",
    ExitCode.unsafeState,
  );
}

/** Before anything is created: the bucket's global name is free or carries this cluster's id. */
export async function checkSnapshotBucket(ctx: BaseContext, clusterId: string | undefined): Promise<void> {
  const bucket = snapshotBucket(ctx.inputs);
  const found = await observeBucket(ctx.clients, bucket, ctx.inputs.account);
  if (found.state === "unreadable") throw unreadable(bucket);
  if (found.state === "found") assertOwned(KIND, bucket, found.tags, clusterId ?? "");
}

/** One setting of the bucket: read back in the shape it is written in, so the two compare. */
interface BucketSetting {
  /** What the plan says when it differs. */
  what: string;
  desired: unknown;
  /** The setting as the bucket has it; undefined when it has none. */
  read(): Promise<unknown>;
  write(): Promise<unknown>;
}

/** Only the fields kubebake sets: a rule read back carries others (and AWS may add more). */
const comparableRule = (rule: LifecycleRule) => ({
  ID: rule.ID,
  Status: rule.Status,
  Prefix: rule.Filter?.Prefix ?? rule.Prefix,
  ExpirationDays: rule.Expiration?.Days,
  NoncurrentDays: rule.NoncurrentVersionExpiration?.NoncurrentDays,
  AbortMultipartDays: rule.AbortIncompleteMultipartUpload?.DaysAfterInitiation,
  Transitions: (rule.Transitions?.length ?? 0) + (rule.NoncurrentVersionTransitions?.length ?? 0),
});

const comparableBlock = (block: PublicAccessBlockConfiguration | undefined) =>
  block && {
    BlockPublicAcls: block.BlockPublicAcls ?? false,
    IgnorePublicAcls: block.IgnorePublicAcls ?? false,
    BlockPublicPolicy: block.BlockPublicPolicy ?? false,
    RestrictPublicBuckets: block.RestrictPublicBuckets ?? false,
  };

function bucketSettings(ctx: Context, bucket: string): BucketSetting[] {
  const { s3 } = ctx.clients;
  const ref = owned(bucket, ctx.inputs.account);
  const rules = snapshotLifecycleRules(ctx.inputs.spec);
  const policy = snapshotBucketPolicy(bucket, ctx.inputs.partition);
  return [
    {
      what: `default encryption ${SNAPSHOT_ENCRYPTION.SSEAlgorithm}`,
      desired: [{ SSEAlgorithm: SNAPSHOT_ENCRYPTION.SSEAlgorithm }],
      read: async () =>
        (
          await unlessAbsent(["ServerSideEncryptionConfigurationNotFoundError"], () =>
            s3.send(new GetBucketEncryptionCommand(ref)),
          )
        )?.ServerSideEncryptionConfiguration?.Rules?.map((rule) => {
          const { SSEAlgorithm, KMSMasterKeyID } = rule.ApplyServerSideEncryptionByDefault ?? {};
          // Only SSE-C allowed outright (NONE) differs: moto drops the field, and a bucket may not show it.
          const blocked = rule.BlockedEncryptionTypes?.EncryptionType;
          const allowsSseC = blocked !== undefined && !blocked.includes("SSE-C");
          return {
            SSEAlgorithm,
            ...(KMSMasterKeyID ? { KMSMasterKeyID } : {}),
            ...(allowsSseC ? { blocked } : {}),
          };
        }),
      write: () =>
        s3.send(
          new PutBucketEncryptionCommand({
            ...ref,
            ServerSideEncryptionConfiguration: {
              Rules: [
                {
                  ApplyServerSideEncryptionByDefault: SNAPSHOT_ENCRYPTION,
                  BlockedEncryptionTypes: BLOCKED_ENCRYPTION,
                },
              ],
            },
          }),
        ),
    },
    {
      // A replaced or deleted snapshot stays a day as a noncurrent version (the lifecycle rule).
      what: "versioning Enabled",
      desired: "Enabled",
      read: async () => (await s3.send(new GetBucketVersioningCommand(ref))).Status,
      write: () =>
        s3.send(new PutBucketVersioningCommand({ ...ref, VersioningConfiguration: { Status: "Enabled" } })),
    },
    {
      what: "public access block",
      desired: comparableBlock(PUBLIC_ACCESS_BLOCK),
      read: async () =>
        comparableBlock(
          (
            await unlessAbsent(["NoSuchPublicAccessBlockConfiguration"], () =>
              s3.send(new GetPublicAccessBlockCommand(ref)),
            )
          )?.PublicAccessBlockConfiguration,
        ),
      write: () =>
        s3.send(
          new PutPublicAccessBlockCommand({ ...ref, PublicAccessBlockConfiguration: PUBLIC_ACCESS_BLOCK }),
        ),
    },
    {
      what: "bucket policy (TLS only)",
      desired: policy,
      read: async () => {
        const answer = await unlessAbsent(["NoSuchBucketPolicy"], () =>
          s3.send(new GetBucketPolicyCommand(ref)),
        );
        return answer?.Policy ? JSON.parse(answer.Policy) : undefined;
      },
      write: () => s3.send(new PutBucketPolicyCommand({ ...ref, Policy: JSON.stringify(policy) })),
    },
    {
      what: `lifecycle (snapshots expire after ${ctx.inputs.spec.etcd.snapshotRetentionDays} days)`,
      desired: rules.map(comparableRule),
      read: async () =>
        (
          await unlessAbsent(["NoSuchLifecycleConfiguration"], () =>
            s3.send(new GetBucketLifecycleConfigurationCommand(ref)),
          )
        )?.Rules?.map(comparableRule),
      write: () =>
        s3.send(
          new PutBucketLifecycleConfigurationCommand({ ...ref, LifecycleConfiguration: { Rules: rules } }),
        ),
    },
  ];
}

/**
 * Ensures the bucket with every setting; an existing one of ours gets only the settings that differ.
 * Tagged at creation (CreateBucketConfiguration.Tags), so no bucket of ours is ever without its owner tag.
 */
export async function ensureSnapshotBucket(ctx: Context): Promise<void> {
  const { spec, account } = ctx.inputs;
  const bucket = snapshotBucket(ctx.inputs);
  const settings = bucketSettings(ctx, bucket);
  const tags = tagsFor(spec, "snapshots", ctx.clusterId);
  const found = await observeBucket(ctx.clients, bucket, account);
  if (found.state === "unreadable") throw unreadable(bucket);
  if (found.state === "absent") {
    const days = spec.etcd.snapshotRetentionDays;
    await ctx.rec.make(
      {
        action: "create",
        kind: KIND,
        name: bucket,
        detail: `etcd snapshots kept ${days} days; versioned, ${SNAPSHOT_ENCRYPTION.SSEAlgorithm}, no public access, TLS only`,
      },
      async () => {
        await ctx.clients.s3.send(
          new CreateBucketCommand({
            Bucket: bucket,
            ObjectOwnership: "BucketOwnerEnforced",
            CreateBucketConfiguration: {
              // us-east-1 is S3's default location, which takes no constraint.
              ...(spec.region === "us-east-1"
                ? {}
                : { LocationConstraint: spec.region as BucketLocationConstraint }),
              Tags: asTagList(tags),
            },
          }),
        );
        for (const setting of settings) await setting.write();
      },
      undefined,
    );
    return;
  }
  assertOwned(KIND, bucket, found.tags, ctx.clusterId);
  const stale = Object.entries(tags).filter(([key, value]) => found.tags[key] !== value);
  if (stale.length > 0) {
    // PutBucketTagging replaces the whole set: tags added by others are kept (aws:* cannot be written).
    const kept = Object.fromEntries(Object.entries(found.tags).filter(([key]) => !key.startsWith("aws:")));
    await ctx.rec.make(
      { action: "update", kind: KIND, name: bucket, detail: `tags ${stale.map(([k]) => k).join(", ")}` },
      () =>
        ctx.clients.s3.send(
          new PutBucketTaggingCommand({
            ...owned(bucket, account),
            Tagging: { TagSet: asTagList({ ...kept, ...tags }) },
          }),
        ),
      undefined,
    );
  }
  for (const setting of settings) {
    if (isDeepStrictEqual(await setting.read(), setting.desired)) continue;
    await ctx.rec.make(
      { action: "update", kind: KIND, name: bucket, detail: setting.what },
      setting.write,
      undefined,
    );
  }
}

/** What a bucket holds: current objects, all versions (current ones included) and delete markers. */
async function contents(clients: AwsClients, bucket: string, account: string) {
  const count = { objects: 0, versions: 0, deleteMarkers: 0 };
  await eachVersionPage(clients, bucket, account, async (versions, markers) => {
    count.objects += versions.filter((v) => v.IsLatest).length;
    count.versions += versions.length;
    count.deleteMarkers += markers.length;
  });
  return count;
}

type Version = { Key?: string; VersionId?: string; IsLatest?: boolean };

async function eachVersionPage(
  clients: AwsClients,
  bucket: string,
  account: string,
  visit: (versions: Version[], deleteMarkers: Version[]) => Promise<void>,
): Promise<void> {
  let markers: { KeyMarker?: string; VersionIdMarker?: string } = {};
  for (;;) {
    const page = await clients.s3.send(
      new ListObjectVersionsCommand({ ...owned(bucket, account), ...markers }),
    );
    await visit(page.Versions ?? [], page.DeleteMarkers ?? []);
    if (!page.IsTruncated) return;
    markers = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
  }
}

/** Deletes every version and delete marker (a page at a time, so a rerun continues), then the bucket. */
async function deleteBucket(clients: AwsClients, bucket: string, account: string): Promise<void> {
  await eachVersionPage(clients, bucket, account, async (versions, deleteMarkers) => {
    const Objects = [...versions, ...deleteMarkers].map(({ Key, VersionId }) => ({ Key, VersionId }));
    if (Objects.length === 0) return;
    const answer = await clients.s3.send(
      new DeleteObjectsCommand({ ...owned(bucket, account), Delete: { Objects, Quiet: true } }),
    );
    const failed = answer.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0]!;
      throw new KubebakeError(
        `s3:DeleteObjects failed for ${failed.length} of ${Objects.length} object versions in ${bucket} ` +
          `(first: ${first.Key}: ${first.Code}: ${first.Message})`,
        ExitCode.cloudFailed,
      );
    }
  });
  await clients.s3.send(new DeleteBucketCommand(owned(bucket, account)));
}

/**
 * Destroy: the bucket of this cluster id, with everything in it (the cluster's only etcd snapshots, which
 * the plan line counts). A bucket of its name without the id, or of another account, is left.
 */
export async function destroySnapshotBucket(
  ctx: { clients: AwsClients; rec: ChangeRecorder },
  bucket: string,
  account: string,
  clusterId: string,
): Promise<void> {
  const { clients, rec } = ctx;
  const found = await observeBucket(clients, bucket, account);
  if (found.state === "absent") return;
  if (found.state === "unreadable") {
    rec.info(
      `leaving ${KIND} ${bucket}: this account cannot read it (another account's, or no s3:ListBucket)`,
    );
    return;
  }
  if (!ownedBy(found.tags, clusterId)) {
    rec.info(
      `leaving ${KIND} ${bucket}: its ${OWNER_TAG} is ${ownerOf(found.tags) ?? "absent"}, not this cluster's id`,
    );
    return;
  }
  const held = await contents(clients, bucket, account);
  await rec.make(
    {
      action: "delete",
      kind: KIND,
      name: bucket,
      detail:
        `holds ${held.objects} object(s) in ${held.versions} version(s) and ${held.deleteMarkers} delete ` +
        "marker(s): the cluster's etcd snapshots go with it",
    },
    () => deleteBucket(clients, bucket, account),
    undefined,
  );
}
