/**
 * Public IP addresses and NAT gateways (Microsoft.Network 2024-05-01), installed by installNetwork: the
 * explicit egress of a subnet without default outbound access. Azure's rules as its answers show them:
 *
 * - A Basic IPv4 address cannot be made any more (retired; `IPv4BasicSkuPublicIpCountLimitReached`, as
 *   deployments report it), and the REST API's default SKU is Basic: a client must ask for Standard.
 * - A Standard address must be Static, also when the method is left out (Dynamic by default;
 *   `StandardSkuPublicIPAddressesMustBeStatic`, MicrosoftDocs/azure-docs#42889, pulumi-azure-native#1597).
 *   So a NAT gateway, which takes Standard addresses only, always gets a Standard Static one here.
 * - An address serves one NAT gateway (`PublicIPAddressInUse`, gardener-extension-provider-azure#757) and
 *   cannot be deleted while it does (`PublicIPAddressCannotBeDeleted`, terraform-provider-azurerm#6052).
 * - A NAT gateway a subnet names cannot be deleted (`CannotDeleteNatGatewayAssociatedToSubnet`, 400, as
 *   Azure-Samples/Copilot-Studio-with-Azure-AI-Search#62 quotes it).
 * - A Standard NAT gateway is zonal: in one zone, or in none (Azure picks one); a single-zone address must
 *   be in the gateway's zone ("NAT gateway and availability zones"). Azure's codes for these two were not
 *   found: the fake's codes below are its own.
 *
 * Which subnets use a gateway is read from the virtual networks (a subnet's `natGateway`), never stored
 * twice; which gateway holds an address, from the gateways.
 */
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import { key } from "./arm-models";
import { formatAddress, parseAddress } from "./ipv4";
import type { NetworkState } from "./network";
import {
  invalidReference,
  isRefusal,
  listOperations,
  notFound,
  renderResource,
  topLevel,
  type NetworkResource,
} from "./network-common";
import type { Json, JsonObject } from "./openapi";

const PIP = "Microsoft.Network/publicIPAddresses";
const NAT = "Microsoft.Network/natGateways";
/** Addresses are handed out from TEST-NET-2 (RFC 5737): never a real host. */
const FIRST_ADDRESS = parseAddress("198.51.100.1")!;

export interface PublicIp extends NetworkResource {
  sku: string;
  tier: string;
  zones: string[];
  address: string;
}

export interface NatGateway extends NetworkResource {
  zones: string[];
  publicIpIds: string[];
}

const same = (a: Json | undefined, b: string) => key(String(a)) === key(b);
const ids = (refs: Json | undefined) => ((refs ?? []) as JsonObject[]).map((ref) => String(ref.id));

export function installNetworkEgress(fake: ArmFake, state: NetworkState): void {
  let given = 0;
  const nextAddress = () => formatAddress(FIRST_ADDRESS + given++);
  fake.on("PublicIPAddresses_CreateOrUpdate", (req) => putPublicIp(fake, state, req, nextAddress));
  fake.on("PublicIPAddresses_Get", (req) => {
    const ip = state.publicIpAddresses.get(key(req.path));
    return ip ? { status: 200, body: renderPublicIp(state, ip) } : notFound(req, PIP);
  });
  fake.on("PublicIPAddresses_Delete", (req) => deletePublicIp(fake, state, req));
  listOperations(fake, ["PublicIPAddresses_List", "PublicIPAddresses_ListAll"], () =>
    [...state.publicIpAddresses.values()].map((ip) => renderPublicIp(state, ip)),
  );
  fake.on("NatGateways_CreateOrUpdate", (req) => putNatGateway(fake, state, req));
  fake.on("NatGateways_Get", (req) => {
    const nat = state.natGateways.get(key(req.path));
    return nat ? { status: 200, body: renderNatGateway(state, nat) } : notFound(req, NAT);
  });
  fake.on("NatGateways_Delete", (req) => deleteNatGateway(fake, state, req));
  listOperations(fake, ["NatGateways_List", "NatGateways_ListAll"], () =>
    [...state.natGateways.values()].map((nat) => renderNatGateway(state, nat)),
  );
}

function putPublicIp(
  fake: ArmFake,
  state: NetworkState,
  req: ArmRequest,
  nextAddress: () => string,
): ArmResponse {
  const existing = state.publicIpAddresses.get(key(req.path));
  const base = topLevel(state, req, PIP, existing);
  if (isRefusal(base)) return base;
  const body = req.body as JsonObject;
  const sku = (body.sku ?? {}) as JsonObject;
  const properties = { ...((body.properties ?? {}) as JsonObject) };
  if (same(sku.name ?? "Basic", "Basic"))
    return armError(
      400,
      "IPv4BasicSkuPublicIpCountLimitReached",
      "Cannot create more than 0 IPv4 Basic SKU public IP addresses for this subscription in this region.",
    );
  if (!same(properties.publicIPAllocationMethod ?? "Dynamic", "Static"))
    return armError(
      400,
      "StandardSkuPublicIPAddressesMustBeStatic",
      `Standard sku publicIp ${base.id} must have AllocationMethod set to Static.`,
    );
  // What Azure decides, whatever the client sent: the address, the spelling of the enums.
  delete properties.ipAddress;
  properties.publicIPAllocationMethod = "Static";
  properties.publicIPAddressVersion = same(properties.publicIPAddressVersion ?? "IPv4", "IPv6")
    ? "IPv6"
    : "IPv4";
  properties.idleTimeoutInMinutes ??= 4;
  const ip: PublicIp = {
    ...base,
    properties,
    sku: "Standard",
    tier: same(sku.tier, "Global") ? "Global" : "Regional",
    zones: (body.zones ?? []) as string[],
    address: existing?.address ?? nextAddress(),
  };
  state.publicIpAddresses.set(key(ip.id), ip);
  const headers = fake.asyncOperation(
    req,
    { status: "Succeeded" },
    () => (ip.provisioningState = "Succeeded"),
  );
  return { status: existing ? 200 : 201, body: renderPublicIp(state, ip), headers };
}

