/**
 * The Azure discovery deployment against the fake Azure, with azurite (the official storage emulator) as
 * the blob data plane: HTTPS and Entra ID tokens, as the operator's TokenCredential needs.
 *
 * The package is the real bundle (dist/lambdas/dns-discovery-azure.zip, built by the test run's global
 * setup); a "new" package is the same files with a comment added to index.js. The fake Functions host
 * does what the Node worker does: it fetches the package blob (only if the app's identity holds a blob
 * data role on the account), requires package.json's main with the worker's module
 * `@azure/functions-core` stubbed, and lists the functions the code registers. So the names come from
 * the bundle itself, not from this test.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { strFromU8, strToU8, unzipSync, zipSync } from "fflate";
import { azureClusterSpecSchema } from "../../src/cluster/schema";
import { ExitCode, KubebakeError } from "../../src/errors";
import { ChangeRecorder, formatChange } from "../../src/launch/changes";
import { azureClients } from "../../src/launch/azure/clients";
import type { AzureBaseContext, AzureContext, AzureInputs } from "../../src/launch/azure/context";
import {
  azureDiscoveryBundle,
  ensureAzureDiscovery,
  removeAzureDiscovery,
} from "../../src/launch/azure/deploy-discovery";
import {
  discoveryFunctionAppName,
  discoveryPlanName,
  discoveryStorageAccountName,
  PACKAGE_CONTAINER,
  packageBlobName,
} from "../../src/launch/azure/discovery-desired";
import { ensureClusterId, readClusterId } from "../../src/launch/azure/group";
import { ensureIdentities } from "../../src/launch/azure/identity";
import { ensureNetwork } from "../../src/launch/azure/network";
import { silentProgress } from "../../src/util/progress";
import { BUILT_IN_ROLES } from "../fakes/azure/authorization";
import { tokenCredential, type Azurite } from "../fakes/azure/azurite";
import type { AzureCloud } from "../fakes/azure/cloud";
import { azureClusterYaml, IMAGE_ID, SUBSCRIPTION, TENANT, useAzureCloud } from "./fixture";

const GROUP = "kubebake-demo";
const GROUP_ID = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${GROUP}`;
const ZONE_ID = `${GROUP_ID}/providers/Microsoft.Network/privateDnsZones/demo.k8s`;
const inputs: AzureInputs = {
  spec: azureClusterSpecSchema.parse(azureClusterYaml()),
  subscription: SUBSCRIPTION,
  tenant: TENANT,
  image: IMAGE_ID,
  discoveryDomain: "k8s",
};
const ACCOUNT = discoveryStorageAccountName(SUBSCRIPTION, inputs.spec);
const APP = discoveryFunctionAppName(SUBSCRIPTION, inputs.spec);
const APP_ID = `${GROUP_ID}/providers/Microsoft.Web/sites/${APP}`;
/** Long-running calls made here poll at once (the clients' default is every 2 s). */
const wait = { updateIntervalInMs: 1 };
const dir = mkdtempSync(join(tmpdir(), "kb-azure-discovery-"));

/** The bundle with other bytes (a new digest), or with index.js replaced. */
function variant(name: string, index: (source: string) => string): string {
  const files = unzipSync(readFileSync(azureDiscoveryBundle()));
  files["index.js"] = strToU8(index(strFromU8(files["index.js"]!)));
  const path = join(dir, name);
  writeFileSync(path, zipSync(files));
  return path;
}

const digestOf = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

const azure = useAzureCloud([ACCOUNT]);
let azurite: Azurite;
let cloud: AzureCloud;
beforeAll(() => {
  if (!existsSync(azureDiscoveryBundle()))
    throw new Error(`${azureDiscoveryBundle()} is missing: run node scripts/build.mjs`);
});
beforeEach(() => {
  cloud = azure.cloud();
  azurite = azure.azurite();
});

/** The launch steps before discovery, then discovery, as a plan (dryRun) or an apply. */
async function pass(options: { dryRun?: boolean; bundle?: string; pollMs?: number } = {}) {
  const clients = azureClients(tokenCredential, SUBSCRIPTION, {
    resourceManager: cloud.endpoint,
    ca: cloud.ca,
  });
  const rec = new ChangeRecorder(options.dryRun ?? false, silentProgress);
  const base: AzureBaseContext = { clients, inputs, rec, pollMs: options.pollMs ?? 1, sleep: async () => {} };
  const ctx: AzureContext = { ...base, clusterId: await ensureClusterId(base, await readClusterId(base)) };
  await ensureNetwork(ctx);
  const identities = await ensureIdentities(ctx);
  const before = rec.changes.length;
  await ensureAzureDiscovery(ctx, { zoneId: ZONE_ID, dns: identities.dns }, options.bundle);
  return { changes: rec.changes.slice(before).map(formatChange), ctx, identities, clients };
}

