/**
 * `kubebake cluster destroy` on Azure: deletes what carries the cluster id, in the order Azure allows (the
 * scale sets and their VMs, NICs and disks before the security groups and network they use, the network
 * before its NAT gateway, the gateway before its public IP; the zone's link before the zone; the role
 * assignments before the identities they name), then the vault (purged, so that its global name is free
 * again) and kubebake's own resource group, or the id's tag on the operator's. A rerun after a failure continues where it stopped.
 */
import { ROLES } from "../../discover/names";
import type { ChangeRecorder } from "../changes";
import type { AzureClients } from "./clients";
import { ifFound, type AzureContext, type AzureInputs } from "./context";
import { removeAzureDiscovery } from "./deploy-discovery";
import {
  egressAddressName,
  IDENTITIES,
  identityName,
  natGatewayName,
  OWNER_TAG,
  ownsResourceGroup,
  resourceGroupName,
  roleGroupName,
  scaleSetName,
  securityGroupName,
  vaultName,
  virtualNetworkName,
} from "./desired";
import { clusterIdTag, readClusterId } from "./group";

export interface AzureDestroyContext {
  clients: AzureClients;
  rec: ChangeRecorder;
  /** The spec and subscription (what destroy reads of the inputs: no image, no tenant). */
  inputs: Pick<AzureInputs, "spec" | "subscription">;
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

type Tagged = { tags?: Record<string, string> } | undefined;

export async function destroyAzureCluster(base: AzureDestroyContext): Promise<void> {
  const { clients, rec, inputs } = base;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const clusterId = await readClusterId(base).catch((error: unknown) => {
    // An operator's group that is gone holds nothing of the cluster any more.
    if (!ownsResourceGroup(spec)) throw error;
    return undefined;
  });
  if (!clusterId) return;
  const ctx = { ...base, inputs: inputs as AzureInputs, clusterId } as AzureContext;
  const ours = (found: Tagged) => found?.tags?.[OWNER_TAG] === clusterId;
  /** Deletes one resource when it is the cluster's (a look-alike is left alone). */
  const remove = async (
    kind: string,
    name: string,
    read: () => Promise<Tagged>,
    del: () => Promise<unknown>,
  ) => {
    const found = await ifFound(read);
    if (!ours(found)) return;
    await rec.make({ action: "delete", kind, name }, async () => void (await del()), undefined);
  };

  for (const role of [...ROLES].reverse()) {
    const name = scaleSetName(spec.name, role);
    await remove(
      "scale-set",
      name,
      () => clients.compute.virtualMachineScaleSets.get(group, name),
      () => clients.compute.virtualMachineScaleSets.beginDeleteAndWait(group, name, { forceDeletion: true }),
    );
  }
  await removeAzureDiscovery(ctx);

  for await (const zone of clients.privateDns.privateZones.listByResourceGroup(group)) {
    if (!ours(zone)) continue;
    for await (const link of clients.privateDns.virtualNetworkLinks.list(group, zone.name!))
      if (ours(link))
        await rec.make(
          { action: "delete", kind: "zone-link", name: `${zone.name}/${link.name}` },
          () => clients.privateDns.virtualNetworkLinks.beginDeleteAndWait(group, zone.name!, link.name!),
          undefined,
        );
    await rec.make(
      { action: "delete", kind: "private-dns-zone", name: zone.name! },
      () => clients.privateDns.privateZones.beginDeleteAndWait(group, zone.name!),
      undefined,
    );
  }

  const vault = vaultName(inputs.subscription, spec);
  await remove(
    "key-vault",
    vault,
    () => clients.keyVault.vaults.get(group, vault),
    () => clients.keyVault.vaults.delete(group, vault),
  );
  // A deleted vault keeps its name (global) for its retention days: purged, so a new cluster can take it.
  const deleted = await ifFound(() => clients.keyVault.vaults.getDeleted(vault, spec.location));
  if (deleted?.properties?.tags?.[OWNER_TAG] === clusterId)
    await rec.make(
      { action: "delete", kind: "deleted-key-vault", name: vault, detail: "purged" },
      () => clients.keyVault.vaults.purgeDeleted(vault, spec.location, { updateIntervalInMs: base.pollMs }),
      undefined,
    );

  for (const identity of IDENTITIES) {
    const name = identityName(spec.name, identity);
    const found = await ifFound(() => clients.msi.userAssignedIdentities.get(group, name));
    if (!ours(found)) continue;
    // Assignments outlive the principal they name (as "unknown"): removed first, wherever they are.
    for await (const assignment of clients.authorization.roleAssignments.listForSubscription({
      filter: `principalId eq '${found!.principalId}'`,
    }))
      await rec.make(
        { action: "delete", kind: "role-assignment", name: `${identity}: ${assignment.name}` },
        () => clients.authorization.roleAssignments.deleteById(assignment.id!),
        undefined,
      );
    await rec.make(
      { action: "delete", kind: "managed-identity", name },
      () => clients.msi.userAssignedIdentities.delete(group, name),
      undefined,
    );
  }

  const nsg = securityGroupName(spec.name);
  await remove(
    "network-security-group",
    nsg,
    () => clients.network.networkSecurityGroups.get(group, nsg),
    () => clients.network.networkSecurityGroups.beginDeleteAndWait(group, nsg),
  );
  for (const role of ROLES) {
    const asg = roleGroupName(spec.name, role);
    await remove(
      "application-security-group",
      asg,
      () => clients.network.applicationSecurityGroups.get(group, asg),
      () => clients.network.applicationSecurityGroups.beginDeleteAndWait(group, asg),
    );
  }
  const vnet = virtualNetworkName(spec.name);
  await remove(
    "virtual-network",
    vnet,
    () => clients.network.virtualNetworks.get(group, vnet),
    () => clients.network.virtualNetworks.beginDeleteAndWait(group, vnet),
  );
  // The subnet's NAT gateway once the subnet is gone, then the address the gateway held.
  const egress = natGatewayName(spec.name);
  await remove(
    "nat-gateway",
    egress,
    () => clients.network.natGateways.get(group, egress),
    () => clients.network.natGateways.beginDeleteAndWait(group, egress),
  );
  const address = egressAddressName(spec.name);
  await remove(
    "public-ip",
    address,
    () => clients.network.publicIPAddresses.get(group, address),
    () => clients.network.publicIPAddresses.beginDeleteAndWait(group, address),
  );

  if (ownsResourceGroup(spec)) {
    await rec.make(
      { action: "delete", kind: "resource-group", name: group },
      () => clients.resources.resourceGroups.beginDeleteAndWait(group),
      undefined,
    );
    return;
  }
  const current = await clients.resources.resourceGroups.get(group);
  const { [clusterIdTag(spec.name)]: _id, ...tags } = current.tags ?? {};
  void _id;
  await rec.make(
    { action: "update", kind: "resource-group", name: group, detail: `untag ${clusterIdTag(spec.name)}` },
    () => clients.resources.resourceGroups.update(group, { tags }),
    undefined,
  );
}
