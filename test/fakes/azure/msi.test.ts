import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { ArmFake } from "./arm-fake";
import { installMsi, MSI_API_VERSION, MSI_SPECS, MsiState } from "./msi";
import { ResourceGroupsState } from "./resource-groups";
import { clientOptions, credential, failure } from "./sdk";

const SUB = "00000000-0000-0000-0000-0000000000aa";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let fake: ArmFake;
let groups: ResourceGroupsState;
let state: MsiState;
let client: ManagedServiceIdentityClient;

beforeEach(async () => {
  fake = await ArmFake.start(MSI_SPECS);
  groups = new ResourceGroupsState();
  groups.add(SUB, "rg", "westeurope");
  groups.add(SUB, "rg2", "westeurope");
  state = installMsi(fake, new MsiState({ groups }));
  client = new ManagedServiceIdentityClient(credential, SUB, clientOptions(fake, MSI_API_VERSION));
});
afterEach(async () => {
  await fake.stop();
});

test("a new identity gets a principal and an application in the tenant, kept by a re-PUT", async () => {
  const created = await client.userAssignedIdentities.createOrUpdate("rg", "kb-nodes", {
    location: "westeurope",
    tags: { cluster: "c1" },
  });
  expect(created).toMatchObject({
    id: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/kb-nodes`,
    name: "kb-nodes",
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    tags: { cluster: "c1" },
    tenantId: state.tenantId,
  });
  expect(created.principalId).toMatch(GUID);
  expect(created.clientId).toMatch(GUID);
  expect(created.clientId).not.toBe(created.principalId);
  expect(state.principalExists(created.principalId!)).toBe(true);
  expect(state.principalExists("11111111-1111-1111-1111-111111111111")).toBe(false);

  const again = await client.userAssignedIdentities.createOrUpdate("rg", "KB-NODES", {
    location: "westeurope",
  });
  expect(again).toMatchObject({
    name: "kb-nodes",
    principalId: created.principalId,
    clientId: created.clientId,
  });
  expect(again.tags).toBeUndefined();
  expect((await client.userAssignedIdentities.get("rg", "kb-nodes")).principalId).toBe(created.principalId);
  expect(fake.log.filter((l) => l.method === "PUT").map((l) => l.status)).toEqual([201, 200]);
  expect(fake.violations).toEqual([]);
});

test("lists by resource group and by subscription", async () => {
  await client.userAssignedIdentities.createOrUpdate("rg", "a-id", { location: "westeurope" });
  await client.userAssignedIdentities.createOrUpdate("rg2", "b-id", { location: "westeurope" });
  const names = async (pages: AsyncIterable<{ name?: string }>) => {
    const found: string[] = [];
    for await (const identity of pages) found.push(identity.name!);
    return found.sort();
  };
  expect(await names(client.userAssignedIdentities.listByResourceGroup("rg"))).toEqual(["a-id"]);
  expect(await names(client.userAssignedIdentities.listBySubscription())).toEqual(["a-id", "b-id"]);
  expect(fake.violations).toEqual([]);
});

test("refusals: a bad name, a missing group, another location", async () => {
  expect(
    await failure(client.userAssignedIdentities.createOrUpdate("rg", "-x", { location: "westeurope" })),
  ).toMatchObject({ status: 400, code: "InvalidResourceName" });
  expect(
    await failure(client.userAssignedIdentities.createOrUpdate("nogroup", "idy", { location: "westeurope" })),
  ).toMatchObject({ status: 404, code: "ResourceGroupNotFound" });
  await client.userAssignedIdentities.createOrUpdate("rg", "idy", { location: "westeurope" });
  expect(
    await failure(client.userAssignedIdentities.createOrUpdate("rg", "idy", { location: "eastus" })),
  ).toMatchObject({ status: 409, code: "InvalidResourceLocation" });
  expect(state.all()).toHaveLength(1);
  expect(fake.violations).toEqual([]);
});

test("delete removes the principal; a second delete is 204; the group's deletion removes the rest", async () => {
  const kept = await client.userAssignedIdentities.createOrUpdate("rg", "kept", { location: "westeurope" });
  const gone = await client.userAssignedIdentities.createOrUpdate("rg", "gone", { location: "westeurope" });
  await client.userAssignedIdentities.delete("rg", "gone");
  await client.userAssignedIdentities.delete("rg", "gone");
  expect(fake.log.filter((l) => l.method === "DELETE").map((l) => l.status)).toEqual([200, 204]);
  expect(state.principalExists(gone.principalId!)).toBe(false);
  expect(await failure(client.userAssignedIdentities.get("rg", "gone"))).toMatchObject({
    status: 404,
    code: "ResourceNotFound",
  });
  expect(state.principalExists(kept.principalId!)).toBe(true);

  groups.remove(SUB, "rg");
  expect(state.all()).toEqual([]);
  expect(state.principalExists(kept.principalId!)).toBe(false);
  expect(fake.violations).toEqual([]);
});

test("PATCH replaces the tags and keeps the identity", async () => {
  const created = await client.userAssignedIdentities.createOrUpdate("rg", "idy", {
    location: "westeurope",
    tags: { a: "1" },
  });
  const patched = await client.userAssignedIdentities.update("rg", "idy", { tags: { b: "2" } });
  expect(patched).toMatchObject({ tags: { b: "2" }, principalId: created.principalId });
  expect(state.get(created.id!)?.writes).toBe(2);
  expect(fake.violations).toEqual([]);
});
