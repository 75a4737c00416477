/** `kubebake cluster apply` on Azure: every step reads the truth, then changes only what differs. */
import { ROLES } from "../../discover/names";
import { isPlanned } from "../changes";
import type { AzureBaseContext, AzureContext } from "./context";
import { ifFound } from "./context";
import { ensureAzureDiscovery } from "./deploy-discovery";
import { resourceGroupName, scaleSetName } from "./desired";
import { ensureClusterId, readClusterId } from "./group";
import { ensureScaleSet, rollOut } from "./groups";
import { ensureIdentities } from "./identity";
import { ensureNetwork } from "./network";
import { ensureGrants } from "./rbac";
import { ensurePki, ensureVault } from "./vault";
import { ensureZone } from "./zone";

export interface AzureApplyResult {
  resourceGroup: string;
  zone: string;
  vault: string;
}

export async function applyAzureCluster(base: AzureBaseContext): Promise<AzureApplyResult> {
  const { spec } = base.inputs;
  const group = resourceGroupName(spec);
  const ctx: AzureContext = { ...base, clusterId: await ensureClusterId(base, await readClusterId(base)) };
  const network = await ensureNetwork(ctx);
  const identities = await ensureIdentities(ctx);
  const groupId = `/subscriptions/${ctx.inputs.subscription}/resourceGroups/${group}`;
  // Masters read the group's VMs and NICs: a join is approved only for a member of the cluster's scale sets.
  await ensureGrants(ctx, [
    {
      scope: groupId,
      role: "reader",
      principalId: identities.masters.principalId,
      who: "masters",
      what: `resource group ${group}`,
    },
  ]);
  const vault = await ensureVault(ctx);
  await ensurePki(ctx, vault, identities, await scaleSetsExist(ctx));
  // Before the scale sets: their first nodes already look for their peers' records.
  const zone = await ensureZone(ctx, network.subnetId);
  await ensureAzureDiscovery(ctx, { zoneId: zone, dns: identities.dns });
  // ROLES lists masters first: their rollout (one voter at a time) ends before any minion is replaced.
  for (const role of ROLES) {
    const model = await ensureScaleSet(
      ctx,
      role,
      {
        subnetId: network.subnetId,
        securityGroupId: network.securityGroupId,
        roleGroupId: network.roleGroupIds[role],
        identityId: identities[role].id,
        image: ctx.inputs.image,
      },
      {
        subscription: ctx.inputs.subscription,
        resourceGroup: group,
        vault: vault.name,
        clientId: identities[role].clientId,
      },
    );
    // Also when the scale set was on the model already: a rollout an earlier apply stopped goes on.
    await rollOut(ctx, role, model, vault);
  }
  return { resourceGroup: group, zone, vault: vault.name };
}

async function scaleSetsExist(ctx: AzureContext): Promise<boolean> {
  if (isPlanned(ctx.clusterId)) return false;
  const group = resourceGroupName(ctx.inputs.spec);
  for (const role of ROLES) {
    const found = await ifFound(() =>
      ctx.clients.compute.virtualMachineScaleSets.get(group, scaleSetName(ctx.inputs.spec.name, role)),
    );
    if (found) return true;
  }
  return false;
}
