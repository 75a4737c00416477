/**
 * Storage accounts and blob containers of Resource Manager (Microsoft.Storage 2023-05-01). Blob data is
 * azurite's (the official emulator): an account's primaryEndpoints.blob is the URL the test gives, and a
 * container created or deleted here is created or deleted there too through the onContainer hook, so the
 * management and data views agree. Account names are global; the create is asynchronous (202, polled).
 */
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import type { JsonObject } from "./openapi";
import { asObject, badRequest, Jobs, lower, resourceNotFound } from "./model-kit";

const STORAGE = "storage/resource-manager/Microsoft.Storage/stable/2023-05-01";
export const STORAGE_SPECS = [`${STORAGE}/storage.json`, `${STORAGE}/blob.json`];

export interface StorageAccount {
  name: string;
  resource: JsonObject;
  /** Containers by name, each as GET answers it. */
  containers: Map<string, JsonObject>;
}

export interface StorageOptions {
  /** The account's blob endpoint (azurite's URL in tests); default https://<name>.blob.core.windows.net/. */
  blobEndpoint?: (account: string) => string;
  /** Mirrors a container change to the blob service (azurite); a failure fails the management call. */
  onContainer?: (account: string, container: string, change: "create" | "delete") => Promise<void> | void;
}

export class StorageState {
  /** By name: account names are global. */
  readonly accounts = new Map<string, StorageAccount>();
  blobEndpoint: (account: string) => string;
  onContainer?: StorageOptions["onContainer"];
  readonly jobs = new Jobs();

  constructor(options: StorageOptions = {}) {
    this.blobEndpoint = options.blobEndpoint ?? ((name) => `https://${name}.blob.core.windows.net/`);
    this.onContainer = options.onContainer;
  }

  settle(): Promise<void> {
    return this.jobs.settle();
  }

  account(id: string): StorageAccount | undefined {
    const account = this.accounts.get(id.split("/").pop()!);
    return account && lower(String(account.resource.id)) === lower(id) ? account : undefined;
  }
}

export function installStorage(fake: ArmFake, state = new StorageState()): StorageState {
  fake.on("StorageAccounts_Create", (req) => createAccount(fake, state, req));
  fake.on("StorageAccounts_GetProperties", (req) => {
    const account = state.account(req.path);
    return account
      ? { status: 200, body: account.resource }
      : resourceNotFound(req, "Microsoft.Storage/storageAccounts");
  });
  fake.on("StorageAccounts_ListByResourceGroup", (req) => {
    const scope = lower(req.path.replace(/\/providers\/.*$/i, ""));
    const value = [...state.accounts.values()]
      .filter((a) => lower(String(a.resource.id)).startsWith(`${scope}/`))
      .map((a) => a.resource);
    return { status: 200, body: { value } };
  });
  fake.on("StorageAccounts_Delete", async (req) => {
    const account = state.account(req.path);
    if (!account) return { status: 204 };
    for (const container of account.containers.keys()) {
      const failed = await mirror(state, account.name, container, "delete");
      if (failed) return failed;
    }
    state.accounts.delete(account.name);
    return { status: 200 };
  });
  fake.on("StorageAccounts_CheckNameAvailability", (req) => {
    const name = String(asObject(req.body).name);
    const body: JsonObject = !/^[a-z0-9]{3,24}$/.test(name)
      ? {
          nameAvailable: false,
          reason: "AccountNameInvalid",
          message: `${name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.`,
        }
      : state.accounts.has(name)
        ? {
            nameAvailable: false,
            reason: "AlreadyExists",
            message: `The storage account named ${name} is already taken.`,
          }
        : { nameAvailable: true };
    return { status: 200, body };
  });
  fake.on("BlobContainers_Create", (req) => createContainer(state, req));
  fake.on("BlobContainers_Get", (req) => {
    const container = state.account(accountIdOf(req.path))?.containers.get(req.params.containerName!);
    return container ? { status: 200, body: container } : containerNotFound(req);
  });
  fake.on("BlobContainers_Delete", async (req) => {
    const account = state.account(accountIdOf(req.path));
    if (!account?.containers.has(req.params.containerName!)) return { status: 204 };
    const failed = await mirror(state, account.name, req.params.containerName!, "delete");
    if (failed) return failed;
    account.containers.delete(req.params.containerName!);
    return { status: 200 };
  });
  return state;
}

const accountIdOf = (path: string) => path.replace(/\/blobServices\/default\/containers\/[^/]+$/i, "");

