/**
 * User-assigned managed identities (Microsoft.ManagedIdentity 2023-01-31): each gets a service principal
 * (principalId) and an application (clientId) in the fake's tenant when created, kept across re-PUTs and
 * gone when the identity is deleted; the RBAC model asks `principalExists` before it assigns a role.
 */
import { randomUUID } from "node:crypto";
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import {
  FAKE_TENANT_ID,
  groupId,
  isUnder,
  key,
  locationConflict,
  normalizeLocation,
  resourceNotFound,
  type GroupGuard,
} from "./arm-models";
import type { JsonObject } from "./openapi";
import { checkTags } from "./resource-groups";

export const MSI_API_VERSION = "2023-01-31";
export const MSI_SPECS = [
  "msi/resource-manager/Microsoft.ManagedIdentity/stable/2023-01-31/ManagedIdentity.json",
];
const TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities";

export interface UserAssignedIdentity {
  id: string;
  name: string;
  location: string;
  tags?: Record<string, string>;
  principalId: string;
  clientId: string;
  /** Incremented by every write: lets a test tell a re-PUT from a new identity. */
  writes: number;
}

export interface PrincipalDirectory {
  principalExists(principalId: string): boolean;
}

export class MsiState implements PrincipalDirectory {
  readonly tenantId: string;
  readonly groups?: GroupGuard;
  private readonly identities = new Map<string, UserAssignedIdentity>();

  constructor(options: { groups?: GroupGuard; tenantId?: string } = {}) {
    this.tenantId = options.tenantId ?? FAKE_TENANT_ID;
    this.groups = options.groups;
    this.groups?.onGroupDeleted((id) => {
      for (const identity of this.all())
        if (isUnder(identity.id, id)) this.identities.delete(key(identity.id));
    });
  }

  get(id: string): UserAssignedIdentity | undefined {
    return this.identities.get(key(id));
  }
  all(): UserAssignedIdentity[] {
    return [...this.identities.values()];
  }
  principalExists(principalId: string): boolean {
    return this.all().some((identity) => key(identity.principalId) === key(principalId));
  }
  set(identity: UserAssignedIdentity): void {
    this.identities.set(key(identity.id), identity);
  }
  delete(id: string): boolean {
    return this.identities.delete(key(id));
  }
}

export function installMsi(fake: ArmFake, state = new MsiState()): MsiState {
  fake.on("UserAssignedIdentities_CreateOrUpdate", (req) => createOrUpdate(state, req));
  fake.on("UserAssignedIdentities_Update", (req) => update(state, req));
  fake.on("UserAssignedIdentities_Get", (req) => {
    const identity = state.get(req.path);
    return identity ? { status: 200, body: render(state, identity) } : notFound(req);
  });
  fake.on("UserAssignedIdentities_Delete", (req) => ({ status: state.delete(req.path) ? 200 : 204 }));
  for (const list of [
    "UserAssignedIdentities_ListByResourceGroup",
    "UserAssignedIdentities_ListBySubscription",
  ])
    fake.on(list, (req) => {
      const scope = req.path.replace(/\/providers\/.*$/i, "");
      const found = state.all().filter((identity) => isUnder(identity.id, scope));
      return { status: 200, body: { value: found.map((identity) => render(state, identity)) } };
    });
  return state;
}

function createOrUpdate(state: MsiState, req: ArmRequest): ArmResponse {
  const {
    subscriptionId,
    resourceGroupName: group,
    resourceName: name,
  } = req.params as Record<string, string>;
  // The description leaves the name free; the service takes 3-128 of these, starting alphanumeric.
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$/.test(name))
    return armError(
      400,
      "InvalidResourceName",
      `Resource name '${name}' is invalid. The name can contain only letters, numbers, underscores and ` +
        "hyphens, must start with a letter or number and be 3 to 128 characters long.",
    );
  const refused =
    state.groups?.requireGroup(subscriptionId, group) ?? checkTags((req.body as JsonObject).tags);
  if (refused) return refused;
  const body = req.body as JsonObject;
  const location = normalizeLocation(String(body.location));
  const existing = state.get(req.path);
  if (existing && existing.location !== location)
    return locationConflict(existing.name, existing.location, location, group);
  const identity: UserAssignedIdentity = {
    id: existing?.id ?? `${groupId(subscriptionId, group)}/providers/${TYPE}/${name}`,
    name: existing?.name ?? name,
    location,
    ...(body.tags ? { tags: body.tags as Record<string, string> } : {}),
    // The principal and the application are made once, with the identity.
    principalId: existing?.principalId ?? randomUUID(),
    clientId: existing?.clientId ?? randomUUID(),
    writes: (existing?.writes ?? 0) + 1,
  };
  state.set(identity);
  return { status: existing ? 200 : 201, body: render(state, identity) };
}

function update(state: MsiState, req: ArmRequest): ArmResponse {
  const identity = state.get(req.path);
  if (!identity) return notFound(req);
  const patch = req.body as JsonObject;
  const refused = checkTags(patch.tags);
  if (refused) return refused;
  if (patch.tags) identity.tags = patch.tags as Record<string, string>;
  identity.writes++;
  return { status: 200, body: render(state, identity) };
}

const notFound = (req: ArmRequest) =>
  resourceNotFound(TYPE, req.params.resourceName!, req.params.resourceGroupName!);

function render(state: MsiState, identity: UserAssignedIdentity): JsonObject {
  return {
    id: identity.id,
    name: identity.name,
    type: TYPE,
    location: identity.location,
    ...(identity.tags ? { tags: identity.tags } : {}),
    properties: {
      tenantId: state.tenantId,
      principalId: identity.principalId,
      clientId: identity.clientId,
    },
  };
}
