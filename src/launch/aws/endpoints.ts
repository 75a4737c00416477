/**
 * A private network's VPC endpoints (NODE_ENDPOINTS in desired.ts) and the interface endpoints' security
 * group: how nodes without internet reach the AWS APIs they call. A public network has none: after a
 * switch to public they are deleted, once no node needs them (network.ts, retireUnusedAccess).
 */
import {
  CreateVpcEndpointCommand,
  DeleteSecurityGroupCommand,
  DeleteVpcEndpointsCommand,
  DescribeSecurityGroupsCommand,
  DescribeVpcEndpointServicesCommand,
  DescribeVpcEndpointsCommand,
  ModifyVpcEndpointCommand,
  type Filter,
  type ModifyVpcEndpointRequest,
  type SecurityGroup,
  type ServiceDetail,
  type VpcEndpoint,
} from "@aws-sdk/client-ec2";
import { isDeepStrictEqual } from "node:util";
import type { Role } from "../../discover/names";
import { invalidInput } from "../../errors";
import { isPlanned } from "../changes";
import type { AwsClients } from "./clients";
import { named, retryWhile, tagFilters, waitFor, type BaseContext, type Context } from "./context";
import {
  asTagList,
  endpointPolicy,
  endpointSecurityGroupRules,
  endpointServiceNames,
  NODE_ENDPOINTS,
  resourceName,
  tagsFor,
  type NodeEndpoint,
} from "./desired";
import { assertOwned } from "./owner";
import { convergeIngress, createSecurityGroup } from "./security";

/** A node endpoint as the region offers it: its service name there, zones and policy support. */
export interface EndpointService extends NodeEndpoint {
  name: string;
  zones: string[];
  policySupported: boolean;
}

/** Where a private network's endpoints go: the VPC, its subnets (one per zone) and route table. */
export interface EndpointPlacement {
  vpcId: string;
  subnets: { id: string; zone: string }[];
  routeTableId: string;
}

const ENDPOINTS_GROUP = "endpoints";
/** How long apply waits for new endpoints to serve (AWS takes a minute or two). */
const AVAILABLE_TIMEOUT_MS = 10 * 60_000;
/** How long an endpoint's network interfaces may keep its security group after the endpoint's deletion. */
const RELEASE_TIMEOUT_MS = 10 * 60_000;

/**
 * Reads only: each node endpoint's service as the region offers it, or exit 2 when it offers none (or
 * none in the cluster's zones). Read whole, without filters: moto 5.2.1's service-name filter fails
 * (KeyError 'Value'); AWS answers in one or two pages either way.
 */
