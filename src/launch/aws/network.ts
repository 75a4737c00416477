/**
 * The network: an existing VPC checked, or kubebake's own VPC, subnets and route table, either private
 * (VPC endpoints, no public IPs, no internet gateway) or public (public IPs, an internet gateway and a
 * default route). A switch between the two adds what the new kind needs first (ensureNetwork) and removes
 * what only the old kind needed last, once the rollout has replaced the nodes (retireUnusedAccess).
 */
import {
  AssociateRouteTableCommand,
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateRouteTableCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DeleteInternetGatewayCommand,
  DeleteRouteCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInternetGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSubnetsCommand,
  DescribeVpcAttributeCommand,
  DescribeVpcsCommand,
  DetachInternetGatewayCommand,
  ModifySubnetAttributeCommand,
  ModifyVpcAttributeCommand,
  type InternetGateway,
  type ResourceType,
  type RouteTable,
} from "@aws-sdk/client-ec2";
import { unreachableFromPrivate } from "../../cluster/schema";
import { invalidInput } from "../../errors";
import { isPlanned, plannedId } from "../changes";
import { named, tagFilters, type BaseContext, type Context } from "./context";
import { asTagList, internetChoice, resourceName, subnetCidrs, tagsFor } from "./desired";
import { checkEndpointServices, ensureEndpoints, removeEndpoints, type EndpointService } from "./endpoints";

export interface Network {
  vpcId: string;
  subnetIds: string[];
}

/**
 * What the spec's network is checked to be, before anything is created: an existing one, or kubebake's
 * own in these zones, private (with the endpoint services the region offers) or public.
 */
export type CheckedNetwork =
  { existing: Network } | { zones: string[]; internet: boolean; endpointServices: EndpointService[] };

/** Whether nodes of this network may have public IPs; undefined for a VPC that is not kubebake's. */
export const publicNodes = (checked: CheckedNetwork): boolean | undefined =>
  "existing" in checked ? undefined : checked.internet;

const DEFAULT_ROUTE = "0.0.0.0/0";

const tagSpec = (ctx: Context, type: ResourceType, logical: string) => [
  { ResourceType: type, Tags: asTagList(tagsFor(ctx.inputs.spec, logical, ctx.clusterId)) },
];

/**
 * Reads only: the existing VPC and subnets checked, or the spec's zones checked against the region's and
 * the kind of network decided (internetChoice: the cluster's internet gateway, if it has an id yet, keeps
 * a cluster public when the spec does not say).
 */
export async function checkNetwork(ctx: BaseContext, clusterId: string | undefined): Promise<CheckedNetwork> {
  const { network } = ctx.inputs.spec;
  if (network.vpc && network.subnets)
    return { existing: await checkExisting(ctx, network.vpc, network.subnets) };
  const zones = await clusterZones(ctx);
  const gateway = clusterId ? await clusterGateway(ctx, clusterId) : undefined;
  const choice = internetChoice(ctx.inputs.spec, gateway !== undefined);
  if (choice.defaulted) ctx.rec.info(choice.defaulted);
  if (choice.internet) return { zones, internet: true, endpointServices: [] };
  const why = choice.defaulted ? "network.internet unset: private by default" : "network.internet: false";
  const [unreachable] = unreachableFromPrivate(network, why);
  if (unreachable) throw invalidInput(`${unreachable.field}: ${unreachable.message}`);
  for (const field of ["apiAccess", "sshAccess"] as const) {
    if (network[field].length === 0) continue;
    ctx.rec.info(
      `network.${field}: nodes of a private network have no public address; ${network[field].join(", ")} reach them only through a path you add to the VPC (a VPN, peering, a Transit Gateway) or from a bastion in it`,
    );
  }
  return { zones, internet: false, endpointServices: await checkEndpointServices(ctx, zones) };
}

export async function ensureNetwork(ctx: Context, checked: CheckedNetwork): Promise<Network> {
  if ("existing" in checked) return checked.existing;
  const vpcId = await ensureVpc(ctx, checked.internet);
  const subnets = await ensureSubnets(ctx, vpcId, checked.zones, checked.internet);
  const subnetIds = subnets.map((s) => s.id);
  const gatewayId = checked.internet ? await ensureInternetGateway(ctx, vpcId) : undefined;
  const routeTableId = await ensureRouteTable(ctx, vpcId, subnetIds, gatewayId);
  if (!checked.internet)
    await ensureEndpoints(ctx, { vpcId, subnets, routeTableId }, checked.endpointServices);
  return { vpcId, subnetIds };
}

/**
 * After the rollout, what only the other kind of network needed: a private network's default route and
 * internet gateway (AWS refuses to detach a gateway while an instance of the VPC has a public IP: the
 * rollout replaced those), or a public network's endpoints (its nodes reach AWS through the gateway now).
 */
