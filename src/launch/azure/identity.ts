/**
 * Who acts for the cluster on Azure: a user-assigned managed identity per identity (masters, minions,
 * discovery). The scale sets run as them; role assignments (Key Vault secrets, the zone, the groups' VMs)
 * name their principals.
 */
import { isPlanned } from "../changes";
import { foreign } from "../ownership";
import { ifFound, type AzureContext } from "./context";
import { IDENTITIES, identityName, OWNER_TAG, resourceGroupName, tagsFor, type Identity } from "./desired";

export interface ManagedIdentity {
  id: string;
  principalId: string;
  clientId: string;
}

export async function ensureIdentities(ctx: AzureContext): Promise<Record<Identity, ManagedIdentity>> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const identities = {} as Record<Identity, ManagedIdentity>;
  for (const identity of IDENTITIES) {
    const name = identityName(spec.name, identity);
    const found = isPlanned(clusterId)
      ? undefined
      : await ifFound(() => clients.msi.userAssignedIdentities.get(group, name));
    if (found && found.tags?.[OWNER_TAG] !== clusterId)
      throw foreign("managed identity", name, found.tags?.[OWNER_TAG]);
    type Made = { id?: string; principalId?: string; clientId?: string };
    const made: Made =
      found ??
      (await rec.make<Made>(
        { action: "create", kind: "managed-identity", name },
        () =>
          clients.msi.userAssignedIdentities.createOrUpdate(group, name, {
            location: spec.location,
            tags: tagsFor(spec, `identity-${identity}`, clusterId),
          }),
        {
          id: `(new ${name})`,
          principalId: `(new principal of ${name})`,
          clientId: `(new client of ${name})`,
        },
      ));
    identities[identity] = { id: made.id!, principalId: made.principalId!, clientId: made.clientId! };
  }
  return identities;
}
