/**
 * Virtual networks and subnets (Microsoft.Network 2024-05-01), with network security groups and
 * application security groups in network-security.ts, public IP addresses and NAT gateways in
 * network-egress.ts. Writes are long-running as in Azure: the resource
 * reads Updating until the client polls its Azure-AsyncOperation to Succeeded. Subnets must lie inside the
 * address space without overlapping, may name only existing NSGs and NAT gateways of their region, and a
 * subnet another
 * model uses (`state.subnetUsers`) can be neither deleted nor renumbered, nor can its network be deleted.
 */
import { randomUUID } from "node:crypto";
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import { groupId, isUnder, key, locationConflict, normalizeLocation, type GroupGuard } from "./arm-models";
import { contains, overlaps, parseCidr, type Cidr } from "./ipv4";
import {
  childNotFound,
  invalidReference,
  listOperations,
  newEtag,
  notFound,
  parsePrefix,
  renderResource,
  type NetworkResource,
  type ProvisioningState,
} from "./network-common";
import { installNetworkEgress, type NatGateway, type PublicIp } from "./network-egress";
import { installNetworkSecurity, type SecurityGroup } from "./network-security";
import type { Json, JsonObject } from "./openapi";
import { checkTags } from "./resource-groups";

export const NETWORK_API_VERSION = "2024-05-01";
const NETWORK = "network/resource-manager/Microsoft.Network/stable/2024-05-01";
export const NETWORK_SPECS = [
  `${NETWORK}/virtualNetwork.json`,
  `${NETWORK}/networkSecurityGroup.json`,
  `${NETWORK}/applicationSecurityGroup.json`,
  `${NETWORK}/publicIpAddress.json`,
  `${NETWORK}/natGateway.json`,
];
const VNET = "Microsoft.Network/virtualNetworks";

export interface Subnet {
  id: string;
  name: string;
  etag: string;
  provisioningState: ProvisioningState;
  properties: JsonObject;
}

export interface VirtualNetwork extends NetworkResource {
  subnets: Subnet[];
}

export type { NetworkResource, ProvisioningState } from "./network-common";
export type { SecurityGroup, SecurityRule } from "./network-security";
export type { NatGateway, PublicIp } from "./network-egress";

export class NetworkState {
  readonly groups?: GroupGuard;
  readonly virtualNetworks = new Map<string, VirtualNetwork>();
  readonly securityGroups = new Map<string, SecurityGroup>();
  readonly applicationSecurityGroups = new Map<string, NetworkResource>();
  readonly publicIpAddresses = new Map<string, PublicIp>();
  readonly natGateways = new Map<string, NatGateway>();
  /**
   * Who uses a subnet, asked before it is deleted or renumbered: other models (scale set NICs, private
   * endpoints) register a function answering the ids of their resources in the subnet.
   */
  readonly subnetUsers: ((subnetId: string) => string[])[] = [];

  constructor(options: { groups?: GroupGuard } = {}) {
    this.groups = options.groups;
    this.groups?.onGroupDeleted((group) => {
      for (const map of [
        this.virtualNetworks,
        this.securityGroups,
        this.applicationSecurityGroups,
        this.publicIpAddresses,
        this.natGateways,
      ])
        for (const [id, resource] of map) if (isUnder(resource.id, group)) map.delete(id);
    });
  }

  virtualNetwork(id: string): VirtualNetwork | undefined {
    return this.virtualNetworks.get(key(id));
  }

  subnet(id: string): Subnet | undefined {
    const vnetId = id.replace(/\/subnets\/[^/]+$/i, "");
    return this.virtualNetwork(vnetId)?.subnets.find((s) => key(s.id) === key(id));
  }

  usersOf(subnetId: string): string[] {
    return this.subnetUsers.flatMap((users) => users(subnetId));
  }

  /** The subnets whose networkSecurityGroup is this one. */
  subnetsUsing(nsgId: string): string[] {
    return this.subnetsWith("networkSecurityGroup", nsgId);
  }

