import { bytesEtag, maskPaths, page } from "./common";
import { rpcError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";

/**
 * IAM v1 behind the fake: service accounts and project custom roles, strict where clients trip in GCP.
 * - Accounts: accountId `^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$` (400), a duplicate 409 ALREADY_EXISTS, the
 *   email `ID@PROJECT.iam.gserviceaccount.com`, a numeric uniqueId; get/patch/delete by email or uniqueId,
 *   under `projects/PROJECT/` or the `projects/-/` wildcard. Deleting one tells the policy holders (project,
 *   secrets), which rewrite its members to `deleted:serviceAccount:EMAIL?uid=ID` as GCP shows them.
 * - Roles: soft delete. A deleted role stays 7 days (`deleted: true`, get answers it, list only with
 *   showDeleted, undelete restores it); then it is purged (404) but its id stays taken until day 37:
 *   create of a deleted id answers 400 FAILED_PRECONDITION ("marked for deletion"), as GCP does. A stale
 *   etag (patch, delete) answers 409 ABORTED. `now` is the model's clock, for tests to move time.
 */
export interface ServiceAccountJson {
  name: string;
  projectId: string;
  uniqueId: string;
  email: string;
  displayName?: string;
  description?: string;
  etag: string;
  oauth2ClientId: string;
}

export interface CustomRole {
  /** `projects/P/roles/ID`. */
  name: string;
  title?: string;
  description?: string;
  includedPermissions: string[];
  stage: string;
  etag: string;
  /** When it was deleted (the model's clock), while it is deleted. */
  deletedAt?: number;
}

export type RolePhase = "active" | "deleted" | "purging";

const DAY = 86_400_000;
const UNDELETE_DAYS = 7;
const PURGE_DAYS = 37;
const ACCOUNT_ID = /^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$/;
const ROLE_ID = /^[a-zA-Z0-9_.]{3,64}$/;
const PERMISSION = /^[a-z][a-z0-9]*\.[a-zA-Z0-9]+\.[a-zA-Z0-9]+$/;
const ROLE_FIELDS = ["title", "description", "includedPermissions", "stage"] as const;

export class IamState {
  /** Service accounts by email. */
  readonly accounts = new Map<string, ServiceAccountJson>();
  /** Custom roles by name (`projects/P/roles/ID`), deleted ones included until purged for good. */
  readonly roles = new Map<string, CustomRole>();
  /** The model's clock (ms): tests move it to see a deleted role purged. */
  now: () => number = () => Date.now();
  private readonly deletedListeners: ((email: string, uniqueId: string) => void)[] = [];
  private ids = 0;

  exists(email: string): boolean {
    return this.accounts.has(email);
  }

  /** An account by email or uniqueId. */
  account(key: string): ServiceAccountJson | undefined {
    return this.accounts.get(key) ?? [...this.accounts.values()].find((a) => a.uniqueId === key);
  }

  addAccount(
    project: string,
    accountId: string,
    fields: { displayName?: string; description?: string } = {},
  ) {
    const email = `${accountId}@${project}.iam.gserviceaccount.com`;
    const uniqueId = String(100_000_000_000_000_000_000n + BigInt(++this.ids) * 7919n);
    const account: ServiceAccountJson = {
      name: `projects/${project}/serviceAccounts/${email}`,
      projectId: project,
      uniqueId,
      email,
      ...(fields.displayName ? { displayName: fields.displayName } : {}),
      ...(fields.description ? { description: fields.description } : {}),
      etag: "MDEwMjE5MjA=", // GCP answers this constant etag for every account
      oauth2ClientId: uniqueId,
    };
    this.accounts.set(email, account);
    return account;
  }

  deleteAccount(email: string): boolean {
    const account = this.accounts.get(email);
    if (!account) return false;
    this.accounts.delete(email);
    for (const listener of this.deletedListeners) listener(email, account.uniqueId);
    return true;
  }

  /** Policy holders register here to rewrite the members of a deleted account. */
  onAccountDeleted(listener: (email: string, uniqueId: string) => void): void {
    this.deletedListeners.push(listener);
  }

  /** A custom role's phase now; undefined when there is none (or it is purged for good, day 37). */
  rolePhase(name: string): RolePhase | undefined {
    const role = this.roles.get(name);
    if (!role) return undefined;
    if (role.deletedAt === undefined) return "active";
    const age = this.now() - role.deletedAt;
    if (age >= PURGE_DAYS * DAY) {
      this.roles.delete(name);
      return undefined;
    }
    return age >= UNDELETE_DAYS * DAY ? "purging" : "deleted";
  }
}

export function installIam(fake: GoogleApiFake, state = new IamState()): IamState {
  fake.on("iam.projects.serviceAccounts.create", (request) => createAccount(state, request));
  fake.on("iam.projects.serviceAccounts.get", (request) => {
    const account = findAccount(state, request.params.name);
    return account ? { json: account } : unknownAccount(request.params.name);
  });
  fake.on("iam.projects.serviceAccounts.delete", (request) => {
    const account = findAccount(state, request.params.name);
    if (!account) return unknownAccount(request.params.name);
    state.deleteAccount(account.email);
    return { json: {} };
  });
  fake.on("iam.projects.serviceAccounts.list", (request) => {
    const project = projectOf(request.params.name);
    const all = [...state.accounts.values()].filter((a) => a.projectId === project);
    const found = page(all, { ...paging(request), tag: `sa:${project}`, default: 20, max: 100 });
    if (!found) return rpcError(400, "INVALID_ARGUMENT", "Invalid page token");
    // proto3 JSON leaves out empty lists: an empty project answers `{}`.
    return {
      json: {
        ...(found.items.length ? { accounts: found.items } : {}),
        ...(found.nextPageToken ? { nextPageToken: found.nextPageToken } : {}),
      },
    };
  });
  fake.on("iam.projects.serviceAccounts.patch", (request) => patchAccount(state, request));
  fake.on("iam.projects.roles.create", (request) => createRole(state, request));
  fake.on("iam.projects.roles.get", (request) => {
    const role = visibleRole(state, request.params.name);
    return role ? { json: roleJson(role, true) } : unknownRole(request.params.name);
  });
  fake.on("iam.projects.roles.list", (request) => listRoles(state, request));
  fake.on("iam.projects.roles.patch", (request) => patchRole(state, request));
  fake.on("iam.projects.roles.delete", (request) => deleteRole(state, request));
  fake.on("iam.projects.roles.undelete", (request) => {
    const role = visibleRole(state, request.params.name);
    if (!role) return unknownRole(request.params.name);
    if (role.deletedAt === undefined)
      return rpcError(400, "FAILED_PRECONDITION", `The role ${role.name} is not deleted.`);
    const etag = (request.json as { etag?: string } | undefined)?.etag;
    if (etag && etag !== role.etag) return staleEtag();
    role.deletedAt = undefined;
    role.etag = bytesEtag();
    return { json: roleJson(role, true) };
  });
  return state;
}

const paging = (request: FakeRequest) => ({
  pageSize: request.query.get("pageSize"),
  pageToken: request.query.get("pageToken"),
});

const projectOf = (parent: string) => parent.replace(/^projects\//, "");

const unknownAccount = (name: string) => rpcError(404, "NOT_FOUND", `Unknown service account ${name}`);
const unknownRole = (name: string) => rpcError(404, "NOT_FOUND", `The role named ${name} was not found.`);
const staleEtag = () =>
  rpcError(409, "ABORTED", "The etag does not match the role's: it changed since it was read.");

/** `projects/P/serviceAccounts/KEY`: KEY an email or uniqueId; P the account's project or `-`. */
function findAccount(state: IamState, name: string): ServiceAccountJson | undefined {
  const match = /^projects\/([^/]+)\/serviceAccounts\/([^/]+)$/.exec(name);
  const account = match ? state.account(match[2]) : undefined;
  return account && (match![1] === "-" || match![1] === account.projectId) ? account : undefined;
}

function createAccount(state: IamState, request: FakeRequest): FakeResponse {
  const project = projectOf(request.params.name);
  if (project === "-") return rpcError(400, "INVALID_ARGUMENT", "A service account needs a project, not -");
  const body = (request.json ?? {}) as {
    accountId?: string;
    serviceAccount?: { displayName?: string; description?: string };
  };
  const id = body.accountId ?? "";
  if (!ACCOUNT_ID.test(id))
    return rpcError(
      400,
      "INVALID_ARGUMENT",
      `Invalid account ID "${id}": it must be 6 to 30 characters of lower case letters, digits or dashes, ` +
        `start with a letter and not end with a dash (${ACCOUNT_ID.source})`,
    );
  const fields = body.serviceAccount ?? {};
  if ((fields.displayName ?? "").length > 100 || (fields.description ?? "").length > 256)
    return rpcError(400, "INVALID_ARGUMENT", "displayName is at most 100 characters, description 256");
  if (state.exists(`${id}@${project}.iam.gserviceaccount.com`))
    return rpcError(
      409,
      "ALREADY_EXISTS",
      `Service account ${id} already exists within project projects/${project}.`,
    );
  return { json: state.addAccount(project, id, fields) };
}

function patchAccount(state: IamState, request: FakeRequest): FakeResponse {
  const account = findAccount(state, request.params.name);
  if (!account) return unknownAccount(request.params.name);
  const body = (request.json ?? {}) as {
    serviceAccount?: { displayName?: string; description?: string };
    updateMask?: string;
  };
  const paths = maskPaths(body.updateMask);
  const wrong = paths.filter((path) => path !== "displayName" && path !== "description");
  if (paths.length === 0 || wrong.length > 0)
    return rpcError(400, "INVALID_ARGUMENT", `updateMask must name displayName and/or description`);
  for (const path of paths as ("displayName" | "description")[]) {
    const value = body.serviceAccount?.[path];
    if (value) account[path] = value;
    else delete account[path];
  }
  return { json: account };
}

/** Roles get, undelete and patch see: active and (for 7 days) deleted ones; not purging ones. */
function visibleRole(state: IamState, name: string): CustomRole | undefined {
  const phase = state.rolePhase(name);
  return phase === "active" || phase === "deleted" ? state.roles.get(name) : undefined;
}

function roleJson(role: CustomRole, full: boolean) {
  return {
    name: role.name,
    ...(role.title ? { title: role.title } : {}),
    ...(role.description ? { description: role.description } : {}),
    ...(full && role.includedPermissions.length ? { includedPermissions: role.includedPermissions } : {}),
    // ALPHA is the enum's default: GCP leaves the field out.
    ...(role.stage !== "ALPHA" ? { stage: role.stage } : {}),
    etag: role.etag,
    ...(role.deletedAt !== undefined ? { deleted: true } : {}),
  };
}

type RoleFields = Partial<Pick<CustomRole, "title" | "description" | "includedPermissions" | "stage">>;

function roleProblem(fields: RoleFields): string | undefined {
  if ((fields.title ?? "").length > 100) return "The title is at most 100 characters.";
  if ((fields.description ?? "").length > 300) return "The description is at most 300 characters.";
  const bad = (fields.includedPermissions ?? []).find((p) => !PERMISSION.test(p));
  return bad === undefined ? undefined : `Permission ${bad} is not valid.`;
}

function createRole(state: IamState, request: FakeRequest): FakeResponse {
  const parent = request.params.parent;
  const body = (request.json ?? {}) as { roleId?: string; role?: RoleFields };
  const id = body.roleId ?? "";
  if (!ROLE_ID.test(id))
    return rpcError(400, "INVALID_ARGUMENT", `The role id "${id}" must match ${ROLE_ID.source}.`);
  const name = `${parent}/roles/${id}`;
  const phase = state.rolePhase(name);
  if (phase === "active")
    return rpcError(409, "ALREADY_EXISTS", `A role named ${id} in ${parent} already exists.`);
  if (phase)
    return rpcError(
      400,
      "FAILED_PRECONDITION",
      `You can't create a role_id (${id}) which has been marked for deletion.`,
    );
  const fields = body.role ?? {};
  const problem = roleProblem(fields);
  if (problem) return rpcError(400, "INVALID_ARGUMENT", problem);
  const role: CustomRole = {
    name,
    title: fields.title,
    description: fields.description,
    includedPermissions: [...new Set(fields.includedPermissions ?? [])],
    stage: fields.stage ?? "ALPHA",
    etag: bytesEtag(),
  };
  state.roles.set(name, role);
  return { json: roleJson(role, true) };
}

function listRoles(state: IamState, request: FakeRequest): FakeResponse {
  const parent = request.params.parent;
  const showDeleted = request.query.get("showDeleted") === "true";
  const all = [...state.roles.keys()]
    .filter((name) => name.startsWith(`${parent}/roles/`))
    .filter((name) => {
      const phase = state.rolePhase(name);
      return phase === "active" || (showDeleted && phase === "deleted");
    })
    .map((name) => state.roles.get(name)!);
  const found = page(all, {
    ...paging(request),
    tag: `roles:${parent}:${showDeleted}`,
    default: 300,
    max: 1000,
  });
  if (!found) return rpcError(400, "INVALID_ARGUMENT", "Invalid page token");
  const full = request.query.get("view") === "FULL";
  return {
    json: {
      ...(found.items.length ? { roles: found.items.map((role) => roleJson(role, full)) } : {}),
      ...(found.nextPageToken ? { nextPageToken: found.nextPageToken } : {}),
    },
  };
}

function patchRole(state: IamState, request: FakeRequest): FakeResponse {
  const role = visibleRole(state, request.params.name);
  if (!role) return unknownRole(request.params.name);
  const body = (request.json ?? {}) as RoleFields & { etag?: string };
  if (body.etag && body.etag !== role.etag) return staleEtag();
  if (role.deletedAt !== undefined)
    return rpcError(400, "FAILED_PRECONDITION", `You can't update a deleted role (${role.name}).`);
  // Without a mask, the fields the body has are the ones to change.
  const paths = maskPaths(request.query.get("updateMask"));
  const fields = paths.length ? paths : ROLE_FIELDS.filter((field) => body[field] !== undefined);
  const wrong = fields.filter((path) => !(ROLE_FIELDS as readonly string[]).includes(path));
  if (wrong.length)
    return rpcError(400, "INVALID_ARGUMENT", `Invalid update_mask paths: ${wrong.join(", ")}`);
  const problem = roleProblem(body);
  if (problem) return rpcError(400, "INVALID_ARGUMENT", problem);
  for (const field of fields as (typeof ROLE_FIELDS)[number][]) {
    if (field === "includedPermissions")
      role.includedPermissions = [...new Set(body.includedPermissions ?? [])];
    else if (field === "stage") role.stage = body.stage ?? "ALPHA";
    else role[field] = body[field];
  }
  role.etag = bytesEtag();
  return { json: roleJson(role, true) };
}

function deleteRole(state: IamState, request: FakeRequest): FakeResponse {
  const role = visibleRole(state, request.params.name);
  if (!role) return unknownRole(request.params.name);
  const etag = request.query.get("etag");
  if (etag && etag !== role.etag) return staleEtag();
  if (role.deletedAt !== undefined)
    return rpcError(400, "FAILED_PRECONDITION", `The role ${role.name} is already deleted.`);
  role.deletedAt = state.now();
  role.etag = bytesEtag();
  return { json: roleJson(role, true) };
}
