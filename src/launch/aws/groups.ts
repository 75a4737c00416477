/** Per role: a launch template (a new version when its data changes), an Auto Scaling group, and rollouts. */
import {
  CreateAutoScalingGroupCommand,
  CreateOrUpdateTagsCommand,
  DeleteLifecycleHookCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
  PutLifecycleHookCommand,
  TerminateInstanceInAutoScalingGroupCommand,
  UpdateAutoScalingGroupCommand,
  type AutoScalingGroup,
} from "@aws-sdk/client-auto-scaling";
import {
  CreateLaunchTemplateCommand,
  CreateLaunchTemplateVersionCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  ModifyLaunchTemplateCommand,
  type ResponseLaunchTemplateData,
} from "@aws-sdk/client-ec2";
import { isDeepStrictEqual } from "node:util";
import type { Role } from "../../discover/names";
import { plannedId } from "../changes";
import { waitFor, type Context } from "./context";
import {
  asTagList,
  groupSize,
  LAUNCH_HOOK_NAME,
  launchHook,
  launchTemplateData,
  resourceName,
  rolloutBatch,
  ROLE_TAG,
  tagsFor,
  type LaunchTemplateData,
} from "./desired";
import { assertOwned } from "./owner";

export interface TemplateRef {
  id: string;
  version: number;
}

/** The fields kubebake sets, read back from a launch template version in the same shape. */
export function comparableTemplateData(
  data: ResponseLaunchTemplateData | undefined,
): Partial<LaunchTemplateData> {
  if (!data) return {};
  const m = data.MetadataOptions;
  return {
    ImageId: data.ImageId,
    InstanceType: data.InstanceType,
    ...(data.KeyName ? { KeyName: data.KeyName } : {}),
    UserData: data.UserData,
    IamInstanceProfile: { Name: data.IamInstanceProfile?.Name ?? "" },
    SecurityGroupIds: [...(data.SecurityGroupIds ?? [])].sort(),
    // Every field of every mapping, so that a volume added or resized by hand is drift too.
    BlockDeviceMappings: (data.BlockDeviceMappings ?? []).map((m) => ({
      DeviceName: m.DeviceName,
      ...(m.Ebs ? { Ebs: definedOnly(m.Ebs) } : {}),
      ...(m.VirtualName ? { VirtualName: m.VirtualName } : {}),
      ...(m.NoDevice !== undefined ? { NoDevice: m.NoDevice } : {}),
    })) as unknown as LaunchTemplateData["BlockDeviceMappings"],
    MetadataOptions: {
      HttpTokens: m?.HttpTokens as "required",
      HttpPutResponseHopLimit: m?.HttpPutResponseHopLimit ?? 1,
      HttpEndpoint: m?.HttpEndpoint as "enabled",
    },
  };
}

const definedOnly = (o: object) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