async function remove(ctx: AzureContext, dryRun = false) {
  const rec = new ChangeRecorder(dryRun, silentProgress);
  await removeAzureDiscovery({ ...ctx, rec });
  return rec.changes.map(formatChange);
}

const settingsOf = async (made: Awaited<ReturnType<typeof pass>>) =>
  (await made.clients.web.webApps.listApplicationSettings(GROUP, APP)).properties ?? {};

test("a plan lists what apply makes; a second apply changes nothing", async () => {
  const plan = await pass({ dryRun: true });
  const made = await pass();
  expect(made.changes).toEqual(plan.changes);
  const digest = digestOf(azureDiscoveryBundle());
  expect(made.changes).toEqual([
    `+ create storage-account ${ACCOUNT} (StorageV2 Standard_LRS, no shared keys)`,
    `+ create blob-container ${ACCOUNT}/${PACKAGE_CONTAINER}`,
    `+ create function-package ${ACCOUNT}/${PACKAGE_CONTAINER}/${packageBlobName(digest)}`,
    `+ create role-assignment dns: reader (resource group ${GROUP} (VMs, NICs))`,
    "+ create role-assignment dns: privateDnsZoneContributor (zone demo.k8s)",
    `+ create role-assignment dns: storageBlobDataOwner (storage account ${ACCOUNT})`,
    `+ create app-service-plan ${discoveryPlanName("demo")} (Y1 Linux Consumption)`,
    `+ create function-app ${APP} (package ${digest.slice(0, 12)})`,
    "+ create event-grid-topic kubebake-demo-events (resource group kubebake-demo)",
    "+ create event-subscription kubebake-demo-events/kubebake-demo-vms (reconcile-events)",
  ]);
  expect((await pass()).changes).toEqual([]);

  const account = cloud.storage.accounts.get(ACCOUNT)!.resource;
  expect(account).toMatchObject({
    kind: "StorageV2",
    sku: { name: "Standard_LRS" },
    tags: { "kubebake:owner": made.ctx.clusterId, "kubebake:name": "dns-storage", team: "platform" },
    properties: {
      allowSharedKeyAccess: false,
      allowBlobPublicAccess: false,
      minimumTlsVersion: "TLS1_2",
      supportsHttpsTrafficOnly: true,
    },
  });
  const dns = made.identities.dns;
  const settings = await settingsOf(made);
  expect(settings).toMatchObject({
    WEBSITE_RUN_FROM_PACKAGE: `${azurite.origin}/${ACCOUNT}/${PACKAGE_CONTAINER}/${packageBlobName(digest)}`,
    WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: dns.id,
    AzureWebJobsStorage__accountName: ACCOUNT,
    AzureWebJobsStorage__credential: "managedidentity",
    AzureWebJobsStorage__clientId: dns.clientId,
    CLUSTER_NAME: "demo",
    HOSTED_ZONE_ID: ZONE_ID,
    DISCOVERY_DOMAIN: "k8s",
    RECORD_TTL: "30",
    EMPTY_GROUP_POLICY: "delete",
    AZURE_SUBSCRIPTION_ID: SUBSCRIPTION,
    AZURE_RESOURCE_GROUP: GROUP,
    AZURE_CLIENT_ID: dns.clientId,
  });
  const site = cloud.web.site(APP_ID)!;
  expect(site.resource).toMatchObject({
    kind: "functionapp,linux",
    properties: { httpsOnly: true, siteConfig: { linuxFxVersion: "Node|22" } },
  });
  expect(site.resource).toMatchObject({
    identity: { type: "UserAssigned", userAssignedIdentities: { [dns.id]: {} } },
    properties: {
      siteConfig: {
        functionAppScaleLimit: 1,
        minTlsVersion: "1.2",
        ftpsState: "Disabled",
        ipSecurityRestrictions: [{ ipAddress: "AzureEventGrid", tag: "ServiceTag", action: "Allow" }],
      },
    },
  });
  expect(site.functions.sort()).toEqual(["reconcile-events", "reconcile-schedule"]);
  const grants = cloud.rbac
    .forPrincipal(dns.principalId)
    .map((a) => [a.scope, a.roleDefinitionId.split("/").pop()]);
  expect(grants).toEqual(
    expect.arrayContaining([
      [GROUP_ID, BUILT_IN_ROLES.Reader],
      [ZONE_ID, BUILT_IN_ROLES["Private DNS Zone Contributor"]],
      [String(account.id), BUILT_IN_ROLES["Storage Blob Data Owner"]],
    ]),
  );
  // A VM written in the group reaches the function; another resource does not.
  const vmEvent = (subject: string, operationName: string) => ({
    source: GROUP_ID,
    eventType: "Microsoft.Resources.ResourceWriteSuccess",
    subject: `${GROUP_ID}/providers/${subject}`,
    data: { operationName },
  });
  expect(
    cloud.eventGrid.route(
      vmEvent("Microsoft.Compute/virtualMachines/m1", "Microsoft.Compute/virtualMachines/write"),
    ),
  ).toEqual([`${APP_ID}/functions/reconcile-events`]);
  expect(
    cloud.eventGrid.route(
      vmEvent("Microsoft.Network/networkInterfaces/n1", "Microsoft.Network/networkInterfaces/write"),
    ),
  ).toEqual([]);
});