function deletePublicIp(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const ip = state.publicIpAddresses.get(key(req.path));
  if (!ip) return { status: 204 };
  const holder = gatewayHolding(state, ip.id);
  if (holder)
    return armError(
      400,
      "PublicIPAddressCannotBeDeleted",
      `Public IP address ${ip.id} can not be deleted since it is still allocated to resource ${holder.id}. ` +
        "In order to delete the public IP, disassociate/detach the Public IP address from the resource. " +
        "To learn how to do this, see aka.ms/deletepublicip.",
    );
  ip.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () =>
    state.publicIpAddresses.delete(key(ip.id)),
  );
  return { status: 202, headers };
}

function putNatGateway(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const existing = state.natGateways.get(key(req.path));
  const base = topLevel(state, req, NAT, existing);
  if (isRefusal(base)) return base;
  const body = req.body as JsonObject;
  const zones = (body.zones ?? []) as string[];
  if (zones.length > 1)
    return armError(
      400,
      "NatGatewayZonesInvalid",
      `NAT gateway ${base.id} names zones ${zones.join(", ")}: a Standard NAT gateway is in one zone or in none.`,
    );
  // `subnets` is read-only: the subnets say which gateway they use.
  const {
    publicIpAddresses,
    publicIpPrefixes,
    subnets: _subnets,
    ...properties
  } = (body.properties ?? {}) as JsonObject;
  void _subnets;
  // The fake has no public IP prefixes: any one named is missing.
  const prefix = ids(publicIpPrefixes)[0];
  if (prefix) return invalidReference(prefix, base.id);
  const publicIpIds: string[] = [];
  for (const id of ids(publicIpAddresses)) {
    const ip = state.publicIpAddresses.get(key(id));
    if (!ip || ip.location !== base.location) return invalidReference(id, base.id);
    const holder = gatewayHolding(state, ip.id);
    if (holder && key(holder.id) !== key(base.id))
      return armError(
        400,
        "PublicIPAddressInUse",
        `Resource ${base.id} is referencing public IP address ${ip.id} that is already allocated to ` +
          `resource ${holder.id}.`,
      );
    if (ip.zones.length === 1 && ip.zones[0] !== zones[0])
      return armError(
        400,
        "NatGatewayPublicIpZoneMismatch",
        `Public IP address ${ip.id} is in zone ${ip.zones[0]}; NAT gateway ${base.id} is ` +
          `${zones[0] ? `in zone ${zones[0]}` : "in no zone"}. A zonal address must be in its gateway's zone.`,
      );
    publicIpIds.push(ip.id);
  }
  properties.idleTimeoutInMinutes ??= 4;
  const nat: NatGateway = { ...base, properties, zones, publicIpIds };
  state.natGateways.set(key(nat.id), nat);
  const headers = fake.asyncOperation(
    req,
    { status: "Succeeded" },
    () => (nat.provisioningState = "Succeeded"),
  );
  return { status: existing ? 200 : 201, body: renderNatGateway(state, nat), headers };
}

function deleteNatGateway(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const nat = state.natGateways.get(key(req.path));
  if (!nat) return { status: 204 };
  const subnets = state.subnetsWith("natGateway", nat.id);
  if (subnets.length > 0)
    return armError(
      400,
      "CannotDeleteNatGatewayAssociatedToSubnet",
      `NAT Gateway ${nat.id} is still configured on ${subnets.length} subnets. Remove NAT Gateway from all ` +
        "referenced subnets and then delete NAT Gateway.",
    );
  nat.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () =>
    state.natGateways.delete(key(nat.id)),
  );
  return { status: 202, headers };
}

/** The NAT gateway whose addresses include `ipId`, if any. */
function gatewayHolding(state: NetworkState, ipId: string): NatGateway | undefined {
  return [...state.natGateways.values()].find((nat) => nat.publicIpIds.some((id) => key(id) === key(ipId)));
}

function renderPublicIp(state: NetworkState, ip: PublicIp): JsonObject {
  const holder = gatewayHolding(state, ip.id);
  return {
    ...renderResource(ip, PIP, {
      ipAddress: ip.address,
      ipTags: [],
      ...(holder ? { natGateway: { id: holder.id } } : {}),
    }),
    sku: { name: ip.sku, tier: ip.tier },
    ...(ip.zones.length > 0 ? { zones: ip.zones } : {}),
  };
}

function renderNatGateway(state: NetworkState, nat: NatGateway): JsonObject {
  const subnets = state.subnetsWith("natGateway", nat.id);
  return {
    ...renderResource(nat, NAT, {
      publicIpAddresses: nat.publicIpIds.map((id) => ({ id })),
      ...(subnets.length > 0 ? { subnets: subnets.map((id) => ({ id })) } : {}),
    }),
    sku: { name: "Standard" },
    ...(nat.zones.length > 0 ? { zones: nat.zones } : {}),
  };
}
