/** `kubebake cluster apply` on GCE: every step reads the truth, then changes only what differs. */
import { ROLES } from "../../discover/names";
import type { GceBaseContext, GceContext } from "./context";
import { ensureFirewall } from "./firewall";
import { ensureGroup, ensureTemplate, retireTemplates, rollOut } from "./groups";
import { ensureGceDiscovery } from "./deploy-discovery";
import {
  ensureBinding,
  ensureCustomRole,
  ensureServiceAccount,
  memberOf,
  projectPolicyHolder,
} from "./identity";
import { checkNetwork, ensureNetwork } from "./network";
import { ensureClusterId, readClusterId } from "./owner";
import { ensurePki } from "./secrets";
import { ensureZone } from "./zone";
import { checkNamesFree } from "./lookalikes";
import { isPlanned } from "../changes";
import { ifFound } from "./clients";
import { groupName, MASTERS_PERMISSIONS, mastersCondition, mastersRoleId } from "./desired";

export interface GceApplyResult {
  network: string;
  zone: string;
}

export async function applyGceCluster(base: GceBaseContext): Promise<GceApplyResult> {
  const { spec } = base.inputs;
  // Reads first: a mistake in the spec is refused before anything is created.
  await checkNetwork(base);
  const stored = await readClusterId(base.clients, spec.name);
  if (!stored) await checkNamesFree(base);
  const ctx: GceContext = { ...base, clusterId: await ensureClusterId(base, stored) };
  const links = await ensureNetwork(ctx);
  // Before the firewall rules and secret policies, which name the accounts.
  for (const role of ROLES) await ensureServiceAccount(ctx, role);
  const masters = await ensureCustomRole(
    ctx,
    mastersRoleId(spec.name),
    MASTERS_PERMISSIONS,
    "masters' Compute",
  );
  await ensureBinding(ctx, projectPolicyHolder(ctx.clients), {
    role: masters,
    member: memberOf(ctx.clients, spec.name, "masters"),
    condition: mastersCondition({ spec, project: ctx.clients.project }),
    exclusive: true,
  });
  await ensureFirewall(ctx, links);
  await ensurePki(ctx, await groupsExist(ctx));
  // Before the groups: their first nodes already look for their peers' records.
  const zone = await ensureZone(ctx, links);
  await ensureGceDiscovery(ctx, zone);
  // ROLES lists masters first: their rollout (one voter at a time) ends before any minion is replaced.
  for (const role of ROLES) {
    const template = await ensureTemplate(ctx, role, links);
    await ensureGroup(ctx, role, template);
    // Also when the group was on the template already: a rollout an earlier apply stopped goes on.
    await rollOut(ctx, role, template);
    await retireTemplates(ctx, role, template);
  }
  return { network: links.network, zone };
}

async function groupsExist(ctx: GceContext): Promise<boolean> {
  if (isPlanned(ctx.clusterId)) return false;
  const { clients, inputs } = ctx;
  for (const role of ROLES) {
    const found = await ifFound(() =>
      clients.groups.get({
        project: clients.project,
        region: inputs.spec.region,
        instanceGroupManager: groupName(inputs.spec.name, role),
      }),
    );
    if (found) return true;
  }
  return false;
}