test("a new package updates the app only; the host runs the new one", async () => {
  await pass();
  const next = variant("next.zip", (source) => `${source}\n// another build\n`);
  const digest = digestOf(next);
  const made = await pass({ bundle: next });
  expect(made.changes).toEqual([
    `+ create function-package ${ACCOUNT}/${PACKAGE_CONTAINER}/${packageBlobName(digest)}`,
    `~ update function-app ${APP} (package ${digest.slice(0, 12)})`,
  ]);
  expect((await settingsOf(made)).WEBSITE_RUN_FROM_PACKAGE).toMatch(new RegExp(`${digest}\\.zip$`));
  await cloud.web.settle();
  expect(cloud.web.site(APP_ID)!.functions.sort()).toEqual(["reconcile-events", "reconcile-schedule"]);
  expect((await pass({ bundle: next })).changes).toEqual([]);
});

test("a setting or the configuration changed by hand is put back", async () => {
  const first = await pass();
  const settings = await settingsOf(first);
  await first.clients.web.webApps.updateApplicationSettings(GROUP, APP, {
    properties: { ...settings, RECORD_TTL: "300", EXTRA: "kept" },
  });
  expect((await pass()).changes).toEqual([`~ update function-app ${APP} (settings)`]);
  expect(await settingsOf(first)).toEqual(settings);

  const site = await first.clients.web.webApps.get(GROUP, APP);
  await first.clients.web.webApps.createOrUpdate(
    GROUP,
    APP,
    {
      ...site,
      httpsOnly: false,
      siteConfig: {
        ...site.siteConfig,
        appSettings: Object.entries(settings).map(([name, value]) => ({ name, value })),
      },
    },
    wait,
  );
  expect((await pass()).changes).toEqual([`~ update function-app ${APP} (configuration)`]);
  expect(cloud.web.site(APP_ID)!.resource).toMatchObject({ properties: { httpsOnly: true } });

  const events = first.clients.eventGrid.systemTopicEventSubscriptions;
  const subscription = await events.get(GROUP, "kubebake-demo-events", "kubebake-demo-vms");
  await events.beginCreateOrUpdateAndWait(
    GROUP,
    "kubebake-demo-events",
    "kubebake-demo-vms",
    { ...subscription, filter: { ...subscription.filter, advancedFilters: [] } },
    wait,
  );
  expect((await pass()).changes).toEqual([
    "~ update event-subscription kubebake-demo-events/kubebake-demo-vms (reconcile-events)",
  ]);
  expect((await pass()).changes).toEqual([]);
});

