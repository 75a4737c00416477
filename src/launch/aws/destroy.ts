/**
 * `kubebake cluster destroy`: everything that carries the cluster id of this cluster in this region
 * (found by tags, names and IAM paths, then checked for the id), deleted in dependency order, each step
 * found from truth so that an interrupted destroy resumes where it stopped. The id goes last.
 */
import {
  DeleteAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  DeleteInternetGatewayCommand,
  DeleteLaunchTemplateCommand,
  DeleteRouteTableCommand,
  DeleteSecurityGroupCommand,
  DeleteSubnetCommand,
  DeleteVpcCommand,
  DeleteVpcEndpointsCommand,
  DescribeInstancesCommand,
  DescribeInternetGatewaysCommand,
  DescribeLaunchTemplatesCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  DetachInternetGatewayCommand,
  DisassociateRouteTableCommand,
  RevokeSecurityGroupIngressCommand,
} from "@aws-sdk/client-ec2";
import {
  DeleteRuleCommand,
  DescribeRuleCommand,
  ListTagsForResourceCommand as ListRuleTagsCommand,
  ListTargetsByRuleCommand,
  RemoveTargetsCommand,
} from "@aws-sdk/client-eventbridge";
import {
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListInstanceProfilesCommand,
  ListRolePoliciesCommand,
  ListRolesCommand,
  RemoveRoleFromInstanceProfileCommand,
} from "@aws-sdk/client-iam";
import { DeleteFunctionCommand, GetFunctionCommand } from "@aws-sdk/client-lambda";
import {
  ChangeResourceRecordSetsCommand,
  DeleteHostedZoneCommand,
  ListHostedZonesCommand,
  ListResourceRecordSetsCommand,
  ListTagsForResourceCommand,
  type ResourceRecordSet,
} from "@aws-sdk/client-route-53";
import { DeleteParameterCommand, DeleteParametersCommand } from "@aws-sdk/client-ssm";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { clusterIdParameter, discoveryFunctionName, iamPath, OWNER_TAG, snapshotBucketName } from "./desired";
import { ifExists } from "./clients";
import { retryWhile, tagFilters, waitFor, type BaseContext } from "./context";
import { liveEndpoints } from "./endpoints";
import { eventsRuleName, scheduleRuleName } from "./discovery";
import { destroyClusterKey } from "./key";
import { ownedBy, ownerOf, readClusterId } from "./owner";
import { storedParameterNames } from "./secrets";
import { destroySnapshotBucket } from "./snapshots";
import { bareZoneId, zoneOwned } from "./zone";

type DestroyContext = Omit<BaseContext, "inputs"> & { cluster: string; timeoutMs: number };

const nameTag = (tags: { Key?: string; Value?: string }[] | undefined) =>
  tags?.find((t) => t.Key === "Name")?.Value ?? "";

