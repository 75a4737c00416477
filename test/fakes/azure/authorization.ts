/**
 * Role assignments (Microsoft.Authorization 2022-04-01) at any scope: a built-in role given by its
 * subscription-level definition id, a principal the directory knows (with Entra ID's replication delay for
 * new principals, as a switch), one assignment per role, principal and scope, and the lists with the
 * `atScope()` and `principalId eq '…'` filters.
 */
import { randomUUID } from "node:crypto";
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import { FAKE_TENANT_ID, GUID, groupOf, isUnder, key, type GroupGuard } from "./arm-models";
import type { PrincipalDirectory } from "./msi";
import type { JsonObject } from "./openapi";

export const AUTHORIZATION_API_VERSION = "2022-04-01";
export const AUTHORIZATION_SPECS = [
  "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json",
];

/** Built-in roles by their ids in every tenant (learn.microsoft.com, "Azure built-in roles"). */
export const BUILT_IN_ROLES = {
  Reader: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
  Contributor: "b24988ac-6180-42a0-ab88-20f7382dd24c",
  "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
  "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
  "Private DNS Zone Contributor": "b12aa53e-6015-4669-85d0-8515ebb3ae7f",
  "Virtual Machine Contributor": "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
  "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
} as const;

/** The form of a role definition id that role assignments carry. */
export const roleDefinitionId = (subscriptionId: string, roleId: string): string =>
  `/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${roleId}`;

type PrincipalType = "User" | "Group" | "ServicePrincipal";

export interface RoleAssignment {
  id: string;
  name: string;
  scope: string;
  roleDefinitionId: string;
  principalId: string;
  principalType: PrincipalType;
  description?: string;
  createdOn: string;
}

export class AuthorizationState {
  /**
   * How many create attempts a principal is reported PrincipalNotFound before Entra ID "replicates" it,
   * unless the request names its principalType (Azure's documented way around the delay).
   */
  replicationDelayAttempts = 0;
  readonly tenantId: string;
  readonly groups?: GroupGuard;
  /** Role ids the model knows; a test may add custom ones. */
  readonly roles = new Set<string>(Object.values(BUILT_IN_ROLES));
  private readonly directories: PrincipalDirectory[];
  /** Principals outside the identity model: users, groups, app registrations. */
  private readonly principals = new Map<string, PrincipalType>();
  private readonly attempts = new Map<string, number>();
  private readonly assignments = new Map<string, RoleAssignment>();

  constructor(options: { groups?: GroupGuard; directories?: PrincipalDirectory[]; tenantId?: string } = {}) {
    this.groups = options.groups;
    this.directories = options.directories ?? [];
    this.tenantId = options.tenantId ?? FAKE_TENANT_ID;
    // ARM deletes the assignments at or below a deleted group with it.
    this.groups?.onGroupDeleted((group) => {
      for (const assignment of this.all())
        if (isUnder(assignment.scope, group)) this.assignments.delete(key(assignment.id));
    });
  }

  addPrincipal(principalId: string, type: PrincipalType = "User"): void {
    this.principals.set(key(principalId), type);
  }

  /** The principal's type, or undefined when the directory does not know it. */
  principalType(principalId: string): PrincipalType | undefined {
    if (this.directories.some((d) => d.principalExists(principalId))) return "ServicePrincipal";
    return this.principals.get(key(principalId));
  }

  get(id: string): RoleAssignment | undefined {
    return this.assignments.get(key(id));
  }
  all(): RoleAssignment[] {
    return [...this.assignments.values()];
  }
  /** Assignments of a principal: what a test asks after a launch. */
  forPrincipal(principalId: string): RoleAssignment[] {
    return this.all().filter((a) => key(a.principalId) === key(principalId));
  }
  set(assignment: RoleAssignment): void {
    this.assignments.set(key(assignment.id), assignment);
  }
  delete(id: string): boolean {
    return this.assignments.delete(key(id));
  }

  /** Counts a create attempt of a replicating principal: true while it is still unknown to ARM. */
  stillReplicating(principalId: string): boolean {
    const seen = this.attempts.get(key(principalId)) ?? 0;
    this.attempts.set(key(principalId), seen + 1);
    return seen < this.replicationDelayAttempts;
  }
}

const LISTS = [
  "RoleAssignments_ListForScope",
  "RoleAssignments_ListForSubscription",
  "RoleAssignments_ListForResourceGroup",
  "RoleAssignments_ListForResource",
];

export function installAuthorization(fake: ArmFake, state = new AuthorizationState()): AuthorizationState {
  fake.on("RoleAssignments_Create", (req) => create(state, req));
  fake.on("RoleAssignments_Get", (req) => {
    const found = state.get(singleSlash(req.path));
    return found ? { status: 200, body: render(found) } : notFound(req.params.roleAssignmentName!);
  });
  fake.on("RoleAssignments_Delete", (req) => {
    const found = state.get(singleSlash(req.path));
    if (!found) return { status: 204 };
    state.delete(found.id);
    return { status: 200, body: render(found) };
  });
  // The lists at a subscription, group or resource match those operations before ListForScope does.
  for (const list of LISTS) fake.on(list, (req) => listAt(state, req));
  return state;
}