export async function ensureLaunchTemplate(
  ctx: Context,
  role: Role,
  securityGroupId: string,
  keyArn: string,
): Promise<TemplateRef> {
  const { ec2 } = ctx.clients;
  const { spec } = ctx.inputs;
  const name = resourceName(spec.name, role);
  const data = launchTemplateData(ctx.inputs, role, securityGroupId, keyArn);
  const found = (
    await ec2.send(
      new DescribeLaunchTemplatesCommand({ Filters: [{ Name: "launch-template-name", Values: [name] }] }),
    )
  ).LaunchTemplates?.[0];
  if (!found) {
    const id = await ctx.rec.make(
      { action: "create", kind: "launch-template", name, detail: `${data.ImageId}, ${data.InstanceType}` },
      async () =>
        (
          await ec2.send(
            new CreateLaunchTemplateCommand({
              LaunchTemplateName: name,
              LaunchTemplateData: data,
              TagSpecifications: [
                {
                  ResourceType: "launch-template",
                  Tags: asTagList(tagsFor(spec, `lt-${role}`, ctx.clusterId)),
                },
              ],
            }),
          )
        ).LaunchTemplate!.LaunchTemplateId!,
      plannedId(name),
    );
    return { id, version: 1 };
  }
  assertOwned("launch-template", name, found.Tags, ctx.clusterId);
  const id = found.LaunchTemplateId!;
  const latest = (
    await ec2.send(new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateId: id, Versions: ["$Latest"] }))
  ).LaunchTemplateVersions?.[0];
  let version = latest?.VersionNumber ?? found.LatestVersionNumber ?? 1;
  const current = comparableTemplateData(latest?.LaunchTemplateData);
  const desired = { ...data, SecurityGroupIds: [...data.SecurityGroupIds].sort() };
  if (!isDeepStrictEqual(current, desired)) {
    const changed = Object.keys(desired).filter(
      (k) =>
        !isDeepStrictEqual(current[k as keyof LaunchTemplateData], desired[k as keyof LaunchTemplateData]),
    );
    version = await ctx.rec.make(
      { action: "update", kind: "launch-template", name, detail: `new version: ${changed.join(", ")}` },
      async () =>
        (
          await ec2.send(
            new CreateLaunchTemplateVersionCommand({ LaunchTemplateId: id, LaunchTemplateData: data }),
          )
        ).LaunchTemplateVersion!.VersionNumber!,
      version + 1,
    );
  }
  if (found.DefaultVersionNumber !== version) {
    await ctx.rec.make(
      { action: "update", kind: "launch-template", name, detail: `default version ${version}` },
      () =>
        ec2.send(new ModifyLaunchTemplateCommand({ LaunchTemplateId: id, DefaultVersion: String(version) })),
      undefined,
    );
  }
  return { id, version };
}

/** The cluster's tags plus Role, which the discovery function reads to tell the groups apart. */
export const groupTags = (ctx: Context, role: Role) => ({
  ...tagsFor(ctx.inputs.spec, `asg-${role}`, ctx.clusterId),
  [ROLE_TAG]: role,
});

export async function describeGroup(
  ctx: Pick<Context, "clients">,
  name: string,
): Promise<AutoScalingGroup | undefined> {
  const answer = await ctx.clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }),
  );
  return answer.AutoScalingGroups?.find(
    (g) => g.AutoScalingGroupName === name && g.Status !== "Delete in progress",
  );
}