function createAccount(fake: ArmFake, state: StorageState, req: ArmRequest): ArmResponse {
  const name = req.params.accountName!;
  const known = state.accounts.get(name);
  if (known && lower(String(known.resource.id)) !== lower(req.path))
    return armError(409, "StorageAccountAlreadyTaken", `The storage account named ${name} is already taken.`);
  const body = req.body as JsonObject;
  const given = asObject(body.properties);
  if (known && known.resource.location !== body.location)
    return badRequest(
      "InvalidRequestContent",
      "The location of an existing storage account cannot be changed.",
    );
  const account: StorageAccount = known ?? { name, resource: {}, containers: new Map() };
  const before = asObject(known?.resource.properties);
  account.resource = {
    id: req.path,
    name,
    type: "Microsoft.Storage/storageAccounts",
    location: String(body.location),
    tags: asObject(body.tags),
    kind: String(body.kind),
    sku: { name: String(asObject(body.sku).name), tier: String(asObject(body.sku).name).split("_")[0]! },
    ...(body.identity ? { identity: body.identity } : {}),
    properties: {
      ...given,
      // Azure's defaults for a new account: no anonymous blob access, TLS 1.2, https only.
      allowBlobPublicAccess: given.allowBlobPublicAccess === true,
      minimumTlsVersion: String(given.minimumTlsVersion ?? "TLS1_2"),
      supportsHttpsTrafficOnly: given.supportsHttpsTrafficOnly !== false,
      ...(given.allowSharedKeyAccess !== undefined
        ? { allowSharedKeyAccess: given.allowSharedKeyAccess }
        : {}),
      accessTier: String(given.accessTier ?? "Hot"),
      provisioningState: known ? "Succeeded" : "Creating",
      primaryEndpoints: { blob: state.blobEndpoint(name) },
      primaryLocation: String(body.location),
      statusOfPrimary: "available",
      creationTime: String(before.creationTime ?? new Date().toISOString()),
    },
  };
  state.accounts.set(name, account);
  const finish = state.jobs.add(
    () => void (asObject(account.resource.properties).provisioningState = "Succeeded"),
  );
  // Storage announces the operation by Location alone; its monitor URL ends with the account.
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, finish, () => account.resource);
  return { status: 202, headers };
}

async function mirror(
  state: StorageState,
  account: string,
  container: string,
  change: "create" | "delete",
): Promise<ArmResponse | undefined> {
  try {
    await state.onContainer?.(account, container, change);
    return undefined;
  } catch (error) {
    return armError(
      500,
      "InternalServerError",
      `the blob service failed to ${change} ${container}: ${String(error)}`,
    );
  }
}

const containerNotFound = (req: ArmRequest) =>
  armError(404, "ContainerNotFound", `The specified container ${req.params.containerName} does not exist.`);

async function createContainer(state: StorageState, req: ArmRequest): Promise<ArmResponse> {
  const accountId = accountIdOf(req.path);
  const account = state.account(accountId);
  if (!account)
    return armError(
      404,
      "ParentResourceNotFound",
      `Can not perform requested operation on nested resource. Parent resource '${req.params.accountName}' not found.`,
    );
  const name = req.params.containerName!;
  if (!/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(name))
    return badRequest(
      "ContainerOperationFailure",
      `The container name ${name} is invalid: 3-63 lower-case letters, digits and single hyphens between them.`,
    );
  const properties = asObject(asObject(req.body).properties);
  const publicAccess = String(properties.publicAccess ?? "None");
  if (publicAccess !== "None" && asObject(account.resource.properties).allowBlobPublicAccess !== true)
    return armError(
      409,
      "PublicAccessNotPermitted",
      "Public access is not permitted on this storage account.",
    );
  const existing = account.containers.get(name);
  const failed = existing ? undefined : await mirror(state, account.name, name, "create");
  if (failed) return failed;
  const container: JsonObject = {
    id: req.path,
    name,
    type: "Microsoft.Storage/storageAccounts/blobServices/containers",
    etag: `"0x${Date.now().toString(16).toUpperCase()}"`,
    properties: {
      ...properties,
      publicAccess,
      metadata: asObject(properties.metadata),
      lastModifiedTime: new Date().toISOString(),
      leaseStatus: "Unlocked",
      leaseState: "Available",
      hasImmutabilityPolicy: false,
      hasLegalHold: false,
      deleted: false,
    },
  };
  account.containers.set(name, container);
  return { status: existing ? 200 : 201, body: container };
}