export async function destroyCluster(ctx: DestroyContext): Promise<void> {
  const { cluster, rec, clients } = ctx;
  // The clients' region is the cluster's: its id, and the IAM path of its roles, are per region.
  const region = await clients.ec2.config.region();
  const clusterId = await readClusterId(clients, cluster);
  if (!clusterId) {
    rec.info(`cluster ${cluster} has no id in ${region} (${clusterIdParameter(cluster)}): nothing to delete`);
    return;
  }
  const filters = () => tagFilters(cluster, clusterId);
  /** Same-named resources without this id are another's: left as they are, and said so. */
  const leave = (kind: string, name: string, owner: string | undefined) =>
    rec.info(`leaving ${kind} ${name}: its ${OWNER_TAG} is ${owner ?? "absent"}, not this cluster's id`);

  // Discovery first, so nothing rewrites records while the groups go.
  for (const rule of [eventsRuleName(cluster), scheduleRuleName(cluster)]) {
    const found = await ifExists(() => clients.events.send(new DescribeRuleCommand({ Name: rule })));
    if (!found) continue;
    const tags = (await clients.events.send(new ListRuleTagsCommand({ ResourceARN: found.Arn }))).Tags;
    if (!ownedBy(tags, clusterId)) {
      leave("eventbridge-rule", rule, ownerOf(tags));
      continue;
    }
    const targets = (await clients.events.send(new ListTargetsByRuleCommand({ Rule: rule }))).Targets ?? [];
    await rec.make(
      { action: "delete", kind: "eventbridge-rule", name: rule },
      async () => {
        if (targets.length > 0) {
          await clients.events.send(new RemoveTargetsCommand({ Rule: rule, Ids: targets.map((t) => t.Id!) }));
        }
        await clients.events.send(new DeleteRuleCommand({ Name: rule }));
      },
      undefined,
    );
  }
  const functionName = discoveryFunctionName(cluster);
  const fn = await ifExists(() =>
    clients.lambda.send(new GetFunctionCommand({ FunctionName: functionName })),
  );
  if (fn && !ownedBy(fn.Tags, clusterId)) leave("lambda-function", functionName, ownerOf(fn.Tags));
  else if (fn) {
    await rec.make(
      { action: "delete", kind: "lambda-function", name: functionName },
      () => clients.lambda.send(new DeleteFunctionCommand({ FunctionName: functionName })),
      undefined,
    );
  }

  const groups =
    (await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ Filters: filters() })))
      .AutoScalingGroups ?? [];
  for (const group of groups) {
    if (group.Status === "Delete in progress") continue;
    await rec.make(
      {
        action: "delete",
        kind: "auto-scaling-group",
        name: group.AutoScalingGroupName!,
        detail: `${group.Instances?.length ?? 0} instance(s)`,
      },
      () =>
        clients.autoScaling.send(
          new DeleteAutoScalingGroupCommand({
            AutoScalingGroupName: group.AutoScalingGroupName,
            ForceDelete: true,
          }),
        ),
      undefined,
    );
  }
  if (!rec.dryRun) {
    await waitFor(ctx, `the instances of cluster ${cluster} to terminate`, ctx.timeoutMs, async () => {
      const left = await clients.autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ Filters: filters() }),
      );
      const instances = await clients.ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            ...filters(),
            {
              Name: "instance-state-name",
              Values: ["pending", "running", "stopping", "stopped", "shutting-down"],
            },
          ],
        }),
      );
      return (
        (left.AutoScalingGroups ?? []).length === 0 &&
        (instances.Reservations ?? []).every((r) => !r.Instances?.length)
      );
    });
  }

  const templates =
    (await clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: filters() }))).LaunchTemplates ??
    [];
  for (const template of templates) {
    await rec.make(
      { action: "delete", kind: "launch-template", name: template.LaunchTemplateName! },
      () =>
        clients.ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: template.LaunchTemplateId })),
      undefined,
    );
  }

  // IAM lists no tags: each role and profile under the cluster's path is read for its owner tag.
  const PathPrefix = iamPath(cluster, region);
  const profiles =
    (await clients.iam.send(new ListInstanceProfilesCommand({ PathPrefix }))).InstanceProfiles ?? [];
  for (const listed of profiles) {
    const profile = (
      await ifExists(() =>
        clients.iam.send(new GetInstanceProfileCommand({ InstanceProfileName: listed.InstanceProfileName })),
      )
    )?.InstanceProfile;
    if (!profile) continue;
    if (!ownedBy(profile.Tags, clusterId)) {
      leave("instance-profile", profile.InstanceProfileName!, ownerOf(profile.Tags));
      continue;
    }
    await rec.make(
      { action: "delete", kind: "instance-profile", name: profile.InstanceProfileName! },
      async () => {
        for (const role of profile.Roles ?? []) {
          await clients.iam.send(
            new RemoveRoleFromInstanceProfileCommand({
              InstanceProfileName: profile.InstanceProfileName,
              RoleName: role.RoleName,
            }),
          );
        }
        await clients.iam.send(
          new DeleteInstanceProfileCommand({ InstanceProfileName: profile.InstanceProfileName }),
        );
      },
      undefined,
    );
  }
  const roles = (await clients.iam.send(new ListRolesCommand({ PathPrefix }))).Roles ?? [];
  for (const listed of roles) {
    const RoleName = listed.RoleName!;
    const role = (await ifExists(() => clients.iam.send(new GetRoleCommand({ RoleName }))))?.Role;
    if (!role) continue;
    if (!ownedBy(role.Tags, clusterId)) {
      leave("iam-role", RoleName, ownerOf(role.Tags));
      continue;
    }
    await rec.make(
      { action: "delete", kind: "iam-role", name: RoleName },
      async () => {
        for (const PolicyName of (await clients.iam.send(new ListRolePoliciesCommand({ RoleName })))
          .PolicyNames ?? []) {
          await clients.iam.send(new DeleteRolePolicyCommand({ RoleName, PolicyName }));
        }
        for (const attached of (await clients.iam.send(new ListAttachedRolePoliciesCommand({ RoleName })))
          .AttachedPolicies ?? []) {
          await clients.iam.send(new DetachRolePolicyCommand({ RoleName, PolicyArn: attached.PolicyArn }));
        }
        await clients.iam.send(new DeleteRoleCommand({ RoleName }));
      },
      undefined,
    );
  }

  const idParameter = clusterIdParameter(cluster);
  const parameters = [...(await storedParameterNames(ctx, cluster, clusterId))]
    .filter((name) => name !== idParameter)
    .sort();
  if (parameters.length > 0) {
    await rec.make(
      {
        action: "delete",
        kind: "pki",
        name: `/kubebake/${cluster}`,
        detail: `${parameters.length} parameters`,
      },
      async () => {
        for (let i = 0; i < parameters.length; i += 10) {
          await clients.ssm.send(new DeleteParametersCommand({ Names: parameters.slice(i, i + 10) }));
        }
      },
      undefined,
    );
  }

  // After the groups' volumes and the parameters it encrypted; the id goes later, so a rerun finds it.
  await destroyClusterKey(ctx, cluster, clusterId);

  // After the groups: no master writes a snapshot any more. The name is the account's and region's.
  const account = (await clients.sts.send(new GetCallerIdentityCommand({}))).Account!;
  await destroySnapshotBucket(ctx, snapshotBucketName(account, region, cluster), account, clusterId);

  for (const zone of await clusterZones(ctx, clusterId)) {
    await rec.make(
      { action: "delete", kind: "hosted-zone", name: zone.name },
      async () => {
        const records = await allRecords(ctx, zone.id);
        const apex = zone.name;
        const own = records.filter((r) => !(r.Name === apex && (r.Type === "SOA" || r.Type === "NS")));
        for (const record of own) {
          await clients.route53.send(
            new ChangeResourceRecordSetsCommand({
              HostedZoneId: zone.id,
              ChangeBatch: { Changes: [{ Action: "DELETE", ResourceRecordSet: record }] },
            }),
          );
        }
        await clients.route53.send(new DeleteHostedZoneCommand({ Id: zone.id }));
      },
      undefined,
    );
  }

  // Before the security groups, subnets and route table they use. AWS removes an interface endpoint's
  // network interfaces after answering, so what they hold is deleted with retries below.
  for (const endpoint of await liveEndpoints(clients, filters())) {
    await rec.make(
      { action: "delete", kind: "vpc-endpoint", name: nameTag(endpoint.Tags), detail: endpoint.ServiceName },
      () => clients.ec2.send(new DeleteVpcEndpointsCommand({ VpcEndpointIds: [endpoint.VpcEndpointId!] })),
      undefined,
    );
  }

  const groupsLeft =
    (await clients.ec2.send(new DescribeSecurityGroupsCommand({ Filters: filters() }))).SecurityGroups ?? [];
  for (const group of groupsLeft) {
    if ((group.IpPermissions ?? []).length === 0) continue;
    // The two groups refer to each other: drop the rules first, then the groups.
    await rec.make(
      { action: "update", kind: "security-group", name: group.GroupName!, detail: "revoke all rules" },
      () =>
        clients.ec2.send(
          new RevokeSecurityGroupIngressCommand({
            GroupId: group.GroupId,
            IpPermissions: group.IpPermissions,
          }),
        ),
      undefined,
    );
  }
  for (const group of groupsLeft) {
    await rec.make(
      { action: "delete", kind: "security-group", name: group.GroupName! },
      // Network interfaces of terminated instances can hold a group for a while.
      () =>
        retryWhile(ctx, "DependencyViolation", ctx.timeoutMs, () =>
          clients.ec2.send(new DeleteSecurityGroupCommand({ GroupId: group.GroupId })),
        ),
      undefined,
    );
  }

  const tables =
    (await clients.ec2.send(new DescribeRouteTablesCommand({ Filters: filters() }))).RouteTables ?? [];
  for (const table of tables) {
    await rec.make(
      { action: "delete", kind: "route-table", name: nameTag(table.Tags) },
      async () => {
        for (const association of table.Associations ?? []) {
          if (association.Main) continue;
          await clients.ec2.send(
            new DisassociateRouteTableCommand({ AssociationId: association.RouteTableAssociationId }),
          );
        }
        // A gateway endpoint's routes leave the table with the endpoint, shortly after its deletion.
        await retryWhile(ctx, "DependencyViolation", ctx.timeoutMs, () =>
          clients.ec2.send(new DeleteRouteTableCommand({ RouteTableId: table.RouteTableId })),
        );
      },
      undefined,
    );
  }
  const gateways =
    (await clients.ec2.send(new DescribeInternetGatewaysCommand({ Filters: filters() }))).InternetGateways ??
    [];
  for (const gateway of gateways) {
    await rec.make(
      { action: "delete", kind: "internet-gateway", name: nameTag(gateway.Tags) },
      async () => {
        for (const attachment of gateway.Attachments ?? []) {
          await clients.ec2.send(
            new DetachInternetGatewayCommand({
              InternetGatewayId: gateway.InternetGatewayId,
              VpcId: attachment.VpcId,
            }),
          );
        }
        await clients.ec2.send(
          new DeleteInternetGatewayCommand({ InternetGatewayId: gateway.InternetGatewayId }),
        );
      },
      undefined,
    );
  }
  const subnets = (await clients.ec2.send(new DescribeSubnetsCommand({ Filters: filters() }))).Subnets ?? [];
  for (const subnet of subnets) {
    await rec.make(
      { action: "delete", kind: "subnet", name: nameTag(subnet.Tags) },
      () =>
        retryWhile(ctx, "DependencyViolation", ctx.timeoutMs, () =>
          clients.ec2.send(new DeleteSubnetCommand({ SubnetId: subnet.SubnetId })),
        ),
      undefined,
    );
  }
  const vpcs = (await clients.ec2.send(new DescribeVpcsCommand({ Filters: filters() }))).Vpcs ?? [];
  for (const vpc of vpcs) {
    await rec.make(
      { action: "delete", kind: "vpc", name: nameTag(vpc.Tags) },
      () =>
        retryWhile(ctx, "DependencyViolation", ctx.timeoutMs, () =>
          clients.ec2.send(new DeleteVpcCommand({ VpcId: vpc.VpcId })),
        ),
      undefined,
    );
  }
  // Last: until now, a destroy that stopped half-way finds what is left by this id.
  await rec.make(
    { action: "delete", kind: "cluster-id", name: idParameter },
    () => clients.ssm.send(new DeleteParameterCommand({ Name: idParameter })),
    undefined,
  );
}

