/**
 * The cluster's resource group and its id. The id, `kb-<16 hex>`, is kept as the group's tag
 * `kubebake:cluster-id:<cluster>` (a group the operator names may hold several clusters), and carried as
 * `kubebake:owner` by everything the cluster owns. kubebake's own group (no `resourceGroup` in the spec) is
 * created with the id and deleted on destroy; an operator's group must exist and is only tagged.
 */
import { randomBytes } from "node:crypto";
import { ExitCode, invalidInput, KubebakeError } from "../../errors";
import { plannedId } from "../changes";
import type { AzureClients } from "./clients";
import { ifFound, type AzureBaseContext } from "./context";
import { OWNER_TAG, ownsResourceGroup, resourceGroupName, tagsFor } from "./desired";

export const clusterIdTag = (cluster: string) => `kubebake:cluster-id:${cluster}`;

interface Group {
  location?: string;
  tags?: Record<string, string>;
}

async function readGroup(clients: AzureClients, name: string): Promise<Group | undefined> {
  return ifFound(() => clients.resources.resourceGroups.get(name));
}

/** The stored cluster id, or undefined before the first apply; a group that is not the cluster's is refused. */
export async function readClusterId(ctx: {
  clients: AzureClients;
  inputs: Pick<AzureBaseContext["inputs"], "spec" | "subscription">;
}): Promise<string | undefined> {
  const { spec } = ctx.inputs;
  const name = resourceGroupName(spec);
  const group = await readGroup(ctx.clients, name);
  if (!group) {
    if (!ownsResourceGroup(spec))
      throw invalidInput(
        `resourceGroup: resource group ${name} does not exist in subscription ${ctx.inputs.subscription}`,
      );
    return undefined;
  }
  const id = group.tags?.[clusterIdTag(spec.name)];
  if (ownsResourceGroup(spec) && (!id || group.tags?.[OWNER_TAG] !== id))
    throw new KubebakeError(
      `resource group ${name} exists but is not cluster ${spec.name}'s (no ${clusterIdTag(spec.name)} tag matching its ${OWNER_TAG}); rename the cluster or remove the group`,
      ExitCode.unsafeState,
    );
  return id;
}

/** The cluster id: stored with kubebake's own group when it creates it, or as a tag of the operator's. */
export async function ensureClusterId(ctx: AzureBaseContext, stored: string | undefined): Promise<string> {
  if (stored) return stored;
  const { clients, inputs, rec } = ctx;
  const { spec } = inputs;
  const name = resourceGroupName(spec);
  return rec.make(
    {
      action: ownsResourceGroup(spec) ? "create" : "update",
      kind: "resource-group",
      name,
      detail: ownsResourceGroup(spec) ? spec.location : `tag ${clusterIdTag(spec.name)}`,
    },
    async () => {
      const id = `kb-${randomBytes(8).toString("hex")}`;
      if (ownsResourceGroup(spec)) {
        await clients.resources.resourceGroups.createOrUpdate(name, {
          location: spec.location,
          tags: { ...tagsFor(spec, "resource-group", id), [clusterIdTag(spec.name)]: id },
        });
        return id;
      }
      const group = (await readGroup(clients, name))!;
      // Read, then written whole: ARM has no compare-and-swap on a group's tags; a rerun reads what won.
      await clients.resources.resourceGroups.update(name, {
        tags: { ...group.tags, [clusterIdTag(spec.name)]: id },
      });
      return id;
    },
    plannedId("cluster-id"),
  );
}