  /** The subnets whose `field` (a reference to another resource) names `id`. */
  subnetsWith(field: "networkSecurityGroup" | "natGateway", id: string): string[] {
    return [...this.virtualNetworks.values()]
      .flatMap((vnet) => vnet.subnets)
      .filter((s) => key(String((s.properties[field] as JsonObject | undefined)?.id)) === key(id))
      .map((s) => s.id);
  }
}

export function installNetwork(fake: ArmFake, state = new NetworkState()): NetworkState {
  fake.on("VirtualNetworks_CreateOrUpdate", (req) => putVirtualNetwork(fake, state, req));
  fake.on("VirtualNetworks_Get", (req) => {
    const vnet = state.virtualNetwork(req.path);
    return vnet ? { status: 200, body: renderVirtualNetwork(vnet) } : notFound(req, VNET);
  });
  fake.on("VirtualNetworks_Delete", (req) => deleteVirtualNetwork(fake, state, req));
  listOperations(fake, ["VirtualNetworks_List", "VirtualNetworks_ListAll"], () =>
    [...state.virtualNetworks.values()].map(renderVirtualNetwork),
  );
  fake.on("Subnets_CreateOrUpdate", (req) => putSubnet(fake, state, req));
  fake.on("Subnets_Get", (req) => {
    const subnet = state.subnet(req.path);
    return subnet ? { status: 200, body: renderSubnet(subnet) } : childNotFound(req.path);
  });
  fake.on("Subnets_Delete", (req) => deleteSubnet(fake, state, req));
  fake.on("Subnets_List", (req) => {
    const vnet = state.virtualNetwork(req.path.replace(/\/subnets$/i, ""));
    return vnet ? { status: 200, body: { value: vnet.subnets.map(renderSubnet) } } : notFound(req, VNET);
  });
  installNetworkSecurity(fake, state);
  installNetworkEgress(fake, state);
  return state;
}

function putVirtualNetwork(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const {
    subscriptionId,
    resourceGroupName: group,
    virtualNetworkName: name,
  } = req.params as Record<string, string>;
  const body = req.body as JsonObject;
  const refused = state.groups?.requireGroup(subscriptionId, group) ?? checkTags(body.tags);
  if (refused) return refused;
  const existing = state.virtualNetwork(req.path);
  const location = normalizeLocation(String(body.location ?? ""));
  if (existing && existing.location !== location)
    return locationConflict(existing.name, existing.location, location, group);
  const id = existing?.id ?? `${groupId(subscriptionId, group)}/providers/${VNET}/${name}`;
  const { subnets: wanted = [], ...properties } = (body.properties ?? {}) as JsonObject;
  const space = addressSpace(id, properties);
  if ("status" in space) return space;
  const vnet: VirtualNetwork = {
    id,
    name: existing?.name ?? name,
    location,
    ...(body.tags ? { tags: body.tags as Record<string, string> } : {}),
    etag: newEtag(),
    resourceGuid: existing?.resourceGuid ?? randomUUID(),
    provisioningState: "Updating",
    properties,
    subnets: [],
  };
  // A PUT carries the whole list: a subnet it leaves out is deleted, so it must not be in use.
  for (const old of existing?.subnets ?? [])
    if (!(wanted as JsonObject[]).some((s) => key(String(s.name)) === key(old.name))) {
      const inUse = inUseRefusal(state, old);
      if (inUse) return inUse;
    }
  for (const item of wanted as JsonObject[]) {
    if (typeof item.name !== "string")
      return armError(400, "InvalidRequestFormat", `A subnet of ${id} has no name.`);
    if (vnet.subnets.some((s) => key(s.name) === key(String(item.name))))
      return armError(
        400,
        "DuplicateResourceName",
        `Resource ${id} has two child resources with the same name (${item.name}).`,
      );
    const checked = checkSubnet(state, vnet, space.cidrs, item.name, (item.properties ?? {}) as JsonObject);
    if ("status" in checked) return checked;
    vnet.subnets.push(checked);
  }
  state.virtualNetworks.set(key(id), vnet);
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => settle(vnet));
  return { status: existing ? 200 : 201, body: renderVirtualNetwork(vnet), headers };
}

