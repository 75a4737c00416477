/**
 * Stateful handlers for ARM tracked resources (PUT/GET/PATCH/DELETE/list), shared by every resource type:
 * a resource is stored under its id (the request path, compared case-insensitively as ARM does), carries
 * an ETag checked against If-Match / If-None-Match (412), and long-running writes go through the fake's
 * asynchronous operations (201/202 + Azure-AsyncOperation, polled to Succeeded or Failed).
 */
import { armError, type ArmFake, type ArmRequest, type ArmResponse, type Outcome } from "./arm-fake";
import type { Json, JsonObject } from "./openapi";

export interface StoredResource {
  resource: JsonObject;
  etag: string;
}

/** What a test can decide about a create: refuse it at once (4xx) or let it end Failed asynchronously. */
export type CreateCheck = (request: ArmRequest, store: ResourceStore) => ArmResponse | Outcome | undefined;

export interface ResourceOperations {
  createOrUpdate?: string;
  get?: string;
  update?: string;
  delete?: string;
  list?: string[];
  /** Checks a create or replace before it is accepted (e.g. that a referenced blob exists). */
  checkCreate?: CreateCheck;
}

export class ResourceStore {
  private readonly items = new Map<string, StoredResource>();
  private revision = 0;

  get(id: string): StoredResource | undefined {
    return this.items.get(id.toLowerCase());
  }
  put(resource: JsonObject): StoredResource {
    const stored = { resource, etag: `"${++this.revision}"` };
    this.items.set(String(resource.id).toLowerCase(), stored);
    return stored;
  }
  delete(id: string): boolean {
    return this.items.delete(id.toLowerCase());
  }
  all(): JsonObject[] {
    return [...this.items.values()].map((s) => s.resource);
  }
}

/** `Microsoft.Compute/images` from `/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/n`. */
export function resourceType(id: string): string {
  const [namespace, ...typesAndNames] = id
    .split(/\/providers\//i)
    .pop()!
    .split("/")
    .filter(Boolean);
  return [namespace, ...typesAndNames.filter((_, i) => i % 2 === 0)].join("/");
}

export function registerResource(fake: ArmFake, store: ResourceStore, ops: ResourceOperations): void {
  if (ops.createOrUpdate) fake.on(ops.createOrUpdate, (req) => createOrUpdate(fake, store, ops, req));
  if (ops.get)
    fake.on(ops.get, (req) => {
      const found = store.get(req.path);
      return found ? { status: 200, body: found.resource, headers: { ETag: found.etag } } : notFound(req);
    });
  if (ops.update) fake.on(ops.update, (req) => update(fake, store, req));
  if (ops.delete) fake.on(ops.delete, (req) => remove(fake, store, req));
  for (const list of ops.list ?? [])
    fake.on(list, (req) => ({ status: 200, body: { value: listUnder(store, req.path) } }));
}

function createOrUpdate(
  fake: ArmFake,
  store: ResourceStore,
  ops: ResourceOperations,
  req: ArmRequest,
): ArmResponse {
  const existing = store.get(req.path);
  const precondition = preconditionFailed(req, existing);
  if (precondition) return precondition;
  const decided = ops.checkCreate?.(req, store);
  if (decided && "status" in decided && typeof decided.status === "number") return decided as ArmResponse;
  const outcome = (decided as Outcome | undefined) ?? { status: "Succeeded" };
  const body = req.body as JsonObject;
  const id = existing ? String(existing.resource.id) : req.path;
  const resource: JsonObject = {
    ...body,
    id,
    name: id.split("/").pop()!,
    type: resourceType(id),
    properties: { ...((body.properties as JsonObject) ?? {}), provisioningState: "Creating" },
  };
  const stored = store.put(resource);
  const status = existing ? 200 : 201;
  if (!req.operation.longRunning) {
    setState(resource, outcome.status);
    return { status, body: resource, headers: { ETag: stored.etag } };
  }
  const headers = fake.asyncOperation(req, outcome, (end) => setState(resource, end.status));
  return { status, body: resource, headers: { ...headers, ETag: stored.etag } };
}

function update(fake: ArmFake, store: ResourceStore, req: ArmRequest): ArmResponse {
  const existing = store.get(req.path);
  if (!existing) return notFound(req);
  const precondition = preconditionFailed(req, existing);
  if (precondition) return precondition;
  const patch = req.body as JsonObject;
  const resource: JsonObject = {
    ...existing.resource,
    ...(patch.tags ? { tags: patch.tags } : {}),
    properties: {
      ...(existing.resource.properties as JsonObject),
      ...((patch.properties as JsonObject) ?? {}),
    },
  };
  const stored = store.put(resource);
  const headers = req.operation.longRunning
    ? fake.asyncOperation(req, { status: "Succeeded" }, () => {})
    : {};
  return { status: 200, body: resource, headers: { ...headers, ETag: stored.etag } };
}

function remove(fake: ArmFake, store: ResourceStore, req: ArmRequest): ArmResponse {
  const existing = store.get(req.path);
  if (!existing) return { status: 204 };
  const precondition = preconditionFailed(req, existing);
  if (precondition) return precondition;
  if (!req.operation.longRunning) {
    store.delete(req.path);
    return { status: 200 };
  }
  setState(existing.resource, "Deleting");
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => store.delete(req.path));
  return { status: 202, headers };
}

/** Resources of the listed type whose id lies under the list's scope (a subscription or a resource group). */
function listUnder(store: ResourceStore, listPath: string): Json[] {
  const [scope, typePath] = listPath.split(/\/providers\//i) as [string, string];
  const wanted = resourceType(`/providers/${typePath}`).toLowerCase();
  return store
    .all()
    .filter((r) => {
      const id = String(r.id).toLowerCase();
      return id.startsWith(`${scope.toLowerCase()}/`) && resourceType(id).toLowerCase() === wanted;
    })
    .sort((a, b) => String(a.id).localeCompare(String(b.id)));
}

function preconditionFailed(req: ArmRequest, existing: StoredResource | undefined): ArmResponse | undefined {
  const ifMatch = req.headers["if-match"];
  const ifNoneMatch = req.headers["if-none-match"];
  if (ifMatch !== undefined && (!existing || (ifMatch !== "*" && ifMatch !== existing.etag)))
    return armError(412, "PreconditionFailed", `If-Match ${ifMatch} does not match the resource's ETag`);
  if (ifNoneMatch === "*" && existing)
    return armError(412, "PreconditionFailed", "If-None-Match: * but the resource exists");
  return undefined;
}

function setState(resource: JsonObject, state: string): void {
  resource.properties = { ...((resource.properties as JsonObject) ?? {}), provisioningState: state };
}

const notFound = (req: ArmRequest) =>
  armError(
    404,
    "ResourceNotFound",
    `The Resource '${resourceType(req.path)}/${req.path.split("/").pop()}' was not found.`,
  );
