/** The network: an existing VPC checked, or kubebake's own VPC, subnets, internet gateway and routes. */
import {
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInternetGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  DescribeVpcAttributeCommand,
  DescribeVpcsCommand,
  ModifySubnetAttributeCommand,
  ModifyVpcAttributeCommand,
  type ResourceType,
} from "@aws-sdk/client-ec2";
import { invalidInput } from "../../errors";
import { isPlanned, plannedId } from "../changes";
import { named, tagFilters, type BaseContext, type Context } from "./context";
import { asTagList, resourceName, subnetCidrs, tagsFor } from "./desired";

export interface Network {
  vpcId: string;
  subnetIds: string[];
}

/** What the spec's network is checked to be, before anything is created: an existing one, or zones for ours. */
export type CheckedNetwork = { existing: Network } | { zones: string[] };

const tagSpec = (ctx: Context, type: ResourceType, logical: string) => [
  { ResourceType: type, Tags: asTagList(tagsFor(ctx.inputs.spec, logical, ctx.clusterId)) },
];

/** Reads only: the existing VPC and subnets checked, or the spec's zones checked against the region's. */
export async function checkNetwork(ctx: BaseContext): Promise<CheckedNetwork> {
  const { network } = ctx.inputs.spec;
  if (network.vpc && network.subnets)
    return { existing: await checkExisting(ctx, network.vpc, network.subnets) };
  return { zones: await clusterZones(ctx) };
}

export async function ensureNetwork(ctx: Context, checked: CheckedNetwork): Promise<Network> {
  if ("existing" in checked) return checked.existing;
  const { network } = ctx.inputs.spec;
  const { ec2 } = ctx.clients;
  const rec = ctx.rec;
  const { zones } = checked;
  const filters = (logical?: string) => tagFilters(ctx.inputs.spec.name, ctx.clusterId, logical);

  const found = await ec2.send(new DescribeVpcsCommand({ Filters: filters("vpc") }));
  const vpcName = resourceName(ctx.inputs.spec.name, "vpc");
  let vpcId = found.Vpcs?.[0]?.VpcId;
  const created = !vpcId;
  if (!vpcId) {
    vpcId = await rec.make(
      { action: "create", kind: "vpc", name: vpcName, detail: network.cidr },
      async () =>
        (
          await ec2.send(
            new CreateVpcCommand({ CidrBlock: network.cidr, TagSpecifications: tagSpec(ctx, "vpc", "vpc") }),
          )
        ).Vpc!.VpcId!,
      plannedId("vpc"),
    );
  }
  // A private hosted zone answers only in a VPC with DNS support and hostnames. A VPC created by this
  // run gets both set without a read, so that the plan (which cannot read it) lists what apply does.
  for (const attribute of ["enableDnsSupport", "enableDnsHostnames"] as const) {
    const enabled =
      !created &&
      (await ec2.send(new DescribeVpcAttributeCommand({ VpcId: vpcId, Attribute: attribute })))[
        attribute === "enableDnsSupport" ? "EnableDnsSupport" : "EnableDnsHostnames"
      ]?.Value;
    if (!enabled) {
      await rec.make(
        { action: "update", kind: "vpc", name: vpcName, detail: `${attribute} on` },
        () =>
          ec2.send(
            new ModifyVpcAttributeCommand(
              attribute === "enableDnsSupport"
                ? { VpcId: vpcId, EnableDnsSupport: { Value: true } }
                : { VpcId: vpcId, EnableDnsHostnames: { Value: true } },
            ),
          ),
        undefined,
      );
    }
  }

  const cidrs = subnetCidrs(network.cidr, zones.length);
  const existing = isPlanned(vpcId)
    ? []
    : ((await ec2.send(new DescribeSubnetsCommand({ Filters: [...filters(), vpcFilter(vpcId)] }))).Subnets ??
      []);
  const subnetIds: string[] = [];
  for (const [i, zone] of zones.entries()) {
    const logical = `subnet-${zone}`;
    const subnet = existing.find(named(logical));
    let subnetId = subnet?.SubnetId;
    if (!subnetId) {
      subnetId = await rec.make(
        {
          action: "create",
          kind: "subnet",
          name: resourceName(ctx.inputs.spec.name, logical),
          detail: cidrs[i],
        },
        async () =>
          (
            await ec2.send(
              new CreateSubnetCommand({
                VpcId: vpcId,
                AvailabilityZone: zone,
                CidrBlock: cidrs[i],
                TagSpecifications: tagSpec(ctx, "subnet", logical),
              }),
            )
          ).Subnet!.SubnetId!,
        plannedId(logical),
      );
    }
    // Nodes need outbound access (SSM, image registries); public addresses avoid a paid NAT gateway.
    if (!subnet?.MapPublicIpOnLaunch) {
      await rec.make(
        {
          action: "update",
          kind: "subnet",
          name: resourceName(ctx.inputs.spec.name, logical),
          detail: "public IPs on launch",
        },
        () =>
          ec2.send(
            new ModifySubnetAttributeCommand({ SubnetId: subnetId, MapPublicIpOnLaunch: { Value: true } }),
          ),
        undefined,
      );
    }
    subnetIds.push(subnetId);
  }

  const igwName = resourceName(ctx.inputs.spec.name, "igw");
  const igw = (await ec2.send(new DescribeInternetGatewaysCommand({ Filters: filters("igw") })))
    .InternetGateways?.[0];
  const igwId =
    igw?.InternetGatewayId ??
    (await rec.make(
      { action: "create", kind: "internet-gateway", name: igwName },
      async () =>
        (
          await ec2.send(
            new CreateInternetGatewayCommand({ TagSpecifications: tagSpec(ctx, "internet-gateway", "igw") }),
          )
        ).InternetGateway!.InternetGatewayId!,
      plannedId("igw"),
    ));
  if (!igw?.Attachments?.some((a) => a.VpcId === vpcId)) {
    await rec.make(
      { action: "update", kind: "internet-gateway", name: igwName, detail: `attach to ${vpcName}` },
      () => ec2.send(new AttachInternetGatewayCommand({ InternetGatewayId: igwId, VpcId: vpcId })),
      undefined,
    );
  }

  const routesName = resourceName(ctx.inputs.spec.name, "routes");
  const table = (await ec2.send(new DescribeRouteTablesCommand({ Filters: filters("routes") })))
    .RouteTables?.[0];
  const tableId =
    table?.RouteTableId ??
    (await rec.make(
      { action: "create", kind: "route-table", name: routesName },
      async () =>
        (
          await ec2.send(
            new CreateRouteTableCommand({
              VpcId: vpcId,
              TagSpecifications: tagSpec(ctx, "route-table", "routes"),
            }),
          )
        ).RouteTable!.RouteTableId!,
      plannedId("routes"),
    ));
  if (!table?.Routes?.some((r) => r.DestinationCidrBlock === "0.0.0.0/0" && r.GatewayId === igwId)) {
    await rec.make(
      {
        action: "update",
        kind: "route-table",
        name: routesName,
        detail: "default route to the internet gateway",
      },
      () =>
        ec2.send(
          new CreateRouteCommand({
            RouteTableId: tableId,
            DestinationCidrBlock: "0.0.0.0/0",
            GatewayId: igwId,
          }),
        ),
      undefined,
    );
  }
  for (const subnetId of subnetIds) {
    if (table?.Associations?.some((a) => a.SubnetId === subnetId)) continue;
    await rec.make(
      { action: "update", kind: "route-table", name: routesName, detail: `associate ${subnetId}` },
      () => ec2.send(new AssociateRouteTableCommand({ RouteTableId: tableId, SubnetId: subnetId })),
      undefined,
    );
  }
  return { vpcId, subnetIds };
}

