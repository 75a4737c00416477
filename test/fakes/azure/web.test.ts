/** The App Service model through @azure/arm-appservice 19.0.0 (apiVersion 2024-04-01 passed: its default is 2025-05-01). */
import { WebSiteManagementClient, type Site } from "@azure/arm-appservice";
import { ArmFake } from "./arm-fake";
import { installWeb, WEB_SPECS, WebState } from "./web";

const SUB = "00000000-1111-2222-3333-444444444444";
const RG = `/subscriptions/${SUB}/resourceGroups/rg-1`;
const IDENTITY = `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/lifecycle`;
const PACKAGE = "https://kbstate.blob.core.windows.net/functions/lifecycle-1.zip";
const credential = {
  getToken: async () => ({ token: "test-token", expiresOnTimestamp: Date.now() + 3600_000 }),
};
const wait = { updateIntervalInMs: 1 };

let fake: ArmFake;
let state: WebState;
let client: WebSiteManagementClient;

beforeEach(async () => {
  fake = await ArmFake.start(WEB_SPECS);
  state = installWeb(fake);
  state.discoverFunctions = (site) =>
    site.appSettings.WEBSITE_RUN_FROM_PACKAGE === PACKAGE ? ["onScaleSetEvent"] : [];
  client = new WebSiteManagementClient(credential, SUB, {
    endpoint: fake.endpoint,
    tlsOptions: { ca: fake.ca },
    apiVersion: "2024-04-01",
    retryOptions: { maxRetries: 0 },
  });
});
afterEach(async () => {
  await fake.stop();
});

const plan = (name: string, sku = "Y1") =>
  client.appServicePlans.createOrUpdate(
    "rg-1",
    name,
    { location: "westeurope", kind: "functionapp", sku: { name: sku }, reserved: true },
    wait,
  );

const functionApp = (planName: string, extra: Partial<Site> = {}): Site => ({
  location: "westeurope",
  kind: "functionapp,linux",
  identity: { type: "UserAssigned", userAssignedIdentities: { [IDENTITY]: {} } },
  serverFarmId: `${RG}/providers/Microsoft.Web/serverfarms/${planName}`,
  httpsOnly: true,
  keyVaultReferenceIdentity: IDENTITY,
  siteConfig: {
    linuxFxVersion: "Node|20",
    functionAppScaleLimit: 2,
    appSettings: [
      { name: "FUNCTIONS_EXTENSION_VERSION", value: "~4" },
      { name: "FUNCTIONS_WORKER_RUNTIME", value: "node" },
      { name: "WEBSITE_RUN_FROM_PACKAGE", value: PACKAGE },
      { name: "AzureWebJobsStorage__accountName", value: "kbstate" },
    ],
  },
  ...extra,
});

test("a Consumption function app: async create, settings only through their own calls, functions listed", async () => {
  const created = await plan("kb-plan");
  expect(created).toMatchObject({
    sku: { name: "Y1", tier: "Dynamic" },
    provisioningState: "Succeeded",
    status: "Ready",
  });
  const site = await client.webApps.createOrUpdate("rg-1", "kb-c1-lifecycle", functionApp("kb-plan"), wait);
  expect(site).toMatchObject({
    defaultHostName: "kb-c1-lifecycle.azurewebsites.net",
    httpsOnly: true,
    keyVaultReferenceIdentity: IDENTITY,
    siteConfig: { linuxFxVersion: "Node|20", functionAppScaleLimit: 2 },
  });
  expect(site.identity?.userAssignedIdentities?.[IDENTITY]?.principalId).toMatch(/^[0-9a-f-]{36}$/);
  expect((await client.webApps.get("rg-1", "kb-c1-lifecycle")).siteConfig?.appSettings).toBeUndefined();
  const settings = await client.webApps.listApplicationSettings("rg-1", "kb-c1-lifecycle");
  expect(settings.properties).toMatchObject({
    WEBSITE_RUN_FROM_PACKAGE: PACKAGE,
    AzureWebJobsStorage__accountName: "kbstate",
  });
  const functions = [];
  for await (const f of client.webApps.listFunctions("rg-1", "kb-c1-lifecycle")) functions.push(f.name);
  expect(functions).toEqual(["kb-c1-lifecycle/onScaleSetEvent"]);
  expect(
    state.functionExists(`${RG}/providers/Microsoft.Web/sites/kb-c1-lifecycle/functions/onScaleSetEvent`),
  ).toBe(true);
  expect(state.functionExists(`${RG}/providers/Microsoft.Web/sites/kb-c1-lifecycle/functions/other`)).toBe(
    false,
  );

  // Replacing the settings replaces them all, and the package's functions are read again.
  await client.webApps.updateApplicationSettings("rg-1", "kb-c1-lifecycle", { properties: { A: "1" } });
  await state.settle();
  expect((await client.webApps.listApplicationSettings("rg-1", "kb-c1-lifecycle")).properties).toEqual({
    A: "1",
  });
  expect(state.site(`${RG}/providers/Microsoft.Web/sites/kb-c1-lifecycle`)?.functions).toEqual([]);
  expect(fake.violations).toEqual([]);
});

