/**
 * Resource groups (Microsoft.Resources 2024-07-01) as ARM keeps them: created in one of the known regions
 * and never moved, tagged, listed by tag, and deleted asynchronously together with everything in them
 * (the other models register a hook to drop their resources of a deleted group).
 */
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import { groupId, key, normalizeLocation, type GroupGuard } from "./arm-models";
import type { Json, JsonObject } from "./openapi";

export const RESOURCES_API_VERSION = "2024-07-01";
export const RESOURCE_GROUP_SPECS = [
  "resources/resource-manager/Microsoft.Resources/stable/2024-07-01/resources.json",
];

/** A sample of Azure's public regions; a test may add others to `state.locations`. */
const DEFAULT_LOCATIONS = [
  "australiaeast",
  "brazilsouth",
  "canadacentral",
  "centralus",
  "eastus",
  "eastus2",
  "francecentral",
  "germanywestcentral",
  "japaneast",
  "northeurope",
  "southeastasia",
  "swedencentral",
  "uksouth",
  "westeurope",
  "westus2",
  "westus3",
];

export interface ResourceGroup {
  subscriptionId: string;
  name: string;
  location: string;
  tags?: Record<string, string>;
  managedBy?: string;
  provisioningState: "Succeeded" | "Deleting";
}

export class ResourceGroupsState implements GroupGuard {
  readonly locations = new Set(DEFAULT_LOCATIONS);
  private readonly groups = new Map<string, ResourceGroup>();
  private readonly hooks: ((groupId: string) => void)[] = [];

  get(subscriptionId: string, name: string): ResourceGroup | undefined {
    return this.groups.get(key(groupId(subscriptionId, name)));
  }

  all(): ResourceGroup[] {
    return [...this.groups.values()];
  }

  /** Seeds a group without a request. */
  add(subscriptionId: string, name: string, location: string, tags?: Record<string, string>): ResourceGroup {
    const group: ResourceGroup = {
      subscriptionId,
      name,
      location: normalizeLocation(location),
      ...(tags ? { tags } : {}),
      provisioningState: "Succeeded",
    };
    this.groups.set(key(groupId(subscriptionId, name)), group);
    return group;
  }

  onGroupDeleted(hook: (groupId: string) => void): void {
    this.hooks.push(hook);
  }

  requireGroup(subscriptionId: string, name: string): ArmResponse | undefined {
    const group = this.get(subscriptionId, name);
    if (!group) return groupNotFound(name);
    if (group.provisioningState === "Deleting")
      return armError(
        409,
        "ResourceGroupBeingDeleted",
        `The resource group '${group.name}' is in deprovisioning state and cannot perform this operation.`,
      );
    return undefined;
  }

  /** Removes the group and, through the hooks, every resource the models keep in it. */
  remove(subscriptionId: string, name: string): void {
    const group = this.get(subscriptionId, name);
    if (!group) return;
    const id = groupId(group.subscriptionId, group.name);
    for (const hook of this.hooks) hook(id);
    this.groups.delete(key(id));
  }
}

export function installResourceGroups(fake: ArmFake, state = new ResourceGroupsState()): ResourceGroupsState {
  fake.on("ResourceGroups_CreateOrUpdate", (req) => createOrUpdate(state, req));
  fake.on("ResourceGroups_Get", (req) => {
    const group = state.get(req.params.subscriptionId!, req.params.resourceGroupName!);
    return group ? { status: 200, body: render(group) } : groupNotFound(req.params.resourceGroupName!);
  });
  // HEAD answers carry no body: the client reads only 204 or 404.
  fake.on("ResourceGroups_CheckExistence", (req) => ({
    status: state.get(req.params.subscriptionId!, req.params.resourceGroupName!) ? 204 : 404,
  }));
  fake.on("ResourceGroups_Update", (req) => update(state, req));
  fake.on("ResourceGroups_Delete", (req) => remove(fake, state, req));
  fake.on("ResourceGroups_List", (req) => list(state, req));
  return state;
}

