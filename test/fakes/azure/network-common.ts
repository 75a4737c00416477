/** What the Microsoft.Network models (network.ts, network-security.ts, network-egress.ts) share. */
import { randomUUID } from "node:crypto";
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import {
  groupId,
  isUnder,
  locationConflict,
  normalizeLocation,
  resourceNotFound,
  type GroupGuard,
} from "./arm-models";
import { parseCidr, type Cidr } from "./ipv4";
import type { JsonObject } from "./openapi";
import { checkTags } from "./resource-groups";

export type ProvisioningState = "Updating" | "Succeeded" | "Deleting";

/** What Microsoft.Network keeps of every resource: the properties as sent (checked), and its own fields. */
export interface NetworkResource {
  id: string;
  name: string;
  location: string;
  tags?: Record<string, string>;
  etag: string;
  resourceGuid: string;
  provisioningState: ProvisioningState;
  properties: JsonObject;
}

export function parsePrefix(prefix: string, resourceId: string): Cidr | ArmResponse {
  const { cidr, canonical } = parseCidr(prefix);
  if (cidr) return cidr;
  if (canonical)
    return armError(
      400,
      "InvalidCIDRNotation",
      `The address prefix ${prefix} in resource ${resourceId} has an invalid CIDR notation. ` +
        `For the given prefix length, the address prefix should be ${canonical}.`,
    );
  return armError(
    400,
    "InvalidAddressPrefixFormat",
    `Address prefix ${prefix} of resource ${resourceId} is not formatted correctly. ` +
      "It should follow CIDR notation, for example 10.0.0.0/24. The fake models IPv4 only.",
  );
}

export const newEtag = (): string => `W/"${randomUUID()}"`;

/** Registers list operations whose answer is the rendered resources under the request's scope. */
export function listOperations(fake: ArmFake, operations: string[], all: () => JsonObject[]): void {
  for (const operation of operations)
    fake.on(operation, (req) => {
      const scope = req.path.replace(/\/providers\/.*$/i, "");
      return { status: 200, body: { value: all().filter((r) => isUnder(String(r.id), scope)) } };
    });
}

export const notFound = (req: ArmRequest, type: string): ArmResponse =>
  resourceNotFound(type, req.path.split("/providers/")[1]!.split("/")[2]!, req.params.resourceGroupName!);

/** Microsoft.Network's answer for a missing child resource (a subnet, a security rule). */
export const childNotFound = (id: string): ArmResponse =>
  armError(404, "NotFound", `Resource ${id} not found.`);

/** The fields every Microsoft.Network resource answers with. */
export function renderResource(resource: NetworkResource, type: string, properties: JsonObject): JsonObject {
  return {
    id: resource.id,
    name: resource.name,
    type,
    location: resource.location,
    ...(resource.tags ? { tags: resource.tags } : {}),
    etag: resource.etag,
    properties: {
      ...resource.properties,
      ...properties,
      provisioningState: resource.provisioningState,
      resourceGuid: resource.resourceGuid,
    },
  };
}

/** Microsoft.Network's answer when a resource names another that does not exist (or is in another region). */
export const invalidReference = (referenced: string, by: string): ArmResponse =>
  armError(
    400,
    "InvalidResourceReference",
    `Resource ${referenced} referenced by resource ${by} was not found. Please make sure that the referenced ` +
      "resource exists, and that both resources are in the same region.",
  );

/** Tells a refusal from a checked value (whose schema has no numeric `status`). */
export const isRefusal = (value: object): value is ArmResponse =>
  typeof (value as { status?: unknown }).status === "number";

/** The fields of a new or replaced top-level resource, or the refusal of its PUT. */
export function topLevel(
  state: { groups?: GroupGuard },
  req: ArmRequest,
  type: string,
  existing: NetworkResource | undefined,
): NetworkResource | ArmResponse {
  const { subscriptionId, resourceGroupName: group } = req.params as Record<string, string>;
  const body = req.body as JsonObject;
  const refused = state.groups?.requireGroup(subscriptionId, group) ?? checkTags(body.tags);
  if (refused) return refused;
  const name = req.path.split("/").pop()!;
  const location = normalizeLocation(String(body.location ?? ""));
  if (existing && existing.location !== location)
    return locationConflict(existing.name, existing.location, location, group);
  return {
    id: existing?.id ?? `${groupId(subscriptionId, group)}/providers/${type}/${name}`,
    name: existing?.name ?? name,
    location,
    ...(body.tags ? { tags: body.tags as Record<string, string> } : {}),
    etag: newEtag(),
    resourceGuid: existing?.resourceGuid ?? randomUUID(),
    provisioningState: "Updating",
    properties: {},
  };
}