test("a plan in use cannot be deleted; deleting its last app removes it unless deleteEmptyServerFarm=false", async () => {
  await plan("p1");
  await client.webApps.createOrUpdate("rg-1", "app-a", functionApp("p1"), wait);
  await expect(client.appServicePlans.delete("rg-1", "p1")).rejects.toMatchObject({ statusCode: 409 });
  await client.webApps.delete("rg-1", "app-a", { deleteEmptyServerFarm: false });
  expect((await client.appServicePlans.get("rg-1", "p1")).name).toBe("p1");
  await client.webApps.createOrUpdate("rg-1", "app-b", functionApp("p1"), wait);
  await client.webApps.delete("rg-1", "app-b");
  await expect(client.appServicePlans.get("rg-1", "p1")).rejects.toMatchObject({ statusCode: 404 });
  await expect(client.webApps.get("rg-1", "app-b")).rejects.toMatchObject({ statusCode: 404 });
  expect(fake.violations).toEqual([]);
});

test.each([
  ["a plan that does not exist", (s: Site) => (s.serverFarmId += "x"), 404, "Cannot find ServerFarm"],
  [
    "a Key Vault reference identity not assigned",
    (s: Site) => (s.keyVaultReferenceIdentity = `${IDENTITY}x`),
    400,
    "keyVaultReferenceIdentity",
  ],
  ["a Windows kind on a Linux plan", (s: Site) => (s.kind = "functionapp"), 400, "Linux plan"],
  [
    "functionAppConfig on a Y1 plan",
    (s: Site) => (s.functionAppConfig = { runtime: { name: "node", version: "20" } }),
    400,
    "Flex Consumption",
  ],
])("refused: %s", async (_, change, status, mention) => {
  await plan("p1");
  const body = functionApp("p1");
  change(body);
  await expect(client.webApps.createOrUpdate("rg-1", "bad-app", body, wait)).rejects.toMatchObject({
    statusCode: status,
    message: expect.stringContaining(mention),
  });
  expect(state.sites.size).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("site names are global; Flex Consumption refuses the settings it replaces with functionAppConfig", async () => {
  await plan("p1");
  await client.webApps.createOrUpdate("rg-1", "taken", functionApp("p1"), wait);
  await client.appServicePlans.createOrUpdate(
    "rg-2",
    "p2",
    { location: "westeurope", kind: "functionapp", sku: { name: "Y1" }, reserved: true },
    wait,
  );
  const elsewhere = functionApp("p2", {
    serverFarmId: `/subscriptions/${SUB}/resourceGroups/rg-2/providers/Microsoft.Web/serverfarms/p2`,
  });
  await expect(client.webApps.createOrUpdate("rg-2", "taken", elsewhere, wait)).rejects.toMatchObject({
    statusCode: 409,
  });

  await plan("flex", "FC1");
  const flexApp = functionApp("flex", {
    siteConfig: { appSettings: [{ name: "AzureWebJobsStorage__accountName", value: "kbstate" }] },
    functionAppConfig: {
      deployment: {
        storage: {
          type: "blobContainer",
          value: "https://kbstate.blob.core.windows.net/deployments",
          authentication: { type: "UserAssignedIdentity", userAssignedIdentityResourceId: IDENTITY },
        },
      },
      runtime: { name: "node", version: "20" },
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 },
    },
  });
  const flex = await client.webApps.createOrUpdate("rg-1", "kb-flex", flexApp, wait);
  expect(flex.functionAppConfig?.runtime).toEqual({ name: "node", version: "20" });
  await expect(
    client.webApps.updateApplicationSettings("rg-1", "kb-flex", {
      properties: { WEBSITE_RUN_FROM_PACKAGE: PACKAGE },
    }),
  ).rejects.toMatchObject({ statusCode: 400, message: expect.stringContaining("WEBSITE_RUN_FROM_PACKAGE") });
  expect(fake.violations).toEqual([]);
});