function putSubnet(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const vnet = state.virtualNetwork(req.path.replace(/\/subnets\/[^/]+$/i, ""));
  if (!vnet) return notFound(req, VNET);
  const name = req.params.subnetName!;
  const space = addressSpace(vnet.id, vnet.properties);
  if ("status" in space) return space;
  const properties = ((req.body as JsonObject).properties ?? {}) as JsonObject;
  const others = vnet.subnets.filter((s) => key(s.name) !== key(name));
  const etag = newEtag();
  const checked = checkSubnet(state, { ...vnet, etag, subnets: others }, space.cidrs, name, properties);
  if ("status" in checked) return checked;
  const existing = state.subnet(checked.id);
  vnet.subnets = existing
    ? vnet.subnets.map((s) => (s === existing ? checked : s))
    : [...vnet.subnets, checked];
  vnet.etag = etag;
  const headers = fake.asyncOperation(
    req,
    { status: "Succeeded" },
    () => (checked.provisioningState = "Succeeded"),
  );
  return { status: existing ? 200 : 201, body: renderSubnet(checked), headers };
}

function deleteVirtualNetwork(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const vnet = state.virtualNetwork(req.path);
  if (!vnet) return { status: 204 };
  for (const subnet of vnet.subnets) {
    const inUse = inUseRefusal(state, subnet);
    if (inUse) return inUse;
  }
  vnet.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () =>
    state.virtualNetworks.delete(key(vnet.id)),
  );
  return { status: 202, headers };
}

function deleteSubnet(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const subnet = state.subnet(req.path);
  if (!subnet) return { status: 204 };
  const inUse = inUseRefusal(state, subnet);
  if (inUse) return inUse;
  subnet.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => {
    const vnet = state.virtualNetwork(subnet.id.replace(/\/subnets\/[^/]+$/i, ""));
    if (vnet) vnet.subnets = vnet.subnets.filter((s) => s !== subnet);
  });
  return { status: 202, headers };
}

/** The vnet's address prefixes, each a valid IPv4 CIDR (the fake models IPv4 only). */
function addressSpace(id: string, properties: JsonObject): { cidrs: Cidr[] } | ArmResponse {
  const prefixes = ((properties.addressSpace as JsonObject | undefined)?.addressPrefixes ?? []) as Json[];
  const cidrs: Cidr[] = [];
  for (const prefix of prefixes) {
    const parsed = parsePrefix(String(prefix), id);
    if ("status" in parsed) return parsed;
    cidrs.push(parsed);
  }
  return { cidrs };
}

const POLICIES = ["Enabled", "Disabled", "NetworkSecurityGroupEnabled", "RouteTableEnabled"];

