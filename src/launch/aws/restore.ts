/**
 * `kubebake cluster restore --snapshot <name>`: the masters' etcd starts over from one snapshot of the
 * cluster's bucket, on purpose. The snapshot is checked first (the SHA-256 the store recorded, and the
 * digest etcd appends to every snapshot); then a restore request naming it is put beside the snapshots
 * and every master is replaced at once. The new masters find no cluster, and their seed restores the
 * requested snapshot instead of the newest (src/node/etcd-member), then deletes the request.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { TerminateInstanceInAutoScalingGroupCommand } from "@aws-sdk/client-auto-scaling";
import { createHash } from "node:crypto";
import { ExitCode, KubebakeError } from "../../errors";
import { awsErrorCode } from "./clients";
import { waitFor, type BaseContext, type Context } from "./context";
import { resourceName, RESTORE_REQUEST, snapshotBucket, snapshotPrefix } from "./desired";
import { describeGroup, groupWhole } from "./groups";
import { assertOwned, readClusterId } from "./owner";
import { checkSnapshotBucket } from "./snapshots";

/** Snapshot names as etcd-member stores them: `<UTC time>-r<revision>.db`. */
export const SNAPSHOT_NAME = /^\d{8}T\d{6}Z-r\d+\.db$/;

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/**
 * What is wrong with a snapshot's bytes, or undefined when both checks pass: the SHA-256 the store
 * recorded at upload, then etcd's own digest (`etcdctl snapshot save` appends the SHA-256 of the
 * database, which `etcdutl snapshot restore` verifies: the same check the masters make).
 */
export function snapshotProblem(bytes: Uint8Array, recorded: string | undefined): string | undefined {
  const actual = sha256(bytes);
  if (recorded !== actual) return `its SHA-256 is ${actual}, the store recorded ${recorded ?? "none"}`;
  if (bytes.length <= 32) return `it holds ${bytes.length} bytes, too few for an etcd snapshot`;
  const body = bytes.subarray(0, bytes.length - 32);
  const appended = Buffer.from(bytes.subarray(bytes.length - 32)).toString("hex");
  if (sha256(body) !== appended) return "the digest etcd appended to it does not match its content";
  return undefined;
}

export interface RestoreResult {
  snapshot: string;
  masters: string[];
}

async function listSnapshots(ctx: Context, bucket: string): Promise<string[]> {
  const prefix = snapshotPrefix(ctx.inputs.spec.name);
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await ctx.clients.s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        ContinuationToken: token,
        ExpectedBucketOwner: ctx.inputs.account,
      }),
    );
    names.push(...(page.Contents ?? []).map((o) => o.Key!.slice(prefix.length)));
    token = page.NextContinuationToken;
  } while (token);
  return names.filter((n) => SNAPSHOT_NAME.test(n)).sort();
}

export async function restoreCluster(base: BaseContext, snapshot: string): Promise<RestoreResult> {
  const { spec, account } = base.inputs;
  if (!SNAPSHOT_NAME.test(snapshot)) {
    throw new KubebakeError(
      `--snapshot ${JSON.stringify(snapshot)}: expected a snapshot name such as 20261201T010000Z-r1234.db`,
      ExitCode.invalidInput,
    );
  }
  const clusterId = await readClusterId(base.clients, spec.name);
  if (!clusterId) {
    throw new KubebakeError(
      `cluster ${spec.name} does not exist in ${spec.region}: there is nothing to restore`,
      ExitCode.unsafeState,
    );
  }
  const ctx: Context = { ...base, clusterId };
  const bucket = snapshotBucket(ctx.inputs);
  await checkSnapshotBucket(ctx, clusterId);
  const store = `s3://${bucket}/${snapshotPrefix(spec.name)}`;
  let names: string[];
  try {
    names = await listSnapshots(ctx, bucket);
  } catch (error) {
    if (awsErrorCode(error) !== "NoSuchBucket") throw error;
    throw new KubebakeError(
      `cluster ${spec.name} has no snapshot bucket ${bucket}: run 'kubebake cluster apply' first`,
      ExitCode.unsafeState,
    );
  }
  if (!names.includes(snapshot)) {
    const newest = names.slice(-5).reverse();
    throw new KubebakeError(
      `--snapshot ${snapshot}: ${store} holds no such snapshot; ` +
        (newest.length ? `the newest: ${newest.join(", ")}` : "it holds no snapshot at all"),
      ExitCode.invalidInput,
    );
  }
  const object = await ctx.clients.s3.send(
    new GetObjectCommand({
      Bucket: bucket,
      Key: `${snapshotPrefix(spec.name)}${snapshot}`,
      ExpectedBucketOwner: account,
    }),
  );
  const bytes = await object.Body!.transformToByteArray();
  const problem = snapshotProblem(bytes, object.Metadata?.sha256);
  if (problem) {
    throw new KubebakeError(
      `snapshot ${snapshot} failed its integrity check (${problem}): refused; nothing was changed`,
      ExitCode.digestMismatch,
    );
  }

  const groupName = resourceName(spec.name, "masters");
  const group = await describeGroup(ctx, groupName);
  if (!group) {
    throw new KubebakeError(
      `cluster ${spec.name} has no masters group ${groupName}: run 'kubebake cluster apply' first`,
      ExitCode.unsafeState,
    );
  }
  assertOwned("auto-scaling-group", groupName, group.Tags, clusterId);
  const masters = (group.Instances ?? [])
    .filter((i) => !(i.LifecycleState ?? "").startsWith("Terminat"))
    .map((i) => i.InstanceId!)
    .sort();

  await ctx.rec.make(
    {
      action: "create",
      kind: "restore-request",
      name: `${store}${RESTORE_REQUEST}`,
      detail: `the new masters restore ${snapshot}`,
    },
    () =>
      ctx.clients.s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `${snapshotPrefix(spec.name)}${RESTORE_REQUEST}`,
          Body: `${snapshot}\n`,
          ContentType: "text/plain",
          ExpectedBucketOwner: account,
        }),
      ),
    undefined,
  );
  // All at once: a master left running would keep the cluster the restore is meant to replace, and the
  // new masters would join it instead of restoring.
  await ctx.rec.make(
    {
      action: "replace",
      kind: "instances",
      name: groupName,
      detail: `every master at once (${masters.join(", ") || "none running"}); the API is down until the new ones vote`,
    },
    async () => {
      for (const InstanceId of masters) {
        await ctx.clients.autoScaling.send(
          new TerminateInstanceInAutoScalingGroupCommand({
            InstanceId,
            ShouldDecrementDesiredCapacity: false,
          }),
        );
      }
      await waitFor(ctx, `${groupName} to be whole again`, spec.rollout.timeoutSeconds * 1000, () =>
        groupWhole(ctx, groupName, masters),
      );
    },
    undefined,
  );
  return { snapshot, masters };
}