function createOrUpdate(state: ResourceGroupsState, req: ArmRequest): ArmResponse {
  const { subscriptionId, resourceGroupName: name } = req.params as Record<string, string>;
  // The description's pattern allows a trailing period; ARM does not.
  if (name.endsWith("."))
    return armError(
      400,
      "InvalidResourceGroupName",
      `The resource group name '${name}' is invalid: it may not end with a period.`,
    );
  const body = req.body as JsonObject;
  const location = normalizeLocation(String(body.location));
  if (!state.locations.has(location))
    return armError(
      400,
      "LocationNotAvailableForResourceGroup",
      `The provided location '${String(body.location)}' is not available for resource group. ` +
        `List of available regions is '${[...state.locations].join(",")}'.`,
    );
  const tagProblem = checkTags(body.tags);
  if (tagProblem) return tagProblem;
  const existing = state.get(subscriptionId, name);
  if (existing?.provisioningState === "Deleting") return state.requireGroup(subscriptionId, name)!;
  if (existing && existing.location !== location)
    return armError(
      409,
      "InvalidResourceGroupLocation",
      `Invalid resource group location '${String(body.location)}'. ` +
        `The Resource group already exists in location '${existing.location}'.`,
    );
  // A PUT replaces tags and managedBy; the name keeps the casing it was created with.
  const group = state.add(subscriptionId, existing?.name ?? name, location);
  if (body.tags) group.tags = body.tags as Record<string, string>;
  if (typeof body.managedBy === "string") group.managedBy = body.managedBy;
  return { status: existing ? 200 : 201, body: render(group) };
}

function update(state: ResourceGroupsState, req: ArmRequest): ArmResponse {
  const group = state.get(req.params.subscriptionId!, req.params.resourceGroupName!);
  if (!group) return groupNotFound(req.params.resourceGroupName!);
  const patch = req.body as JsonObject;
  const tagProblem = checkTags(patch.tags);
  if (tagProblem) return tagProblem;
  if (patch.tags) group.tags = patch.tags as Record<string, string>;
  if (typeof patch.managedBy === "string") group.managedBy = patch.managedBy;
  return { status: 200, body: render(group) };
}

function remove(fake: ArmFake, state: ResourceGroupsState, req: ArmRequest): ArmResponse {
  const { subscriptionId, resourceGroupName: name } = req.params as Record<string, string>;
  const group = state.get(subscriptionId, name);
  if (!group) return groupNotFound(name);
  group.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => state.remove(subscriptionId, name));
  return { status: 202, headers };
}

function list(state: ResourceGroupsState, req: ArmRequest): ArmResponse {
  const filter = req.query.get("$filter");
  let match: (group: ResourceGroup) => boolean = () => true;
  if (filter !== null) {
    const parsed = parseTagFilter(filter);
    if (!parsed)
      return armError(
        400,
        "InvalidFilterInQueryString",
        `The fake understands only $filter=tagName eq '…' [and tagValue eq '…'], not: ${filter}`,
      );
    match = (group) => {
      // Tag names compare case-insensitively, tag values exactly, as ARM documents.
      const entry = Object.entries(group.tags ?? {}).find(([name]) => key(name) === key(parsed.name));
      return entry !== undefined && (parsed.value === undefined || entry[1] === parsed.value);
    };
  }
  const top = req.query.get("$top");
  const groups = state
    .all()
    .filter((g) => key(g.subscriptionId) === key(req.params.subscriptionId!) && match(g))
    .slice(0, top === null ? undefined : Number(top));
  return { status: 200, body: { value: groups.map(render) } };
}

/** `tagName eq 'k'` or `tagName eq 'k' and tagValue eq 'v'`; OData doubles a quote inside a literal. */
function parseTagFilter(filter: string): { name: string; value?: string } | undefined {
  const literal = "'((?:[^']|'')*)'";
  const match = new RegExp(
    `^\\s*tagName\\s+eq\\s+${literal}(?:\\s+and\\s+tagValue\\s+eq\\s+${literal})?\\s*$`,
    "i",
  ).exec(filter);
  if (!match) return undefined;
  const unquote = (text: string) => text.replace(/''/g, "'");
  return { name: unquote(match[1]!), ...(match[2] !== undefined ? { value: unquote(match[2]) } : {}) };
}

/** ARM refuses tag names with characters it reserves, on every resource type. */
export function checkTags(tags: Json | undefined): ArmResponse | undefined {
  if (!tags || typeof tags !== "object") return undefined;
  const bad = Object.keys(tags).filter((name) => /[<>%&\\?/]/.test(name));
  if (bad.length === 0) return undefined;
  return armError(
    400,
    "InvalidTagNameCharacters",
    `The tag names '${bad.join(",")}' have reserved characters '<,>,%,&,\\,?,/' or control characters.`,
  );
}

const groupNotFound = (name: string) =>
  armError(404, "ResourceGroupNotFound", `Resource group '${name}' could not be found.`);

function render(group: ResourceGroup): JsonObject {
  return {
    id: groupId(group.subscriptionId, group.name),
    name: group.name,
    type: "Microsoft.Resources/resourceGroups",
    location: group.location,
    ...(group.tags ? { tags: group.tags } : {}),
    ...(group.managedBy ? { managedBy: group.managedBy } : {}),
    properties: { provisioningState: group.provisioningState },
  };
}
