/** `kubebake cluster apply` on AWS: every step reads the truth, then changes only what differs. */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { ROLES } from "../../discover/names";
import type { BaseContext, Context } from "./context";
import { assumeRolePolicy, nodePolicy, nodeRoleName, OWNER_TAG } from "./desired";
import { ensureDiscovery } from "./discovery";
import { ensureGroup, ensureLaunchTemplate, rollOut } from "./groups";
import { checkIamNames, ensureInstanceProfile, ensureRole } from "./iam";
import { checkSshKey } from "./inputs";
import { checkClusterKey, ensureClusterKey } from "./key";
import { checkNetwork, ensureNetwork, publicNodes, retireUnusedAccess } from "./network";
import { ensureClusterId, readClusterId } from "./owner";
import { ensurePki } from "./secrets";
import { ensureSecurityGroups } from "./security";
import { checkSnapshotBucket, ensureSnapshotBucket } from "./snapshots";
import { ensureZone, ownZoneOnVpc } from "./zone";

export interface ApplyResult {
  vpcId: string;
  zoneId: string;
}

export async function applyCluster(base: BaseContext): Promise<ApplyResult> {
  const { spec } = base.inputs;
  // Reads first: a mistake in the spec, or a look-alike holding one of our global names, is refused
  // before anything is created.
  await checkSshKey(base);
  const stored = await readClusterId(base.clients, spec.name);
  const checked = await checkNetwork(base, stored);
  await checkIamNames(base, stored);
  await checkSnapshotBucket(base, stored);
  await checkClusterKey(base, stored);
  if ("existing" in checked) await ownZoneOnVpc(base, checked.existing.vpcId, stored);
  const ctx: Context = { ...base, clusterId: await ensureClusterId(base, stored) };
  const network = await ensureNetwork(ctx, checked);
  const groupIds = await ensureSecurityGroups(ctx, network.vpcId);
  // Before the roles (their policies name it), the parameters and the launch templates (it encrypts them).
  const key = await ensureClusterKey(ctx);
  for (const role of ROLES) {
    const name = nodeRoleName(spec, role);
    await ensureRole(
      ctx,
      name,
      `role-${role}`,
      assumeRolePolicy("ec2.amazonaws.com"),
      nodePolicy(ctx.inputs, role, key.arn),
    );
    await ensureInstanceProfile(ctx, name, `profile-${role}`);
  }
  const running = await ctx.clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({
      Filters: [
        { Name: "tag:KubernetesCluster", Values: [spec.name] },
        { Name: `tag:${OWNER_TAG}`, Values: [ctx.clusterId] },
      ],
    }),
  );
  await ensurePki(ctx, (running.AutoScalingGroups ?? []).length > 0, key);
  // Before the groups: their first masters already take snapshots.
  await ensureSnapshotBucket(ctx);
  const zoneId = await ensureZone(ctx, network.vpcId);
  // Discovery first, so that the groups' first launches already reach it.
  await ensureDiscovery(ctx, zoneId);
  // ROLES lists masters first: their rollout (one voter at a time) ends before any minion is replaced.
  for (const role of ROLES) {
    const template = await ensureLaunchTemplate(ctx, role, groupIds[role], key.arn);
    const existed = await ensureGroup(ctx, role, template, network.subnetIds);
    await rollOut(ctx, role, existed, publicNodes(checked));
  }
  // Last: a switch between private and public networks removes the old way out once no node uses it.
  await retireUnusedAccess(ctx, checked, network.vpcId);
  return { vpcId: network.vpcId, zoneId };
}