export async function retireUnusedAccess(
  ctx: Context,
  checked: CheckedNetwork,
  vpcId: string,
): Promise<void> {
  if ("existing" in checked) return;
  if (checked.internet) return removeEndpoints(ctx, vpcId);
  await removeDefaultRoute(ctx);
  await removeInternetGateway(ctx);
}

/** A private network has no default route: one to the gateway, or one added by hand (a NAT), goes. */
async function removeDefaultRoute(ctx: Context): Promise<void> {
  const table = await clusterRouteTable(ctx);
  const route = table?.Routes?.find((r) => r.DestinationCidrBlock === DEFAULT_ROUTE);
  if (!table || !route) return;
  await ctx.rec.make(
    {
      action: "update",
      kind: "route-table",
      name: resourceName(ctx.inputs.spec.name, "routes"),
      detail: `remove the default route to ${route.GatewayId ?? route.NatGatewayId ?? "its target"}`,
    },
    () =>
      ctx.clients.ec2.send(
        new DeleteRouteCommand({ RouteTableId: table.RouteTableId, DestinationCidrBlock: DEFAULT_ROUTE }),
      ),
    undefined,
  );
}

async function removeInternetGateway(ctx: Context): Promise<void> {
  const gateway = await clusterGateway(ctx, ctx.clusterId);
  if (!gateway) return;
  const name = resourceName(ctx.inputs.spec.name, "igw");
  const InternetGatewayId = gateway.InternetGatewayId;
  for (const { VpcId } of gateway.Attachments ?? []) {
    await ctx.rec.make(
      { action: "update", kind: "internet-gateway", name, detail: `detach from ${VpcId}` },
      () => ctx.clients.ec2.send(new DetachInternetGatewayCommand({ InternetGatewayId, VpcId })),
      undefined,
    );
  }
  await ctx.rec.make(
    { action: "delete", kind: "internet-gateway", name },
    () => ctx.clients.ec2.send(new DeleteInternetGatewayCommand({ InternetGatewayId })),
    undefined,
  );
}

const filtersOf = (ctx: Pick<Context, "inputs">, clusterId: string, logical?: string) =>
  tagFilters(ctx.inputs.spec.name, clusterId, logical);

/** The cluster's internet gateway, if it has one. */
async function clusterGateway(ctx: BaseContext, clusterId: string): Promise<InternetGateway | undefined> {
  const answer = await ctx.clients.ec2.send(
    new DescribeInternetGatewaysCommand({ Filters: filtersOf(ctx, clusterId, "igw") }),
  );
  return answer.InternetGateways?.[0];
}

async function clusterRouteTable(ctx: Context): Promise<RouteTable | undefined> {
  const answer = await ctx.clients.ec2.send(
    new DescribeRouteTablesCommand({ Filters: filtersOf(ctx, ctx.clusterId, "routes") }),
  );
  return answer.RouteTables?.[0];
}

