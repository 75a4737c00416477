/**
 * The cluster's KMS key (customer managed, symmetric, rotated): it encrypts the cluster's SSM parameters
 * and its nodes' root volumes. Found by its alias `alias/kubebake-<cluster>`, or, when an apply stopped
 * between creating the key and naming it, by its owner tag; only a key carrying the cluster id is used,
 * and keys pending deletion are never used (a destroyed cluster's key waits out its 7 days). An alias
 * naming a key without the id is refused (exit 8), and left by destroy.
 */
import { CreateServiceLinkedRoleCommand, GetRoleCommand } from "@aws-sdk/client-iam";
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  EnableKeyRotationCommand,
  GetKeyPolicyCommand,
  GetKeyRotationStatusCommand,
  ListKeysCommand,
  ListResourceTagsCommand,
  PutKeyPolicyCommand,
  ScheduleKeyDeletionCommand,
  TagResourceCommand,
  UpdateAliasCommand,
  type KeyMetadata,
} from "@aws-sdk/client-kms";
import { isDeepStrictEqual } from "node:util";
import { plannedId, type ChangeRecorder } from "../changes";
import { awsErrorCode, ifExists, type AwsClients } from "./clients";
import type { BaseContext, Context } from "./context";
import {
  AUTO_SCALING_ROLE_NAME,
  AUTO_SCALING_SERVICE,
  CLUSTER_TAG,
  clusterKeyPolicy,
  KEY_DELETION_WINDOW_DAYS,
  keyAlias,
  OWNER_TAG,
  tagsFor,
} from "./desired";
import { assertOwned, ownedBy, ownerOf } from "./owner";

const KEY = "kms-key";
const ALIAS = "kms-alias";
/** The `kubebake:name` of the cluster key. */
export const KEY_NAME = "key";

/** The cluster key as the other steps use it: SSM takes either, EBS and IAM the ARN. */
export interface ClusterKey {
  id: string;
  arn: string;
}

interface FoundKey extends ClusterKey {
  state: string;
  created: number;
  tags: Record<string, string>;
}

/** A key in one of these states can no longer encrypt or decrypt anything of ours: it is never used. */
export const usable = (state: string | undefined) =>
  state !== "PendingDeletion" && state !== "PendingReplicaDeletion";

/**
 * Whether a SecureString parameter's KeyId (as DescribeParameters shows it: whatever the writer named,
 * an id, an ARN or an alias) names the cluster key.
 */
export function namesKey(keyId: string | undefined, key: ClusterKey, alias: string): boolean {
  if (!keyId) return false;
  // The alias's ARN is the key's with `alias/…` for `key/<id>`: same account and region.
  const aliasArn = key.arn.replace(/:key\/[^:]*$/, `:${alias}`);
  return [key.arn, key.id, alias, aliasArn].includes(keyId);
}

async function keyTags(clients: AwsClients, KeyId: string): Promise<Record<string, string>> {
  const tags: Record<string, string> = {};
  for (let Marker: string | undefined, more = true; more;) {
    const page = await clients.kms.send(new ListResourceTagsCommand({ KeyId, Marker }));
    for (const t of page.Tags ?? []) tags[t.TagKey ?? ""] = t.TagValue ?? "";
    [Marker, more] = [page.NextMarker, page.Truncated === true];
  }
  return tags;
}

const found = async (clients: AwsClients, meta: KeyMetadata): Promise<FoundKey> => ({
  id: meta.KeyId!,
  arn: meta.Arn!,
  state: meta.KeyState ?? "",
  created: meta.CreationDate?.getTime() ?? 0,
  tags: await keyTags(clients, meta.KeyId!),
});

/** The key the cluster's alias names (in whatever state), or undefined without the alias. */
async function aliasedKey(clients: AwsClients, alias: string): Promise<FoundKey | undefined> {
  const meta = (await ifExists(() => clients.kms.send(new DescribeKeyCommand({ KeyId: alias }))))
    ?.KeyMetadata;
  return meta ? found(clients, meta) : undefined;
}

/**
 * The usable customer managed keys carrying this cluster's name and id, oldest first. KMS lists no tags,
 * so each key of the region is read. A key that refuses these reads (AccessDenied) is not one kubebake
 * made: the cluster key's policy leaves its use to the account's IAM, which must allow these reads anyway.
 */