test("look-alikes: another owner's storage account or app is refused (exit 8), so is a name taken elsewhere", async () => {
  const first = await pass();
  const refused = async () => {
    const error = await pass().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KubebakeError);
    expect((error as KubebakeError).exitCode).toBe(ExitCode.unsafeState);
    return String(error);
  };
  const { storage, web } = first.clients;
  const account = await storage.storageAccounts.getProperties(GROUP, ACCOUNT);
  await storage.storageAccounts.create(
    GROUP,
    ACCOUNT,
    {
      location: account.location!,
      kind: "StorageV2",
      sku: { name: "Standard_LRS" },
      tags: { "kubebake:owner": "kb-someone-else" },
    },
    wait,
  );
  expect(await refused()).toMatch(
    new RegExp(
      `storage account ${ACCOUNT} exists but is not this cluster's \\(its owner is kb-someone-else\\)`,
    ),
  );
  await storage.storageAccounts.delete(GROUP, ACCOUNT);
  expect((await pass()).changes[0]).toBe(
    `+ create storage-account ${ACCOUNT} (StorageV2 Standard_LRS, no shared keys)`,
  );

  const site = await web.webApps.get(GROUP, APP);
  await web.webApps.createOrUpdate(
    GROUP,
    APP,
    { ...site, tags: { "kubebake:owner": "kb-someone-else" } },
    wait,
  );
  expect(await refused()).toMatch(new RegExp(`function app ${APP} exists but is not this cluster's`));

  // Account names are global: the same name in another group is not the cluster's either.
  await web.webApps.delete(GROUP, APP);
  await remove(first.ctx);
  await storage.storageAccounts.create(
    "elsewhere",
    ACCOUNT,
    {
      location: "westeurope",
      kind: "StorageV2",
      sku: { name: "Standard_LRS" },
    },
    wait,
  );
  expect(await refused()).toMatch(
    new RegExp(`storage account ${ACCOUNT} exists outside resource group ${GROUP}`),
  );
  await storage.storageAccounts.delete("elsewhere", ACCOUNT);
});

test("the resource group's existing system topic is used, never owned; remove leaves it", async () => {
  const first = await pass();
  await remove(first.ctx);
  await first.clients.eventGrid.systemTopics.beginCreateOrUpdateAndWait(
    GROUP,
    "operators-topic",
    {
      location: "global",
      source: GROUP_ID,
      topicType: "Microsoft.Resources.ResourceGroups",
      tags: { owner: "ops" },
    },
    wait,
  );
  const made = await pass();
  expect(made.changes.filter((c) => /event/.test(c))).toEqual([
    "+ create event-subscription operators-topic/kubebake-demo-vms (reconcile-events)",
  ]);
  expect((await pass()).changes).toEqual([]);
  expect(await remove(made.ctx)).toEqual([
    "- delete event-subscription operators-topic/kubebake-demo-vms",
    `- delete function-app ${APP}`,
    `- delete app-service-plan ${discoveryPlanName("demo")}`,
    `- delete storage-account ${ACCOUNT}`,
  ]);
  expect([...cloud.eventGrid.topics.values()].map((t) => t.name)).toEqual(["operators-topic"]);
});

test("removeAzureDiscovery deletes, in order, what carries the cluster's id; then nothing is left", async () => {
  const made = await pass();
  const plan = await remove(made.ctx, true);
  const removed = await remove(made.ctx);
  expect(removed).toEqual(plan);
  expect(removed).toEqual([
    "- delete event-subscription kubebake-demo-events/kubebake-demo-vms",
    "- delete event-grid-topic kubebake-demo-events",
    `- delete function-app ${APP}`,
    `- delete app-service-plan ${discoveryPlanName("demo")}`,
    `- delete storage-account ${ACCOUNT}`,
  ]);
  const id = made.ctx.clusterId;
  const tagged = (resources: { tags?: unknown }[]) =>
    resources.filter((r) => (r.tags as Record<string, string> | undefined)?.["kubebake:owner"] === id);
  expect(tagged([...cloud.storage.accounts.values()].map((a) => a.resource))).toEqual([]);
  expect(tagged([...cloud.web.sites.values()].map((s) => s.resource))).toEqual([]);
  expect(tagged([...cloud.web.plans.values()].map((p) => p.resource))).toEqual([]);
  expect(tagged([...cloud.eventGrid.topics.values()])).toEqual([]);
  expect(cloud.eventGrid.subscriptions.size).toBe(0);
  const containers = [];
  for await (const c of azurite.service(ACCOUNT).listContainers()) containers.push(c.name);
  expect(containers).toEqual([]);
  expect(await remove(made.ctx)).toEqual([]);
});

test("a package whose host lists no reconcile-events fails clearly, without subscribing", async () => {
  const first = await pass();
  await first.clients.eventGrid.systemTopicEventSubscriptions.beginDeleteAndWait(
    GROUP,
    "kubebake-demo-events",
    "kubebake-demo-vms",
    wait,
  );
  const empty = variant("empty.zip", () => "module.exports = {};\n");
  // No long-running call in this pass: a long pollMs makes the wait's 10 minutes 10 polls.
  const error = await pass({ bundle: empty, pollMs: 60_000 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(KubebakeError);
  expect((error as KubebakeError).exitCode).toBe(ExitCode.cloudFailed);
  expect(String(error)).toMatch(
    new RegExp(`function app ${APP} did not list its function reconcile-events within 10 minutes`),
  );
  expect(cloud.eventGrid.subscriptions.size).toBe(0);
});
