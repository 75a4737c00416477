/**
 * Role assignments: what each of the cluster's identities may do, each grant at the narrowest scope Azure
 * offers (a secret, a zone, the resource group). An assignment's name is fixed by its scope, role and
 * principal (assignmentName), so an apply finds its own again; a grant is created when missing and never
 * widened. Destroy needs no removal: assignments go with the identity they name.
 */
import { isPlanned } from "../changes";
import { ifFound, type AzureContext } from "./context";
import { assignmentName, BUILT_IN_ROLES } from "./desired";

export type BuiltInRole = keyof typeof BUILT_IN_ROLES;

export interface Grant {
  /** A resource id: the role applies to it and what it holds. */
  scope: string;
  role: BuiltInRole;
  principalId: string;
  /** Who gets it, for the plan: `masters`, `dns`… */
  who: string;
  /** What the scope is, for the plan: `secret ca-crt`, `zone demo.k8s`… */
  what: string;
}

export const roleDefinitionId = (subscription: string, role: BuiltInRole) =>
  `/subscriptions/${subscription}/providers/Microsoft.Authorization/roleDefinitions/${BUILT_IN_ROLES[role]}`;

export async function ensureGrant(ctx: AzureContext, grant: Grant): Promise<void> {
  const { clients, rec, clusterId } = ctx;
  const roleId = BUILT_IN_ROLES[grant.role];
  const name = assignmentName(grant.scope, roleId, grant.principalId);
  const planned = isPlanned(clusterId) || grant.principalId.startsWith("(new ");
  const found = planned
    ? undefined
    : await ifFound(() => clients.authorization.roleAssignments.get(grant.scope, name));
  if (found) return;
  await rec.make(
    { action: "create", kind: "role-assignment", name: `${grant.who}: ${grant.role}`, detail: grant.what },
    async () =>
      void (await clients.authorization.roleAssignments.create(grant.scope, name, {
        roleDefinitionId: roleDefinitionId(clients.subscription, grant.role),
        principalId: grant.principalId,
        // Named, so that ARM takes a principal Entra ID has not replicated yet (a new identity).
        principalType: "ServicePrincipal",
        description: `kubebake: ${grant.who} ${grant.role} on ${grant.what}`,
      })),
    undefined,
  );
}

export async function ensureGrants(ctx: AzureContext, grants: Grant[]): Promise<void> {
  for (const grant of grants) await ensureGrant(ctx, grant);
}
