/**
 * The cluster's network on Azure: its virtual network with one subnet (or the operator's, checked), an
 * application security group per role, and one network security group whose rules name those groups. The
 * security group goes on the scale sets' network interfaces, not on the subnet, so an operator's subnet is
 * never changed. kubebake's subnet goes out through egress.ts's NAT gateway; the operator's subnet is left
 * as it is: its egress is the operator's.
 */
import type { Role } from "../../discover/names";
import { invalidInput } from "../../errors";
import { isPlanned } from "../changes";
import { ensureEgress, sameId } from "./egress";
import { ifFound, type AzureContext } from "./context";
import {
  OWNER_TAG,
  resourceGroupName,
  roleGroupName,
  securityGroupName,
  securityRuleBody,
  securityRules,
  SUBNET_NAME,
  tagsFor,
  virtualNetworkName,
} from "./desired";
import { foreign } from "../ownership";

export interface AzureNetwork {
  subnetId: string;
  securityGroupId: string;
  roleGroupIds: Record<Role, string>;
}

const ownerOf = (resource: { tags?: Record<string, string> } | undefined) => resource?.tags?.[OWNER_TAG];

export async function ensureNetwork(ctx: AzureContext): Promise<AzureNetwork> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const base = `/subscriptions/${inputs.subscription}/resourceGroups/${group}/providers/Microsoft.Network`;
  const planned = isPlanned(clusterId);
  let subnetId: string;
  if (spec.network.virtualNetwork !== undefined) {
    // Checked, never changed: its egress (a NAT gateway, a firewall's route) is the operator's to give.
    const subnet = await ifFound(() =>
      clients.network.subnets.get(group, spec.network.virtualNetwork!, spec.network.subnet!),
    );
    if (!subnet)
      throw invalidInput(
        `network.subnet: subnet ${spec.network.subnet} of virtual network ${spec.network.virtualNetwork} does not exist in ${group}`,
      );
    subnetId = subnet.id!;
  } else {
    const name = virtualNetworkName(spec.name);
    const found = planned ? undefined : await ifFound(() => clients.network.virtualNetworks.get(group, name));
    if (found && ownerOf(found) !== clusterId) throw foreign("virtual network", name, ownerOf(found));
    const egress = await ensureEgress(ctx, group);
    const subnet = {
      name: SUBNET_NAME,
      addressPrefix: spec.network.cidr,
      defaultOutboundAccess: spec.network.internet === true,
      ...(egress.natGatewayId ? { natGateway: { id: egress.natGatewayId } } : {}),
    };
    const same =
      found &&
      found.addressSpace?.addressPrefixes?.join() === spec.network.cidr &&
      found.subnets?.some(
        (s) =>
          s.name === SUBNET_NAME &&
          s.addressPrefix === subnet.addressPrefix &&
          (s.defaultOutboundAccess ?? true) === subnet.defaultOutboundAccess &&
          sameId(s.natGateway?.id, egress.natGatewayId),
      );
    if (!same)
      await rec.make(
        { action: found ? "update" : "create", kind: "virtual-network", name, detail: spec.network.cidr },
        async () =>
          void (await clients.network.virtualNetworks.beginCreateOrUpdateAndWait(group, name, {
            location: spec.location,
            tags: tagsFor(spec, "network", clusterId),
            addressSpace: { addressPrefixes: [spec.network.cidr] },
            subnets: [subnet],
          })),
        undefined,
      );
    // Only once the subnet no longer names the gateway may it go.
    await egress.retire();
    subnetId = `${base}/virtualNetworks/${name}/subnets/${SUBNET_NAME}`;
  }
  const roleGroupIds = {} as Record<Role, string>;
  for (const role of ["masters", "minions"] as const) {
    const name = roleGroupName(spec.name, role);
    const found = planned
      ? undefined
      : await ifFound(() => clients.network.applicationSecurityGroups.get(group, name));
    if (found && ownerOf(found) !== clusterId)
      throw foreign("application security group", name, ownerOf(found));
    if (!found)
      await rec.make(
        { action: "create", kind: "application-security-group", name },
        async () =>
          void (await clients.network.applicationSecurityGroups.beginCreateOrUpdateAndWait(group, name, {
            location: spec.location,
            tags: tagsFor(spec, `asg-${role}`, clusterId),
          })),
        undefined,
      );
    roleGroupIds[role] = `${base}/applicationSecurityGroups/${name}`;
  }
  const securityGroupId = await ensureSecurityGroup(ctx, group, roleGroupIds);
  return { subnetId, securityGroupId, roleGroupIds };
}

/** The fields of a rule that decide what it lets through, as Azure answers them back. */
const ruleShape = (rule: Record<string, unknown>) =>
  JSON.stringify(
    Object.fromEntries(
      [
        "priority",
        "direction",
        "access",
        "protocol",
        "sourcePortRange",
        "destinationPortRange",
        "destinationPortRanges",
        "sourceAddressPrefix",
        "sourceAddressPrefixes",
        "destinationAddressPrefix",
        "sourceApplicationSecurityGroups",
        "destinationApplicationSecurityGroups",
      ]
        .map((key) => [key, rule[key]])
        .filter(([, value]) => value !== undefined && !(Array.isArray(value) && value.length === 0))
        .map(([key, value]) => [
          key,
          Array.isArray(value)
            ? value
                .map((v) =>
                  typeof v === "object" && v ? String((v as { id?: string }).id).toLowerCase() : v,
                )
                .sort()
            : typeof value === "string"
              ? value
              : value,
        ]),
    ),
  );

async function ensureSecurityGroup(
  ctx: AzureContext,
  group: string,
  roleGroupIds: Record<Role, string>,
): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const name = securityGroupName(spec.name);
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.network.networkSecurityGroups.get(group, name));
  if (found && ownerOf(found) !== clusterId) throw foreign("network security group", name, ownerOf(found));
  const wanted = securityRules(spec).map((rule) => securityRuleBody(rule, roleGroupIds));
  const have = new Map(
    (found?.securityRules ?? []).map((rule) => [rule.name!, ruleShape(rule as Record<string, unknown>)]),
  );
  const same =
    found &&
    have.size === wanted.length &&
    wanted.every((rule) => have.get(rule.name) === ruleShape(rule as Record<string, unknown>));
  if (!same)
    await rec.make(
      {
        action: found ? "update" : "create",
        kind: "network-security-group",
        name,
        detail: `${wanted.length} inbound rules`,
      },
      async () =>
        void (await clients.network.networkSecurityGroups.beginCreateOrUpdateAndWait(group, name, {
          location: spec.location,
          tags: tagsFor(spec, "security-group", clusterId),
          securityRules: wanted,
        })),
      undefined,
    );
  return `/subscriptions/${inputs.subscription}/resourceGroups/${group}/providers/Microsoft.Network/networkSecurityGroups/${name}`;
}