async function ownedKeys(clients: AwsClients, cluster: string, clusterId: string): Promise<FoundKey[]> {
  const keys: FoundKey[] = [];
  const denied = (error: unknown) => awsErrorCode(error) === "AccessDeniedException";
  for (let Marker: string | undefined, more = true; more;) {
    const page = await clients.kms.send(new ListKeysCommand({ Marker }));
    for (const listed of page.Keys ?? []) {
      try {
        const meta = (await clients.kms.send(new DescribeKeyCommand({ KeyId: listed.KeyId }))).KeyMetadata;
        if (!meta || meta.KeyManager !== "CUSTOMER" || !usable(meta.KeyState)) continue;
        const key = await found(clients, meta);
        if (key.tags[CLUSTER_TAG] === cluster && ownedBy(key.tags, clusterId)) keys.push(key);
      } catch (error) {
        if (!denied(error)) throw error;
      }
    }
    [Marker, more] = [page.NextMarker, page.Truncated === true];
  }
  return keys.sort((a, b) => a.created - b.created);
}

/** Before anything is created: the alias is free, or names a key carrying this cluster's id. */
export async function checkClusterKey(ctx: BaseContext, clusterId: string | undefined): Promise<void> {
  const alias = keyAlias(ctx.inputs.spec.name);
  const key = await aliasedKey(ctx.clients, alias);
  if (key) assertOwned(ALIAS, alias, key.tags, clusterId ?? "");
}

/**
 * Auto Scaling's service-linked role, which the key policy names: KMS refuses a policy naming a role that
 * does not exist, and AWS creates this one only with an account's first group, after the key. Shared by
 * every group of the account, so it is never deleted.
 */
async function ensureAutoScalingRole(ctx: Context): Promise<boolean> {
  const { iam } = ctx.clients;
  if (await ifExists(() => iam.send(new GetRoleCommand({ RoleName: AUTO_SCALING_ROLE_NAME })))) return false;
  await ctx.rec.make(
    {
      action: "create",
      kind: "iam-service-linked-role",
      name: AUTO_SCALING_ROLE_NAME,
      detail: "Auto Scaling's own role, shared by every group of the account",
    },
    () => iam.send(new CreateServiceLinkedRoleCommand({ AWSServiceName: AUTO_SCALING_SERVICE })),
    undefined,
  );
  return true;
}

/** A role IAM has just created may not be accepted as a key policy principal yet (eventual consistency). */
async function retryNewPrincipal<T>(ctx: Context, call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      const retryable =
        awsErrorCode(error) === "MalformedPolicyDocumentException" &&
        /principal/i.test((error as Error).message);
      if (!retryable || attempt >= 10) throw error;
      await ctx.sleep(Math.max(ctx.pollMs, 1) * 3);
    }
  }
}

/**
 * Ensures the cluster key with its policy, rotation, tags and alias; returns it (a placeholder in a plan
 * that creates it). Created with its policy and tags in one call, so no key of ours is ever untagged.
 */