const vpcFilter = (vpcId: string) => ({ Name: "vpc-id", Values: [vpcId] });

/** The spec's zones, checked against the region's; or the region's first three. */
async function clusterZones(ctx: BaseContext): Promise<string[]> {
  const answer = await ctx.clients.ec2.send(
    new DescribeAvailabilityZonesCommand({ Filters: [{ Name: "state", Values: ["available"] }] }),
  );
  const available = (answer.AvailabilityZones ?? [])
    .filter((z) => (z.ZoneType ?? "availability-zone") === "availability-zone")
    .map((z) => z.ZoneName!)
    .sort();
  const wanted = ctx.inputs.spec.network.zones;
  if (!wanted) return available.slice(0, 3);
  const unknown = wanted.findIndex((zone) => !available.includes(zone));
  if (unknown >= 0) {
    throw invalidInput(
      `network.zones[${unknown}]: ${wanted[unknown]} is not an available zone of ${ctx.inputs.spec.region} (${available.join(", ")})`,
    );
  }
  return wanted;
}

async function checkExisting(ctx: BaseContext, vpcId: string, subnetIds: string[]): Promise<Network> {
  const { ec2 } = ctx.clients;
  const vpcs = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: "vpc-id", Values: [vpcId] }] }));
  if (!vpcs.Vpcs?.length)
    throw invalidInput(`network.vpc: ${vpcId} does not exist in ${ctx.inputs.spec.region}`);
  const subnets = await ec2.send(
    new DescribeSubnetsCommand({ Filters: [{ Name: "subnet-id", Values: subnetIds }] }),
  );
  for (const id of subnetIds) {
    const subnet = subnets.Subnets?.find((s) => s.SubnetId === id);
    if (!subnet) throw invalidInput(`network.subnets: ${id} does not exist in ${ctx.inputs.spec.region}`);
    if (subnet.VpcId !== vpcId)
      throw invalidInput(`network.subnets: ${id} is in ${subnet.VpcId}, not in ${vpcId}`);
  }
  for (const attribute of ["enableDnsSupport", "enableDnsHostnames"] as const) {
    const answer = await ec2.send(new DescribeVpcAttributeCommand({ VpcId: vpcId, Attribute: attribute }));
    const value = attribute === "enableDnsSupport" ? answer.EnableDnsSupport : answer.EnableDnsHostnames;
    if (!value?.Value) {
      throw invalidInput(
        `network.vpc: ${vpcId} needs ${attribute} (private DNS discovery); kubebake does not change a VPC it does not own`,
      );
    }
  }
  return { vpcId, subnetIds };
}