async function ensureVpc(ctx: Context, internet: boolean): Promise<string> {
  const { network } = ctx.inputs.spec;
  const { ec2 } = ctx.clients;
  const found = await ec2.send(new DescribeVpcsCommand({ Filters: filtersOf(ctx, ctx.clusterId, "vpc") }));
  const vpcName = resourceName(ctx.inputs.spec.name, "vpc");
  let vpcId = found.Vpcs?.[0]?.VpcId;
  const created = !vpcId;
  if (!vpcId) {
    const kind = internet ? "public: internet gateway, public IPs" : "private: VPC endpoints, no internet";
    vpcId = await ctx.rec.make(
      { action: "create", kind: "vpc", name: vpcName, detail: `${network.cidr}, ${kind}` },
      async () =>
        (
          await ec2.send(
            new CreateVpcCommand({ CidrBlock: network.cidr, TagSpecifications: tagSpec(ctx, "vpc", "vpc") }),
          )
        ).Vpc!.VpcId!,
      plannedId("vpc"),
    );
  }
  // A private hosted zone (and an endpoint's private DNS) answers only in a VPC with DNS support and
  // hostnames. A VPC created by this run gets both set without a read, so that the plan (which cannot
  // read it) lists what apply does.
  for (const attribute of ["enableDnsSupport", "enableDnsHostnames"] as const) {
    const enabled =
      !created &&
      (await ec2.send(new DescribeVpcAttributeCommand({ VpcId: vpcId, Attribute: attribute })))[
        attribute === "enableDnsSupport" ? "EnableDnsSupport" : "EnableDnsHostnames"
      ]?.Value;
    if (!enabled) {
      await ctx.rec.make(
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
  return vpcId;
}

/** One /20 subnet per zone, mapping public IPs on launch exactly when the network is public. */
async function ensureSubnets(ctx: Context, vpcId: string, zones: string[], internet: boolean) {
  const { spec } = ctx.inputs;
  const { ec2 } = ctx.clients;
  const cidrs = subnetCidrs(spec.network.cidr, zones.length);
  const existing = isPlanned(vpcId)
    ? []
    : ((
        await ec2.send(
          new DescribeSubnetsCommand({ Filters: [...filtersOf(ctx, ctx.clusterId), vpcFilter(vpcId)] }),
        )
      ).Subnets ?? []);
  const subnets: { id: string; zone: string }[] = [];
  for (const [i, zone] of zones.entries()) {
    const logical = `subnet-${zone}`;
    const name = resourceName(spec.name, logical);
    const subnet = existing.find(named(logical));
    const id =
      subnet?.SubnetId ??
      (await ctx.rec.make(
        { action: "create", kind: "subnet", name, detail: cidrs[i] },
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
      ));
    // A new subnet maps none (AWS's default outside default VPCs). Public nodes reach AWS and registries
    // through their public IPs, which spares a paid NAT gateway; private nodes get none.
    if ((subnet?.MapPublicIpOnLaunch ?? false) !== internet) {
      await ctx.rec.make(
        {
          action: "update",
          kind: "subnet",
          name,
          detail: internet ? "public IPs on launch" : "no public IPs on launch",
        },
        () =>
          ec2.send(
            new ModifySubnetAttributeCommand({ SubnetId: id, MapPublicIpOnLaunch: { Value: internet } }),
          ),
        undefined,
      );
    }
    subnets.push({ id, zone });
  }
  return subnets;
}

async function ensureInternetGateway(ctx: Context, vpcId: string): Promise<string> {
  const name = resourceName(ctx.inputs.spec.name, "igw");
  const gateway = await clusterGateway(ctx, ctx.clusterId);
  const gatewayId =
    gateway?.InternetGatewayId ??
    (await ctx.rec.make(
      { action: "create", kind: "internet-gateway", name },
      async () =>
        (
          await ctx.clients.ec2.send(
            new CreateInternetGatewayCommand({ TagSpecifications: tagSpec(ctx, "internet-gateway", "igw") }),
          )
        ).InternetGateway!.InternetGatewayId!,
      plannedId("igw"),
    ));
  if (!gateway?.Attachments?.some((a) => a.VpcId === vpcId)) {
    await ctx.rec.make(
      {
        action: "update",
        kind: "internet-gateway",
        name,
        detail: `attach to ${resourceName(ctx.inputs.spec.name, "vpc")}`,
      },
      () =>
        ctx.clients.ec2.send(
          new AttachInternetGatewayCommand({ InternetGatewayId: gatewayId, VpcId: vpcId }),
        ),
      undefined,
    );
  }
  return gatewayId;
}

/** The cluster's route table for its subnets; with a gateway (public), the default route to it. */
async function ensureRouteTable(
  ctx: Context,
  vpcId: string,
  subnetIds: string[],
  gatewayId: string | undefined,
): Promise<string> {
  const { ec2 } = ctx.clients;
  const name = resourceName(ctx.inputs.spec.name, "routes");
  const table = await clusterRouteTable(ctx);
  const tableId =
    table?.RouteTableId ??
    (await ctx.rec.make(
      { action: "create", kind: "route-table", name },
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
  const routed = table?.Routes?.some(
    (r) => r.DestinationCidrBlock === DEFAULT_ROUTE && r.GatewayId === gatewayId,
  );
  if (gatewayId && !routed) {
    await ctx.rec.make(
      { action: "update", kind: "route-table", name, detail: "default route to the internet gateway" },
      () =>
        ec2.send(
          new CreateRouteCommand({
            RouteTableId: tableId,
            DestinationCidrBlock: DEFAULT_ROUTE,
            GatewayId: gatewayId,
          }),
        ),
      undefined,
    );
  }
  for (const subnetId of subnetIds) {
    if (table?.Associations?.some((a) => a.SubnetId === subnetId)) continue;
    await ctx.rec.make(
      { action: "update", kind: "route-table", name, detail: `associate ${subnetId}` },
      () => ec2.send(new AssociateRouteTableCommand({ RouteTableId: tableId, SubnetId: subnetId })),
      undefined,
    );
  }
  return tableId;
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

/**
 * An existing VPC is the operator's: kubebake creates no endpoints there and changes no route. Its nodes
 * need a way to SSM, Auto Scaling and S3 that the operator provides (VPC endpoints or a NAT gateway).
 */
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