/** Ensures the group; returns whether it existed before (only then can its instances be outdated). */
export async function ensureGroup(ctx: Context, role: Role, template: TemplateRef, subnetIds: string[]) {
  const { autoScaling } = ctx.clients;
  const name = resourceName(ctx.inputs.spec.name, role);
  const size = groupSize(ctx.inputs.spec, role);
  const tags = groupTags(ctx, role);
  const tagList = asTagList(tags).map((t) => ({
    ...t,
    ResourceId: name,
    ResourceType: "auto-scaling-group",
    PropagateAtLaunch: true,
  }));
  const found = await describeGroup(ctx, name);
  const LaunchTemplate = { LaunchTemplateId: template.id, Version: String(template.version) };
  const settings = {
    AutoScalingGroupName: name,
    MinSize: size.min,
    MaxSize: size.max,
    DesiredCapacity: size.desired,
    LaunchTemplate,
    VPCZoneIdentifier: subnetIds.join(","),
  };
  const hook = launchHook(ctx.inputs.spec, role);
  if (!found) {
    await ctx.rec.make(
      {
        action: "create",
        kind: "auto-scaling-group",
        name,
        detail:
          `${size.desired} × ${ctx.inputs.spec.groups[role].instanceType}` +
          (hook ? `, launch hook ${hook.LifecycleHookName}` : ""),
      },
      () =>
        autoScaling.send(
          new CreateAutoScalingGroupCommand({
            ...settings,
            HealthCheckType: "EC2",
            Tags: tagList,
            // With the group, so that its very first instances already wait for the hook.
            ...(hook ? { LifecycleHookSpecificationList: [hook] } : {}),
          }),
        ),
      undefined,
    );
    return false;
  }
  assertOwned("auto-scaling-group", name, found.Tags, ctx.clusterId);
  const differences: string[] = [];
  if (found.MinSize !== size.min) differences.push(`min ${found.MinSize} → ${size.min}`);
  if (found.MaxSize !== size.max) differences.push(`max ${found.MaxSize} → ${size.max}`);
  if (found.DesiredCapacity !== size.desired)
    differences.push(`desired ${found.DesiredCapacity} → ${size.desired}`);
  if (
    found.LaunchTemplate?.LaunchTemplateId !== template.id ||
    found.LaunchTemplate?.Version !== String(template.version)
  ) {
    differences.push(`launch template version ${found.LaunchTemplate?.Version} → ${template.version}`);
  }
  const subnets = (found.VPCZoneIdentifier ?? "").split(",").filter(Boolean).sort();
  if (!isDeepStrictEqual(subnets, [...subnetIds].sort())) differences.push("subnets");
  if (differences.length > 0) {
    await ctx.rec.make(
      { action: "update", kind: "auto-scaling-group", name, detail: differences.join(", ") },
      () => autoScaling.send(new UpdateAutoScalingGroupCommand(settings)),
      undefined,
    );
  }
  const observedTags = new Map((found.Tags ?? []).map((t) => [t.Key, `${t.Value}|${t.PropagateAtLaunch}`]));
  const staleTags = tagList.filter((t) => observedTags.get(t.Key) !== `${t.Value}|true`);
  if (staleTags.length > 0) {
    await ctx.rec.make(
      {
        action: "update",
        kind: "auto-scaling-group",
        name,
        detail: `tags ${staleTags.map((t) => t.Key).join(", ")}`,
      },
      () => autoScaling.send(new CreateOrUpdateTagsCommand({ Tags: staleTags })),
      undefined,
    );
  }
  await ensureLaunchHook(ctx, role, name);
  return true;
}

/**
 * The group's launch hook as launchHook says: put when missing or different, removed from a group that
 * should have none. Only kubebake's hook is managed; hooks of other names are someone else's.
 */
async function ensureLaunchHook(ctx: Context, role: Role, group: string): Promise<void> {
  const { autoScaling } = ctx.clients;
  const desired = launchHook(ctx.inputs.spec, role);
  const found = (
    await autoScaling.send(
      new DescribeLifecycleHooksCommand({
        AutoScalingGroupName: group,
        LifecycleHookNames: [LAUNCH_HOOK_NAME],
      }),
    )
  ).LifecycleHooks?.find((h) => h.LifecycleHookName === LAUNCH_HOOK_NAME);
  if (!desired) {
    if (!found) return;
    await ctx.rec.make(
      {
        action: "update",
        kind: "auto-scaling-group",
        name: group,
        detail: `remove launch hook ${LAUNCH_HOOK_NAME}`,
      },
      () =>
        autoScaling.send(
          new DeleteLifecycleHookCommand({
            AutoScalingGroupName: group,
            LifecycleHookName: LAUNCH_HOOK_NAME,
          }),
        ),
      undefined,
    );
    return;
  }
  const differences = (["LifecycleTransition", "DefaultResult", "HeartbeatTimeout"] as const)
    .filter((field) => found?.[field] !== desired[field])
    .map((field) => `${field} ${found?.[field]} → ${desired[field]}`);
  if (found && differences.length === 0) return;
  await ctx.rec.make(
    {
      action: "update",
      kind: "auto-scaling-group",
      name: group,
      detail: found
        ? `launch hook ${LAUNCH_HOOK_NAME}: ${differences.join(", ")}`
        : `add launch hook ${LAUNCH_HOOK_NAME}`,
    },
    () => autoScaling.send(new PutLifecycleHookCommand({ AutoScalingGroupName: group, ...desired })),
    undefined,
  );
}

/**
 * In-service members whose image or instance type is not the template's, read from EC2 (the truth); in a
 * network of kubebake's, also those whose public IP does not fit it (`publicNodes`): after a switch to
 * private, the internet gateway can go only once no node has one; after a switch to public, a node
 * without one would lose AWS when the endpoints go.
 */