/** A subnet as `vnet` (whose `subnets` are the others) would hold it, or Azure's refusal. */
function checkSubnet(
  state: NetworkState,
  vnet: VirtualNetwork,
  space: Cidr[],
  name: string,
  properties: JsonObject,
): Subnet | ArmResponse {
  const id = `${vnet.id}/subnets/${name}`;
  const texts = [properties.addressPrefix, ...((properties.addressPrefixes ?? []) as Json[])].filter(
    (p): p is string => typeof p === "string",
  );
  if (texts.length === 0)
    return armError(
      400,
      "InvalidRequestFormat",
      `Subnet ${id} has neither addressPrefix nor addressPrefixes.`,
    );
  for (const text of texts) {
    const cidr = parsePrefix(text, id);
    if ("status" in cidr) return cidr;
    if (!space.some((outer) => contains(outer, cidr)))
      return armError(
        400,
        "NetcfgSubnetRangeOutsideVnet",
        `Subnet '${name}' is not valid because its IP address range is outside the IP address range of ` +
          `virtual network '${vnet.name}'.`,
      );
    for (const other of vnet.subnets)
      if (prefixesOf(other).some((o) => overlaps(o, cidr)))
        return armError(
          400,
          "NetcfgSubnetRangesOverlap",
          `Subnet '${name}' is not valid because its IP address range overlaps with that of an existing ` +
            `subnet in virtual network '${vnet.name}'.`,
        );
  }
  const normalized: JsonObject = { ...properties };
  if (properties.networkSecurityGroup) {
    const nsgId = String((properties.networkSecurityGroup as JsonObject).id);
    const nsg = state.securityGroups.get(key(nsgId));
    if (!nsg || nsg.location !== vnet.location) return invalidReference(nsgId, id);
    // A client may send a whole NSG it read; the subnet keeps (and answers) only its id.
    normalized.networkSecurityGroup = { id: nsg.id };
  }
  if (properties.natGateway) {
    const natId = String((properties.natGateway as JsonObject).id);
    const nat = state.natGateways.get(key(natId));
    if (!nat || nat.location !== vnet.location) return invalidReference(natId, id);
    normalized.natGateway = { id: nat.id };
  }
  for (const policy of ["privateEndpointNetworkPolicies", "privateLinkServiceNetworkPolicies"]) {
    if (properties[policy] === undefined) continue;
    const value = POLICIES.find((p) => key(p) === key(String(properties[policy])));
    if (!value)
      return armError(
        400,
        "InvalidRequestFormat",
        `${policy} of ${id} must be one of ${POLICIES.join(", ")}.`,
      );
    normalized[policy] = value;
  }
  const previous = state.subnet(id);
  if (previous && state.usersOf(id).length > 0 && !samePrefixes(previous, texts))
    return armError(
      400,
      "InUseSubnetCannotBeUpdated",
      `Subnet ${name} is in use and cannot be updated: its address prefix may not change while ` +
        `${state.usersOf(id).join(", ")} use it.`,
    );
  return { id, name, etag: vnet.etag, provisioningState: "Updating", properties: normalized };
}

function prefixesOf(subnet: Subnet): Cidr[] {
  const texts = [subnet.properties.addressPrefix, ...((subnet.properties.addressPrefixes ?? []) as Json[])];
  return texts.flatMap((t) => (typeof t === "string" && parseCidr(t).cidr ? [parseCidr(t).cidr!] : []));
}

function samePrefixes(subnet: Subnet, texts: string[]): boolean {
  const before = prefixesOf(subnet).map((c) => `${c.base}/${c.bits}`);
  const after = texts.map((t) => parseCidr(t).cidr!).map((c) => `${c.base}/${c.bits}`);
  return before.sort().join() === after.sort().join();
}

function inUseRefusal(state: NetworkState, subnet: Subnet): ArmResponse | undefined {
  const users = state.usersOf(subnet.id);
  if (users.length === 0) return undefined;
  return armError(
    400,
    "InUseSubnetCannotBeDeleted",
    `Subnet ${subnet.name} is in use by ${users.join(", ")} and cannot be deleted. In order to delete the ` +
      "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
  );
}

function settle(vnet: VirtualNetwork): void {
  vnet.provisioningState = "Succeeded";
  for (const subnet of vnet.subnets) subnet.provisioningState = "Succeeded";
}

function renderVirtualNetwork(vnet: VirtualNetwork): JsonObject {
  return renderResource(vnet, VNET, {
    subnets: vnet.subnets.map(renderSubnet),
    virtualNetworkPeerings: [],
    enableDdosProtection: vnet.properties.enableDdosProtection ?? false,
  });
}

function renderSubnet(subnet: Subnet): JsonObject {
  return {
    id: subnet.id,
    name: subnet.name,
    etag: subnet.etag,
    type: `${VNET}/subnets`,
    properties: {
      privateEndpointNetworkPolicies: "Disabled",
      privateLinkServiceNetworkPolicies: "Enabled",
      ...subnet.properties,
      provisioningState: subnet.provisioningState,
    },
  };
}