function create(state: AuthorizationState, req: ArmRequest): ArmResponse {
  const scope = scopeOf(req.path);
  const name = req.params.roleAssignmentName!;
  if (!GUID.test(name))
    return armError(
      400,
      "InvalidRoleAssignmentId",
      `The role assignment ID '${name}' is not valid. The role assignment ID must be a GUID.`,
    );
  const group = groupOf(scope);
  const refused = group && state.groups?.requireGroup(group.subscriptionId, group.group);
  if (refused) return refused;
  const properties = (req.body as JsonObject).properties as JsonObject;
  const roleId = String(properties.roleDefinitionId);
  const principalId = String(properties.principalId);
  const subscription = /^\/subscriptions\/([^/]+)/i.exec(scope)?.[1];
  const role = new RegExp(
    `^/subscriptions/${subscription}/providers/Microsoft\\.Authorization/roleDefinitions/([^/]+)$`,
    "i",
  ).exec(roleId);
  if (!subscription || !role)
    return armError(
      400,
      "InvalidRoleDefinitionId",
      `The role definition ID '${roleId}' is not valid: expected ` +
        `/subscriptions/{subscription of the scope}/providers/Microsoft.Authorization/roleDefinitions/{role id}.`,
    );
  if (![...state.roles].some((known) => key(known) === key(role[1]!)))
    return armError(
      400,
      "RoleDefinitionDoesNotExist",
      `The specified role definition with ID '${role[1]}' does not exist.`,
    );
  const principalProblem = checkPrincipal(state, principalId, properties.principalType as string | undefined);
  if (principalProblem) return principalProblem;

  const id = `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`;
  const existing = state.get(id);
  const same = (a: RoleAssignment) =>
    key(a.roleDefinitionId) === key(roleId) && key(a.principalId) === key(principalId);
  if (existing) {
    if (same(existing)) return { status: 200, body: render(existing) };
    return armError(
      400,
      "RoleAssignmentUpdateNotPermitted",
      "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
    );
  }
  if (state.all().some((a) => same(a) && key(a.scope) === key(scope)))
    return armError(409, "RoleAssignmentExists", "The role assignment already exists.");
  const assignment: RoleAssignment = {
    id,
    name,
    scope,
    roleDefinitionId: roleId,
    principalId,
    principalType: state.principalType(principalId)!,
    ...(typeof properties.description === "string" ? { description: properties.description } : {}),
    createdOn: new Date().toISOString(),
  };
  state.set(assignment);
  return { status: 201, body: render(assignment) };
}

function checkPrincipal(
  state: AuthorizationState,
  principalId: string,
  declaredType: string | undefined,
): ArmResponse | undefined {
  const actual = state.principalType(principalId);
  const unknown = actual === undefined || (declaredType === undefined && state.stillReplicating(principalId));
  if (unknown)
    return armError(
      400,
      "PrincipalNotFound",
      `Principal ${principalId.replace(/-/g, "")} does not exist in the directory ${state.tenantId}. ` +
        "Check that you have the correct principal ID. If you are creating this principal and then " +
        "immediately assigning a role, this error might be related to a replication delay. In this case, " +
        "set the role assignment principalType property to a value, such as ServicePrincipal, User, or " +
        "Group.  See https://aka.ms/docs-principaltype",
    );
  if (declaredType !== undefined && declaredType !== actual)
    return armError(
      400,
      "UnmatchedPrincipalType",
      `The PrincipalId '${principalId.replace(/-/g, "")}' has type '${actual}', which is different from ` +
        `specified PrincipalType '${declaredType}'.`,
    );
  return undefined;
}

/**
 * Without a filter: assignments at, above or below the scope. atScope(): at or above it.
 * principalId eq '…': that principal's, at, above or below. Both may be joined with "and".
 */
function listAt(state: AuthorizationState, req: ArmRequest): ArmResponse {
  const scope = scopeOf(req.path.replace(/\/providers\/Microsoft\.Authorization\/roleAssignments$/i, ""));
  const filter = req.query.get("$filter") ?? "";
  let atOrAbove = false;
  let principal: string | undefined;
  for (const clause of filter.split(/\s+and\s+/i).filter((c) => c.trim())) {
    const byPrincipal = /^\s*principalId\s+eq\s+'([^']+)'\s*$/i.exec(clause);
    if (/^\s*atScope\(\)\s*$/i.test(clause)) atOrAbove = true;
    else if (byPrincipal) principal = byPrincipal[1];
    else
      return armError(
        400,
        "UnsupportedQuery",
        `The fake understands only atScope() and principalId eq '…' in $filter, not: ${clause}`,
      );
  }
  const found = state
    .all()
    .filter((a) => isUnder(scope, a.scope) || (!atOrAbove && isUnder(a.scope, scope)))
    .filter((a) => principal === undefined || key(a.principalId) === key(principal));
  return { status: 200, body: { value: found.map(render) } };
}

/** The clients send `/{scope}/…` with the scope's own slash: `//subscriptions/…`. */
const singleSlash = (path: string): string => `/${path.replace(/^\/+/, "")}`;

const scopeOf = (path: string): string =>
  singleSlash(path.replace(/\/providers\/Microsoft\.Authorization\/roleAssignments\/[^/]+$/i, ""));

const notFound = (name: string) =>
  armError(404, "RoleAssignmentNotFound", `The role assignment '${name}' is not found.`);

function render(a: RoleAssignment): JsonObject {
  return {
    id: a.id,
    name: a.name,
    type: "Microsoft.Authorization/roleAssignments",
    properties: {
      roleDefinitionId: a.roleDefinitionId,
      principalId: a.principalId,
      principalType: a.principalType,
      scope: a.scope,
      ...(a.description ? { description: a.description } : {}),
      createdOn: a.createdOn,
      updatedOn: a.createdOn,
      createdBy: CALLER,
      updatedBy: CALLER,
    },
  };
}

/** The object id of whoever the fake's bearer token stands for. */
const CALLER = randomUUID();
