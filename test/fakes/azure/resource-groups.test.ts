import { ResourceManagementClient } from "@azure/arm-resources";
import { ArmFake } from "./arm-fake";
import { call } from "./client";
import { clientOptions, credential, failure } from "./sdk";
import {
  installResourceGroups,
  RESOURCE_GROUP_SPECS,
  RESOURCES_API_VERSION,
  type ResourceGroupsState,
} from "./resource-groups";

const SUB = "00000000-0000-0000-0000-0000000000aa";
let fake: ArmFake;
let state: ResourceGroupsState;
let client: ResourceManagementClient;

beforeEach(async () => {
  fake = await ArmFake.start(RESOURCE_GROUP_SPECS);
  state = installResourceGroups(fake);
  client = new ResourceManagementClient(credential, SUB, clientOptions(fake, RESOURCES_API_VERSION));
});
afterEach(async () => {
  await fake.stop();
});

test("create, read, check existence and re-create answer as ARM does, in the described api-version", async () => {
  const created = await client.resourceGroups.createOrUpdate("Kb-Rg", {
    location: "West Europe",
    tags: { cluster: "c1" },
  });
  expect(created).toMatchObject({
    id: `/subscriptions/${SUB}/resourceGroups/Kb-Rg`,
    name: "Kb-Rg",
    type: "Microsoft.Resources/resourceGroups",
    location: "westeurope",
    tags: { cluster: "c1" },
    properties: { provisioningState: "Succeeded" },
  });
  // Names are case-insensitive: another casing reaches the same group, which keeps its first casing.
  expect((await client.resourceGroups.get("kb-rg")).name).toBe("Kb-Rg");
  expect((await client.resourceGroups.checkExistence("KB-RG")).body).toBe(true);
  expect((await client.resourceGroups.checkExistence("other")).body).toBe(false);
  // A second PUT replaces the tags (200, not 201).
  const again = await client.resourceGroups.createOrUpdate("Kb-Rg", { location: "westeurope" });
  expect(again.tags).toBeUndefined();
  expect(fake.log.filter((l) => l.method === "PUT").map((l) => l.status)).toEqual([201, 200]);
  expect(fake.violations).toEqual([]);
});

test("a missing group is ResourceGroupNotFound", async () => {
  expect(await failure(client.resourceGroups.get("nope"))).toMatchObject({
    status: 404,
    code: "ResourceGroupNotFound",
    message: "Resource group 'nope' could not be found.",
  });
  expect(fake.violations).toEqual([]);
});

test("location is required, must be a known region, and never changes", async () => {
  // The client itself refuses a body without location, so send this one raw.
  const raw = await call(
    fake.endpoint,
    fake.ca,
    "PUT",
    `/subscriptions/${SUB}/resourcegroups/g1?api-version=${RESOURCES_API_VERSION}`,
    { tags: {} },
  );
  expect(raw.status).toBe(400);
  expect(fake.violations).toEqual([expect.stringContaining('"location" is missing')]);
  fake.violations.length = 0;

  expect(await failure(client.resourceGroups.createOrUpdate("g1", { location: "atlantis" }))).toMatchObject({
    status: 400,
    code: "LocationNotAvailableForResourceGroup",
  });
  await client.resourceGroups.createOrUpdate("g1", { location: "westeurope" });
  expect(await failure(client.resourceGroups.createOrUpdate("g1", { location: "eastus" }))).toMatchObject({
    status: 409,
    code: "InvalidResourceGroupLocation",
    message:
      "Invalid resource group location 'eastus'. The Resource group already exists in location 'westeurope'.",
  });
  expect(fake.violations).toEqual([]);
});

test("names: 1-90 characters of the described set, not ending in a period", async () => {
  await client.resourceGroups.createOrUpdate("a-b_c.d(e)", { location: "westeurope" });
  await client.resourceGroups.createOrUpdate("x".repeat(90), { location: "westeurope" });
  expect(fake.violations).toEqual([]);

  expect(
    await failure(client.resourceGroups.createOrUpdate("ends.", { location: "westeurope" })),
  ).toMatchObject({ status: 400, code: "InvalidResourceGroupName" });
  expect(fake.violations).toEqual([]);
  await failure(client.resourceGroups.createOrUpdate("x".repeat(91), { location: "westeurope" }));
  await failure(client.resourceGroups.createOrUpdate("a b", { location: "westeurope" }));
  expect(fake.violations).toEqual([
    expect.stringContaining("longer than 90 characters"),
    expect.stringContaining("does not match"),
  ]);
  expect(state.all().map((g) => g.name)).toEqual(["a-b_c.d(e)", "x".repeat(90)]);
});

test("tags: updated by PATCH, reserved characters refused, groups listed by tag name and value", async () => {
  await client.resourceGroups.createOrUpdate("a", { location: "westeurope", tags: { Cluster: "c1" } });
  await client.resourceGroups.createOrUpdate("b", { location: "westeurope", tags: { cluster: "C1" } });
  await client.resourceGroups.createOrUpdate("c", { location: "westeurope", tags: { other: "c1" } });
  await client.resourceGroups.update("c", { tags: { cluster: "c1", "it's": "x" } });
  expect(await failure(client.resourceGroups.update("c", { tags: { "a/b": "x" } }))).toMatchObject({
    status: 400,
    code: "InvalidTagNameCharacters",
  });

  const names = async (filter?: string, top?: number) => {
    const found: string[] = [];
    for await (const group of client.resourceGroups.list({ filter, top })) found.push(group.name!);
    return found.sort();
  };
  expect(await names()).toEqual(["a", "b", "c"]);
  // Tag names compare case-insensitively, values exactly.
  expect(await names("tagName eq 'CLUSTER'")).toEqual(["a", "b", "c"]);
  expect(await names("tagName eq 'cluster' and tagValue eq 'c1'")).toEqual(["a", "c"]);
  expect(await names("tagName eq 'it''s'")).toEqual(["c"]);
  expect(await names(undefined, 2)).toHaveLength(2);
  expect(await failure(names("location eq 'westeurope'"))).toMatchObject({
    status: 400,
    code: "InvalidFilterInQueryString",
  });
  expect(fake.violations).toEqual([]);
});

test("delete is asynchronous, removes the group and tells the other models", async () => {
  const deleted: string[] = [];
  state.onGroupDeleted((id) => deleted.push(id));
  await client.resourceGroups.createOrUpdate("Doomed", { location: "westeurope" });
  fake.pollsBeforeDone = 2;

  const poller = await client.resourceGroups.beginDelete("doomed", { updateIntervalInMs: 0 });
  // While ARM deletes, the group reads Deleting and nothing may be written into it.
  expect((await client.resourceGroups.get("doomed")).properties?.provisioningState).toBe("Deleting");
  expect(state.requireGroup(SUB, "doomed")).toMatchObject({ status: 409 });
  expect(deleted).toEqual([]);
  await poller.pollUntilDone();

  expect(deleted).toEqual([`/subscriptions/${SUB}/resourceGroups/Doomed`]);
  expect((await client.resourceGroups.checkExistence("doomed")).body).toBe(false);
  expect(state.requireGroup(SUB, "doomed")).toMatchObject({ status: 404 });
  expect(await failure(client.resourceGroups.beginDeleteAndWait("doomed"))).toMatchObject({
    status: 404,
    code: "ResourceGroupNotFound",
  });
  expect(fake.log.find((l) => l.method === "DELETE")?.status).toBe(202);
  expect(fake.violations).toEqual([]);
});
