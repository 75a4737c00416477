/**
 * What the stateful ARM models (resource groups, network, identities, RBAC, private DNS) share: resource
 * ids compared case-insensitively as ARM does, ARM's not-found answers, and the resource-group guard every
 * model of a resource that lives in a group consults before it writes.
 */
import { armError, type ArmResponse } from "./arm-fake";

/** The directory (Entra ID tenant) of the fake's identities and principals. */
export const FAKE_TENANT_ID = "00000000-0000-0000-0000-0000000007e1";

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** ARM ids are case-insensitive: every map of the models is keyed by this. */
export const key = (id: string): string => id.toLowerCase();

export const groupId = (subscriptionId: string, group: string): string =>
  `/subscriptions/${subscriptionId}/resourceGroups/${group}`;

/** True when `id` is `scope` itself or lies below it. */
export function isUnder(id: string, scope: string): boolean {
  const inner = key(id);
  const outer = key(scope).replace(/\/$/, "");
  return inner === outer || inner.startsWith(`${outer}/`);
}

/** The subscription and resource group an id lies in, if it lies in one. */
export function groupOf(id: string): { subscriptionId: string; group: string } | undefined {
  const match = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)/i.exec(id);
  return match ? { subscriptionId: match[1]!, group: match[2]! } : undefined;
}

/** ARM stores locations as their short names: "West Europe" is "westeurope". */
export const normalizeLocation = (location: string): string => location.replace(/\s+/g, "").toLowerCase();

/** ARM's answer for a missing top-level resource of a resource group. */
export const resourceNotFound = (type: string, name: string, group: string): ArmResponse =>
  armError(
    404,
    "ResourceNotFound",
    `The Resource '${type}/${name}' under resource group '${group}' was not found. ` +
      "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
  );

/**
 * What a model needs from the resource-group model: whether it may write into a group, and to hear when a
 * group is deleted (ARM deletes everything in it). Models take it as an option, so each runs alone too.
 */
export interface GroupGuard {
  /** 404 ResourceGroupNotFound or 409 while the group is being deleted; undefined when writes may go on. */
  requireGroup(subscriptionId: string, group: string): ArmResponse | undefined;
  onGroupDeleted(hook: (groupId: string) => void): void;
}

/** ARM's answer when a PUT names an existing resource of another location: resources never move. */
export const locationConflict = (
  name: string,
  existing: string,
  wanted: string,
  group: string,
): ArmResponse =>
  armError(
    409,
    "InvalidResourceLocation",
    `The resource '${name}' already exists in location '${existing}' in resource group '${group}'. ` +
      `A resource with the same name cannot be created in location '${wanted}'. Please select a new resource name.`,
  );