async function outdatedMembers(
  ctx: Context,
  role: Role,
  publicNodes: boolean | undefined,
): Promise<{ ids: string[]; size: number; healthy: number }> {
  const group = await describeGroup(ctx, resourceName(ctx.inputs.spec.name, role));
  const members = (group?.Instances ?? []).filter((i) => i.LifecycleState === "InService");
  const healthy = members.filter((i) => i.HealthStatus === "Healthy").length;
  if (members.length === 0) return { ids: [], size: group?.DesiredCapacity ?? 0, healthy };
  const instances = (
    await ctx.clients.ec2.send(
      new DescribeInstancesCommand({ InstanceIds: members.map((m) => m.InstanceId!) }),
    )
  ).Reservations?.flatMap((r) => r.Instances ?? []);
  const type = ctx.inputs.spec.groups[role].instanceType;
  const ids = (instances ?? [])
    .filter(
      (i) =>
        i.ImageId !== ctx.inputs.ami ||
        i.InstanceType !== type ||
        (publicNodes !== undefined && Boolean(i.PublicIpAddress) !== publicNodes),
    )
    .map((i) => i.InstanceId!)
    .sort();
  return { ids, size: group?.DesiredCapacity ?? 0, healthy };
}

/** Whether every instance the group should have is InService and Healthy, and none of `leaving` is left. */
export async function groupWhole(
  ctx: Pick<Context, "clients">,
  name: string,
  leaving: string[] = [],
): Promise<boolean> {
  const group = await describeGroup(ctx, name);
  const members = group?.Instances ?? [];
  const ready = members.filter((i) => i.LifecycleState === "InService" && i.HealthStatus === "Healthy");
  return (
    ready.length >= (group?.DesiredCapacity ?? 0) && !members.some((m) => leaving.includes(m.InstanceId!))
  );
}

/**
 * Replaces outdated instances in batches: wait until the group is at full strength and healthy, terminate
 * a batch without lowering the desired capacity, wait until its replacements are in service, repeat. A
 * new master is in service only once it completed the launch hook (it votes), so masters are replaced one
 * voter at a time. The wait before a batch also covers a rollout resumed while a replacement from an
 * earlier run is still pending; a group with nothing outdated is not waited for. Read from truth each
 * round, so a rollout interrupted at any point resumes on the next apply.
 */
export async function rollOut(
  ctx: Context,
  role: Role,
  groupExisted: boolean,
  publicNodes?: boolean,
): Promise<void> {
  if (!groupExisted) return;
  const name = resourceName(ctx.inputs.spec.name, role);
  const timeoutMs = ctx.inputs.spec.rollout.timeoutSeconds * 1000;
  for (;;) {
    const { ids, size } = await outdatedMembers(ctx, role, publicNodes);
    if (ids.length === 0) return;
    if (!ctx.rec.dryRun && !(await groupWhole(ctx, name))) {
      await waitFor(ctx, `${name} to be at full strength`, timeoutMs, () => groupWhole(ctx, name));
      continue; // the wait may have changed who is outdated
    }
    const batch = ids.slice(0, rolloutBatch(ctx.inputs.spec, role, size));
    const detail = `${ids.length} outdated instance(s), ${batch.length} now: ${batch.join(", ")}`;
    await ctx.rec.make(
      { action: "replace", kind: "instances", name, detail },
      async () => {
        for (const InstanceId of batch) {
          await ctx.clients.autoScaling.send(
            new TerminateInstanceInAutoScalingGroupCommand({
              InstanceId,
              ShouldDecrementDesiredCapacity: false,
            }),
          );
        }
        await waitFor(ctx, `${name} to replace ${batch.join(", ")}`, timeoutMs, () =>
          groupWhole(ctx, name, batch),
        );
      },
      undefined,
    );
    if (ctx.rec.dryRun) return; // a plan lists the first batch; the rest follow the same way
  }
}
