/**
 * The storage model through @azure/arm-storage 20.0.0 (apiVersion 2023-05-01 passed: its default is
 * 2025-08-01), with blob data in azurite: containers made through Resource Manager exist there too.
 */
import { StorageManagementClient, type StorageAccountCreateParameters } from "@azure/arm-storage";
import { startAzurite, type Azurite } from "../../publish/azure/azurite";
import { ArmFake } from "./arm-fake";
import { installStorage, STORAGE_SPECS, StorageState } from "./storage-arm";

const SUB = "00000000-1111-2222-3333-444444444444";
const OTHER_SUB = "99999999-1111-2222-3333-444444444444";
const credential = {
  getToken: async () => ({ token: "test-token", expiresOnTimestamp: Date.now() + 3600_000 }),
};
const wait = { updateIntervalInMs: 1 };

let azurite: Azurite;
let fake: ArmFake;
let state: StorageState;
let client: StorageManagementClient;

beforeAll(async () => {
  azurite = await startAzurite();
}, 60_000);
afterAll(async () => {
  await azurite?.stop();
});
beforeEach(async () => {
  fake = await ArmFake.start(STORAGE_SPECS);
  state = installStorage(
    fake,
    new StorageState({
      blobEndpoint: () => `${azurite.blobUrl}/`,
      onContainer: async (_account, container, change) => {
        const client = azurite.service.getContainerClient(container);
        await (change === "create" ? client.create() : client.delete());
      },
    }),
  );
  client = management(SUB);
});
afterEach(async () => {
  await fake.stop();
});

const management = (subscription: string) =>
  new StorageManagementClient(credential, subscription, {
    endpoint: fake.endpoint,
    tlsOptions: { ca: fake.ca },
    apiVersion: "2023-05-01",
    retryOptions: { maxRetries: 0 },
  });

const account: StorageAccountCreateParameters = {
  location: "westeurope",
  kind: "StorageV2",
  sku: { name: "Standard_LRS" },
  tags: { "kubebake:cluster": "c1" },
  allowBlobPublicAccess: false,
  minimumTlsVersion: "TLS1_2",
  allowSharedKeyAccess: false,
};

const azuriteContainers = async () => {
  const names = [];
  for await (const c of azurite.service.listContainers()) names.push(c.name);
  return names;
};

test("an account is created asynchronously, its blob endpoint is azurite's, containers appear there", async () => {
  const created = await client.storageAccounts.create("rg-1", "kbc1state", account, wait);
  expect(created).toMatchObject({
    name: "kbc1state",
    kind: "StorageV2",
    provisioningState: "Succeeded",
    allowBlobPublicAccess: false,
    allowSharedKeyAccess: false,
    minimumTlsVersion: "TLS1_2",
    primaryEndpoints: { blob: `${azurite.blobUrl}/` },
  });
  const container = await client.blobContainers.create("rg-1", "kbc1state", "etcd-snapshots", {});
  expect(container).toMatchObject({ name: "etcd-snapshots", publicAccess: "None" });
  expect(await azuriteContainers()).toContain("etcd-snapshots");
  expect((await client.blobContainers.get("rg-1", "kbc1state", "etcd-snapshots")).name).toBe(
    "etcd-snapshots",
  );
  await client.blobContainers.delete("rg-1", "kbc1state", "etcd-snapshots");
  expect(await azuriteContainers()).not.toContain("etcd-snapshots");
  await expect(client.blobContainers.get("rg-1", "kbc1state", "etcd-snapshots")).rejects.toMatchObject({
    statusCode: 404,
  });
  expect(fake.violations).toEqual([]);
});

test("names: global, checked by CheckNameAvailability, refused when taken", async () => {
  expect(
    await client.storageAccounts.checkNameAvailability({
      name: "kbc1state",
      type: "Microsoft.Storage/storageAccounts",
    }),
  ).toEqual(expect.objectContaining({ nameAvailable: true }));
  await client.storageAccounts.create("rg-1", "kbc1state", account, wait);
  expect(
    await client.storageAccounts.checkNameAvailability({
      name: "kbc1state",
      type: "Microsoft.Storage/storageAccounts",
    }),
  ).toMatchObject({
    nameAvailable: false,
    reason: "AlreadyExists",
  });
  expect(
    await client.storageAccounts.checkNameAvailability({
      name: "Bad_Name",
      type: "Microsoft.Storage/storageAccounts",
    }),
  ).toMatchObject({
    nameAvailable: false,
    reason: "AccountNameInvalid",
  });
  await expect(
    management(OTHER_SUB).storageAccounts.create("rg-9", "kbc1state", account, wait),
  ).rejects.toMatchObject({
    statusCode: 409,
    code: "StorageAccountAlreadyTaken",
  });
  const listed = [];
  for await (const a of client.storageAccounts.listByResourceGroup("rg-1")) listed.push(a.name);
  expect(listed).toEqual(["kbc1state"]);
  expect(fake.violations).toEqual([]);
});

test("containers: need their account, a valid name, and no public access on a private account", async () => {
  await expect(client.blobContainers.create("rg-1", "nosuchaccount", "images", {})).rejects.toMatchObject({
    statusCode: 404,
    code: "ParentResourceNotFound",
  });
  await client.storageAccounts.create("rg-1", "kbc1state", account, wait);
  await expect(client.blobContainers.create("rg-1", "kbc1state", "bad--name", {})).rejects.toMatchObject({
    statusCode: 400,
  });
  await expect(
    client.blobContainers.create("rg-1", "kbc1state", "public", { publicAccess: "Blob" }),
  ).rejects.toMatchObject({
    statusCode: 409,
  });
  expect(await azuriteContainers()).not.toContain("public");
  expect(fake.violations).toEqual([]);
});

test("deleting the account deletes its containers in azurite and frees the name", async () => {
  await client.storageAccounts.create("rg-1", "kbc1state", account, wait);
  await client.blobContainers.create("rg-1", "kbc1state", "functions", {});
  await client.storageAccounts.delete("rg-1", "kbc1state");
  expect(await azuriteContainers()).not.toContain("functions");
  await expect(client.storageAccounts.getProperties("rg-1", "kbc1state")).rejects.toMatchObject({
    statusCode: 404,
  });
  await management(OTHER_SUB).storageAccounts.create("rg-9", "kbc1state", account, wait);
  expect(fake.violations).toEqual([]);
});

test("a blob service failure fails the container create and records nothing", async () => {
  await client.storageAccounts.create("rg-1", "kbc1state", account, wait);
  state.onContainer = () => Promise.reject(new Error("azurite down"));
  await expect(client.blobContainers.create("rg-1", "kbc1state", "images", {})).rejects.toMatchObject({
    statusCode: 500,
    message: expect.stringContaining("azurite down"),
  });
  expect(state.accounts.get("kbc1state")?.containers.size).toBe(0);
});