/** The cluster's private zones: named `<cluster>.…` and owned by its id (other regions' are not). */
export async function clusterZones(
  ctx: Pick<BaseContext, "clients"> & { cluster: string },
  clusterId: string,
) {
  const zones: { id: string; name: string }[] = [];
  let Marker: string | undefined;
  do {
    const page = await ctx.clients.route53.send(new ListHostedZonesCommand({ Marker }));
    for (const zone of page.HostedZones ?? []) {
      if (!zone.Config?.PrivateZone || !zone.Name?.toLowerCase().startsWith(`${ctx.cluster}.`)) continue;
      const id = bareZoneId(zone.Id!);
      const tags = await ctx.clients.route53.send(
        new ListTagsForResourceCommand({ ResourceType: "hostedzone", ResourceId: id }),
      );
      const tagMap = Object.fromEntries(
        (tags.ResourceTagSet?.Tags ?? []).map((t) => [t.Key!, t.Value ?? ""]),
      );
      if (zoneOwned({ tags: tagMap, callerReference: zone.CallerReference ?? "" }, clusterId)) {
        zones.push({ id, name: zone.Name.toLowerCase() });
      }
    }
    Marker = page.IsTruncated ? page.NextMarker : undefined;
  } while (Marker);
  return zones;
}

async function allRecords(ctx: Pick<BaseContext, "clients">, zoneId: string): Promise<ResourceRecordSet[]> {
  const records: ResourceRecordSet[] = [];
  let start: {
    StartRecordName?: string;
    StartRecordType?: ResourceRecordSet["Type"];
    StartRecordIdentifier?: string;
  } = {};
  for (;;) {
    const page = await ctx.clients.route53.send(
      new ListResourceRecordSetsCommand({ HostedZoneId: zoneId, ...start }),
    );
    records.push(...(page.ResourceRecordSets ?? []));
    if (!page.IsTruncated) return records;
    start = {
      StartRecordName: page.NextRecordName,
      StartRecordType: page.NextRecordType,
      StartRecordIdentifier: page.NextRecordIdentifier,
    };
  }
}