export async function ensureClusterKey(ctx: Context): Promise<ClusterKey> {
  const { kms } = ctx.clients;
  const { spec } = ctx.inputs;
  const alias = keyAlias(spec.name);
  const tags = tagsFor(spec, KEY_NAME, ctx.clusterId);
  const policy = clusterKeyPolicy(ctx.inputs);
  await ensureAutoScalingRole(ctx);
  const aliased = await aliasedKey(ctx.clients, alias);
  if (aliased) assertOwned(ALIAS, alias, aliased.tags, ctx.clusterId);
  // The alias may name a key of ours that was scheduled for deletion: it is replaced, never revived.
  // Without a usable aliased key, one of ours may exist unnamed (an apply stopped before the alias).
  const key =
    aliased && usable(aliased.state) ? aliased : (await ownedKeys(ctx.clients, spec.name, ctx.clusterId))[0];
  if (!key) {
    const planned = { id: plannedId(KEY), arn: plannedId(KEY) };
    return ctx.rec.make(
      {
        action: "create",
        kind: KEY,
        name: alias,
        detail: "symmetric, rotated yearly; encrypts the cluster's SSM parameters and EBS volumes",
      },
      async () => {
        const meta = (
          await retryNewPrincipal(ctx, () =>
            kms.send(
              new CreateKeyCommand({
                Description: `kubebake ${spec.name} ${spec.region}: SSM parameters and EBS volumes`,
                KeySpec: "SYMMETRIC_DEFAULT",
                KeyUsage: "ENCRYPT_DECRYPT",
                Policy: JSON.stringify(policy),
                Tags: Object.entries(tags).map(([TagKey, TagValue]) => ({ TagKey, TagValue })),
              }),
            ),
          )
        ).KeyMetadata!;
        await kms.send(new EnableKeyRotationCommand({ KeyId: meta.KeyId }));
        await setAlias(ctx, alias, meta.KeyId!, aliased !== undefined);
        return { id: meta.KeyId!, arn: meta.Arn! };
      },
      planned,
    );
  }
  const stale = Object.entries(tags).filter(([k, v]) => key.tags[k] !== v);
  if (stale.length > 0) {
    await ctx.rec.make(
      { action: "update", kind: KEY, name: alias, detail: `tags ${stale.map(([k]) => k).join(", ")}` },
      () =>
        kms.send(
          new TagResourceCommand({
            KeyId: key.id,
            Tags: stale.map(([TagKey, TagValue]) => ({ TagKey, TagValue })),
          }),
        ),
      undefined,
    );
  }
  const current = (await kms.send(new GetKeyPolicyCommand({ KeyId: key.id, PolicyName: "default" }))).Policy;
  if (!isDeepStrictEqual(current ? JSON.parse(current) : undefined, policy)) {
    await ctx.rec.make(
      { action: "update", kind: KEY, name: alias, detail: "key policy" },
      () =>
        retryNewPrincipal(ctx, () =>
          kms.send(
            new PutKeyPolicyCommand({ KeyId: key.id, PolicyName: "default", Policy: JSON.stringify(policy) }),
          ),
        ),
      undefined,
    );
  }
  if (!(await kms.send(new GetKeyRotationStatusCommand({ KeyId: key.id }))).KeyRotationEnabled) {
    await ctx.rec.make(
      { action: "update", kind: KEY, name: alias, detail: "automatic rotation on" },
      () => kms.send(new EnableKeyRotationCommand({ KeyId: key.id })),
      undefined,
    );
  }
  if (aliased?.id !== key.id) {
    await ctx.rec.make(
      {
        action: aliased ? "update" : "create",
        kind: ALIAS,
        name: alias,
        detail: aliased ? `from ${aliased.id} (${aliased.state}) to ${key.id}` : `to ${key.id}`,
      },
      () => setAlias(ctx, alias, key.id, aliased !== undefined),
      undefined,
    );
  }
  return { id: key.id, arn: key.arn };
}

const setAlias = (ctx: Context, AliasName: string, TargetKeyId: string, exists: boolean) =>
  ctx.clients.kms.send(
    exists
      ? new UpdateAliasCommand({ AliasName, TargetKeyId })
      : new CreateAliasCommand({ AliasName, TargetKeyId }),
  );

/**
 * Destroy: the alias (when it names a key of this cluster id) and every usable key of the id, scheduled
 * for deletion after KMS's shortest window; a key already pending deletion is left to it. The key goes
 * after the parameters and volumes it encrypted.
 */
export async function destroyClusterKey(
  ctx: { clients: AwsClients; rec: ChangeRecorder },
  cluster: string,
  clusterId: string,
): Promise<void> {
  const { clients, rec } = ctx;
  const alias = keyAlias(cluster);
  const aliased = await aliasedKey(clients, alias);
  if (aliased && !ownedBy(aliased.tags, clusterId)) {
    rec.info(
      `leaving ${ALIAS} ${alias}: its key's ${OWNER_TAG} is ${ownerOf(aliased.tags) ?? "absent"}, not this cluster's id`,
    );
  } else if (aliased) {
    await rec.make(
      { action: "delete", kind: ALIAS, name: alias },
      () => clients.kms.send(new DeleteAliasCommand({ AliasName: alias })),
      undefined,
    );
  }
  for (const key of await ownedKeys(clients, cluster, clusterId)) {
    await rec.make(
      {
        action: "delete",
        kind: KEY,
        name: key.id,
        detail: `scheduled for deletion in ${KEY_DELETION_WINDOW_DAYS} days`,
      },
      () =>
        clients.kms.send(
          new ScheduleKeyDeletionCommand({ KeyId: key.id, PendingWindowInDays: KEY_DELETION_WINDOW_DAYS }),
        ),
      undefined,
    );
  }
}
