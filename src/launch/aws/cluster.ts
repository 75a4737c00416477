/** `kubebake cluster apply` on AWS: every step reads the truth, then changes only what differs. */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { ROLES } from "../../discover/names";
import type { Context } from "./context";
import { assumeRolePolicy, nodePolicy, resourceName } from "./desired";
import { ensureDiscovery } from "./discovery";
import { ensureGroup, ensureLaunchTemplate, rollOut } from "./groups";
import { ensureInstanceProfile, ensureRole } from "./iam";
import { checkSshKey } from "./inputs";
import { ensureNetwork } from "./network";
import { ensurePki } from "./secrets";
import { ensureSecurityGroups } from "./security";
import { ensureZone } from "./zone";

export interface ApplyResult {
  vpcId: string;
  zoneId: string;
}

export async function applyCluster(ctx: Context): Promise<ApplyResult> {
  const { spec } = ctx.inputs;
  await checkSshKey(ctx);
  const network = await ensureNetwork(ctx);
  const groupIds = await ensureSecurityGroups(ctx, network.vpcId);
  for (const role of ROLES) {
    const name = resourceName(spec.name, role);
    await ensureRole(
      ctx,
      name,
      `role-${role}`,
      assumeRolePolicy("ec2.amazonaws.com"),
      nodePolicy(ctx.inputs, role),
    );
    await ensureInstanceProfile(ctx, name, `profile-${role}`);
  }
  const running = await ctx.clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({
      Filters: [{ Name: "tag:KubernetesCluster", Values: [spec.name] }],
    }),
  );
  await ensurePki(ctx, (running.AutoScalingGroups ?? []).length > 0);
  const zoneId = await ensureZone(ctx, network.vpcId);
  // Discovery first, so that the groups' first launches already reach it.
  await ensureDiscovery(ctx, zoneId);
  for (const role of ROLES) {
    const template = await ensureLaunchTemplate(ctx, role, groupIds[role]);
    const existed = await ensureGroup(ctx, role, template, network.subnetIds);
    await rollOut(ctx, role, existed);
  }
  return { vpcId: network.vpcId, zoneId };
}