export async function checkEndpointServices(ctx: BaseContext, zones: string[]): Promise<EndpointService[]> {
  const { region } = ctx.inputs.spec;
  const offered: ServiceDetail[] = [];
  let NextToken: string | undefined;
  do {
    const page = await ctx.clients.ec2.send(new DescribeVpcEndpointServicesCommand({ NextToken }));
    offered.push(...(page.ServiceDetails ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return NODE_ENDPOINTS.map((endpoint) => {
    const names = endpointServiceNames(region, endpoint.service);
    const detail = offered.find(
      (d) =>
        names.includes(d.ServiceName ?? "") && d.ServiceType?.some((t) => t.ServiceType === endpoint.type),
    );
    if (!detail) {
      throw invalidInput(
        `network.internet: a private network needs a ${endpoint.type} VPC endpoint for ${names[0]}, which ${region} does not offer; set network.internet: true`,
      );
    }
    const served = detail.AvailabilityZones ?? [];
    // A zone without the service reaches it in another zone; a cluster in none of its zones cannot.
    if (endpoint.type === "Interface" && served.length > 0 && !zones.some((z) => served.includes(z))) {
      throw invalidInput(
        `network.zones: ${detail.ServiceName} is offered only in ${served.join(", ")}, none of the cluster's zones (${zones.join(", ")}); add one of them, or set network.internet: true`,
      );
    }
    return {
      ...endpoint,
      name: detail.ServiceName!,
      zones: served,
      policySupported: detail.VpcEndpointPolicySupported ?? false,
    };
  });
}

/** Endpoints that serve or may still (AWS, and moto, list deleted ones for a while), by service name. */
export async function liveEndpoints(clients: AwsClients, filters: Filter[]): Promise<VpcEndpoint[]> {
  const found = (await clients.ec2.send(new DescribeVpcEndpointsCommand({ Filters: filters }))).VpcEndpoints;
  return (found ?? [])
    .filter((e) => !/^(deleting|deleted)$/i.test(e.State ?? ""))
    .sort((a, b) => (a.ServiceName ?? "").localeCompare(b.ServiceName ?? ""));
}

const vpcFilter = (vpcId: string): Filter => ({ Name: "vpc-id", Values: [vpcId] });
const nameTag = (e: VpcEndpoint) => e.Tags?.find((t) => t.Key === "Name")?.Value ?? e.VpcEndpointId!;

/** The cluster's live endpoints in its VPC (none to read in a VPC this plan only creates). */
const clusterEndpoints = (ctx: Context, vpcId: string) =>
  isPlanned(vpcId)
    ? Promise.resolve([])
    : liveEndpoints(ctx.clients, [...tagFilters(ctx.inputs.spec.name, ctx.clusterId), vpcFilter(vpcId)]);

/** Every node endpoint as desired, in a private network; an endpoint of ours that is not desired goes. */
export async function ensureEndpoints(
  ctx: Context,
  placement: EndpointPlacement,
  services: EndpointService[],
): Promise<void> {
  const groupId = await ensureEndpointsGroup(ctx, placement.vpcId);
  const found = await clusterEndpoints(ctx, placement.vpcId);
  for (const service of services) {
    const endpoint = found.find(named(service.logical));
    const want = desiredEndpoint(ctx, service, placement, groupId);
    if (endpoint) await reconcileEndpoint(ctx, endpoint, want);
    else await createEndpoint(ctx, placement.vpcId, service, want);
  }
  const stray = found.filter((e) => !services.some((s) => named(s.logical)(e)));
  for (const endpoint of stray) await deleteEndpoint(ctx, endpoint);
  if (ctx.rec.dryRun) return;
  // Before anything relies on them (new nodes, or the retirement of the internet gateway).
  await waitFor(ctx, "the VPC endpoints to be available", AVAILABLE_TIMEOUT_MS, async () =>
    (await clusterEndpoints(ctx, placement.vpcId)).every((e) => /^available$/i.test(e.State ?? "")),
  );
}

/** A public network's: the endpoints and their security group, deleted once no node needs them. */
export async function removeEndpoints(ctx: Context, vpcId: string): Promise<void> {
  for (const endpoint of await clusterEndpoints(ctx, vpcId)) await deleteEndpoint(ctx, endpoint);
  const group = await findEndpointsGroup(ctx, vpcId);
  if (!group) return;
  await ctx.rec.make(
    { action: "delete", kind: "security-group", name: group.GroupName! },
    // The endpoints' network interfaces hold the group until AWS has removed them.
    () =>
      retryWhile(ctx, "DependencyViolation", RELEASE_TIMEOUT_MS, () =>
        ctx.clients.ec2.send(new DeleteSecurityGroupCommand({ GroupId: group.GroupId })),
      ),
    undefined,
  );
}

interface DesiredEndpoint {
  subnetIds: string[];
  groupIds: string[];
  routeTableIds: string[];
  /** Undefined where the service takes no endpoint policy (AWS then allows everything). */
  policy?: object;
}

function desiredEndpoint(
  ctx: Context,
  service: EndpointService,
  placement: EndpointPlacement,
  groupId: string,
): DesiredEndpoint {
  const policy = service.policySupported ? endpointPolicy(ctx.inputs, service) : undefined;
  if (service.type === "Gateway") {
    return { subnetIds: [], groupIds: [], routeTableIds: [placement.routeTableId], policy };
  }
  // One interface per zone, in the cluster's subnet there; only in zones the service is offered in.
  const served = placement.subnets.filter(
    (s) => service.zones.length === 0 || service.zones.includes(s.zone),
  );
  return { subnetIds: served.map((s) => s.id), groupIds: [groupId], routeTableIds: [], policy };
}

async function createEndpoint(ctx: Context, vpcId: string, service: EndpointService, want: DesiredEndpoint) {
  const { spec } = ctx.inputs;
  const where =
    service.type === "Gateway"
      ? `on ${resourceName(spec.name, "routes")}`
      : `private DNS, ${want.subnetIds.length} subnet(s)`;
  await ctx.rec.make(
    {
      action: "create",
      kind: "vpc-endpoint",
      name: resourceName(spec.name, service.logical),
      detail: `${service.type} ${service.name}, ${where}`,
    },
    () =>
      ctx.clients.ec2.send(
        new CreateVpcEndpointCommand({
          VpcId: vpcId,
          ...endpointTarget(service, want),
          TagSpecifications: [
            {
              ResourceType: "vpc-endpoint",
              Tags: asTagList(tagsFor(spec, service.logical, ctx.clusterId)),
            },
          ],
        }),
      ),
    undefined,
  );
}

function endpointTarget(service: EndpointService, want: DesiredEndpoint) {
  const policy = want.policy ? { PolicyDocument: JSON.stringify(want.policy) } : {};
  return service.type === "Gateway"
    ? {
        ServiceName: service.name,
        VpcEndpointType: service.type,
        RouteTableIds: want.routeTableIds,
        ...policy,
      }
    : {
        ServiceName: service.name,
        VpcEndpointType: service.type,
        SubnetIds: want.subnetIds,
        SecurityGroupIds: want.groupIds,
        // The service's own name (ssm.<region>.amazonaws.com…) answers with the endpoint's addresses in
        // the VPC, so the node scripts call the same names with or without internet.
        PrivateDnsEnabled: true,
        ...policy,
      };
}

/** An endpoint's differences from the desired one, repaired by one ModifyVpcEndpoint. */
async function reconcileEndpoint(ctx: Context, endpoint: VpcEndpoint, want: DesiredEndpoint) {
  const modify: ModifyVpcEndpointRequest = { VpcEndpointId: endpoint.VpcEndpointId };
  const differences = [
    idChanges(modify, "subnets", endpoint.SubnetIds, want.subnetIds, "SubnetIds"),
    idChanges(
      modify,
      "security groups",
      endpoint.Groups?.map((g) => g.GroupId!),
      want.groupIds,
      "SecurityGroupIds",
    ),
    idChanges(modify, "route tables", endpoint.RouteTableIds, want.routeTableIds, "RouteTableIds"),
  ].filter((said) => said !== undefined);
  // moto 5.2.1 ignores PrivateDnsEnabled in ModifyVpcEndpoint: this repair is not tested against it.
  if (endpoint.VpcEndpointType === "Interface" && endpoint.PrivateDnsEnabled !== true) {
    modify.PrivateDnsEnabled = true;
    differences.push("private DNS on");
  }
  if (want.policy && !samePolicy(endpoint.PolicyDocument, want.policy)) {
    modify.PolicyDocument = JSON.stringify(want.policy);
    differences.push("policy");
  }
  if (differences.length === 0) return;
  await ctx.rec.make(
    { action: "update", kind: "vpc-endpoint", name: nameTag(endpoint), detail: differences.join("; ") },
    () => ctx.clients.ec2.send(new ModifyVpcEndpointCommand(modify)),
    undefined,
  );
}

/**
 * One set of ids of an endpoint (subnets, groups, route tables) against the desired one: the Add… and
 * Remove… fields it needs go into `modify`; returns how the plan says them, or undefined when equal.
 */
function idChanges(
  modify: ModifyVpcEndpointRequest,
  what: string,
  have: string[] = [],
  desired: string[],
  field: "SubnetIds" | "SecurityGroupIds" | "RouteTableIds",
): string | undefined {
  const missing = desired.filter((id) => !have.includes(id));
  const extra = have.filter((id) => !desired.includes(id));
  if (missing.length > 0) modify[`Add${field}`] = missing;
  if (extra.length > 0) modify[`Remove${field}`] = extra;
  if (missing.length + extra.length === 0) return undefined;
  return `${what} ${[...missing.map((id) => `+${id}`), ...extra.map((id) => `-${id}`)].join(" ")}`;
}

/** Policies compared as data: AWS may hand the document back with other spacing. */
function samePolicy(document: string | undefined, want: object): boolean {
  try {
    return isDeepStrictEqual(JSON.parse(document ?? ""), want);
  } catch {
    return false;
  }
}

async function deleteEndpoint(ctx: Context, endpoint: VpcEndpoint) {
  await ctx.rec.make(
    { action: "delete", kind: "vpc-endpoint", name: nameTag(endpoint), detail: endpoint.ServiceName },
    () => ctx.clients.ec2.send(new DeleteVpcEndpointsCommand({ VpcEndpointIds: [endpoint.VpcEndpointId!] })),
    undefined,
  );
}

/** Our endpoints group in the VPC, by name (unique there); one of that name without our id is refused. */
async function findEndpointsGroup(ctx: Context, vpcId: string): Promise<SecurityGroup | undefined> {
  if (isPlanned(vpcId)) return undefined;
  const name = resourceName(ctx.inputs.spec.name, ENDPOINTS_GROUP);
  const group = (
    await ctx.clients.ec2.send(
      new DescribeSecurityGroupsCommand({
        Filters: [vpcFilter(vpcId), { Name: "group-name", Values: [name] }],
      }),
    )
  ).SecurityGroups?.[0];
  if (group) assertOwned("security-group", `${name} (${group.GroupId})`, group.Tags, ctx.clusterId);
  return group;
}

/** The interface endpoints' group, its inbound rules converged to endpointSecurityGroupRules. */
async function ensureEndpointsGroup(ctx: Context, vpcId: string): Promise<string> {
  const { spec } = ctx.inputs;
  const name = resourceName(spec.name, ENDPOINTS_GROUP);
  const group = await findEndpointsGroup(ctx, vpcId);
  const groupId =
    group?.GroupId ??
    (await createSecurityGroup(ctx, vpcId, ENDPOINTS_GROUP, `kubebake ${spec.name} VPC endpoints`));
  // Its rules take the VPC's CIDR as their source, never a role group.
  await convergeIngress(
    ctx,
    name,
    groupId,
    group?.IpPermissions ?? [],
    endpointSecurityGroupRules(spec),
    {} as Record<Role, string>,
  );
  return groupId;
}
