/**
 * Discovery on Azure, deployed: the discovery core as a function app that runs every minute (its timer)
 * and when Event Grid says a VM of the cluster's resource group was written or deleted (the reconciler
 * reads the truth, so which VM does not matter; a missed event is caught within a minute). It runs as the
 * cluster's `dns` identity, which may read the group, write the cluster's zone and use its own storage.
 *
 * The plan is Linux Consumption (Y1), not Flex Consumption (FC1): Flex runs only what *one deploy*
 * published to its deployment container (a zip uploaded there is not deployed, says Microsoft's
 * "Automate function app resource deployment"), and one deploy is the app's SCM site (not Resource
 * Manager) or `sites/extensions/onedeploy`, whose 2024-04-01 description takes no body and so no
 * packageUri. Y1 runs the zip WEBSITE_RUN_FROM_PACKAGE names, fetched with the app's identity: Resource
 * Manager and one blob deploy it, and a new package is a new blob URL, so the settings change and the app
 * restarts on it. Linux Consumption is retired on 30 September 2028: move to Flex before then.
 *
 * The operator's credential uploads the package: its role must allow the blob data actions
 * `…/containers/blobs/read` and `…/blobs/write` on the storage account (Storage Blob Data Contributor:
 * Owner and Contributor do not include data actions, and the account refuses shared keys). kubebake does
 * not grant it to the operator.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { EventSubscription } from "@azure/arm-eventgrid";
import type { Site } from "@azure/arm-appservice";
import { BlobServiceClient, type StoragePipelineOptions } from "@azure/storage-blob";
import { ExitCode, invalidInput, KubebakeError } from "../../errors";
import { packageRoot } from "../../util/package-root";
import { isPlanned } from "../changes";
import { foreign } from "../ownership";
import { ifFound, statusOf, type AzureContext } from "./context";
import { CLUSTER_TAG, OWNER_TAG, resourceGroupName, tagsFor } from "./desired";
import {
  DISCOVERY_EVENT_TYPES,
  DISCOVERY_FUNCTIONS,
  DISCOVERY_LINUX_FX_VERSION,
  discoveryAppSettings,
  discoveryEventSubscriptionName,
  discoveryFunctionAppName,
  discoveryPlanName,
  discoveryStorageAccountName,
  discoveryTopicName,
  ownerLabel,
  PACKAGE_CONTAINER,
  packageBlobName,
  RESOURCE_GROUPS_TOPIC_TYPE,
  VM_OPERATIONS,
} from "./discovery-desired";
import type { ManagedIdentity } from "./identity";
import { ensureGrants } from "./rbac";

export const azureDiscoveryBundle = () => join(packageRoot(), "dist", "lambdas", "dns-discovery-azure.zip");

/** How long the Functions host may take to load a new package and list its functions. */
const FUNCTION_WAIT_MS = 10 * 60_000;

export interface DiscoveryTarget {
  /** The private zone's resource id. */
  zoneId: string;
  dns: ManagedIdentity;
}

type Tagged = { tags?: Record<string, string> } | undefined;
const ownerOf = (resource: Tagged) => resource?.tags?.[OWNER_TAG];
const lower = (text: string | undefined) => text?.toLowerCase();
/** A long-running call's polling: every pollMs, as every wait of a launch. */
const polled = (ctx: AzureContext) => ({ updateIntervalInMs: ctx.pollMs });

function where(ctx: AzureContext) {
  const group = resourceGroupName(ctx.inputs.spec);
  const groupId = `/subscriptions/${ctx.inputs.subscription}/resourceGroups/${group}`;
  return { group, groupId };
}

export async function ensureAzureDiscovery(
  ctx: AzureContext,
  target: DiscoveryTarget,
  bundle = azureDiscoveryBundle(),
): Promise<void> {
  if (!existsSync(bundle))
    throw invalidInput(`the discovery package ${bundle} does not exist: build kubebake (npm run build)`);
  const zip = readFileSync(bundle);
  const digest = createHash("sha256").update(zip).digest("hex");
  const { groupId } = where(ctx);
  const account = await ensureStorage(ctx);
  const packageUrl = await ensurePackage(ctx, account, zip, digest);
  const { spec } = ctx.inputs;
  // Before the app starts: its host needs its storage and package at once.
  const who = { principalId: target.dns.principalId, who: "dns" };
  await ensureGrants(ctx, [
    { ...who, scope: groupId, role: "reader", what: `resource group ${where(ctx).group} (VMs, NICs)` },
    {
      ...who,
      scope: target.zoneId,
      role: "privateDnsZoneContributor",
      what: `zone ${target.zoneId.split("/").pop()}`,
    },
    // The host's leases and timer state, and the package read (Microsoft: identity-based AzureWebJobsStorage).
    { ...who, scope: account.id, role: "storageBlobDataOwner", what: `storage account ${account.name}` },
  ]);
  const planId = await ensurePlan(ctx);
  const settings = discoveryAppSettings({
    spec,
    subscription: ctx.inputs.subscription,
    discoveryDomain: ctx.inputs.discoveryDomain,
    zoneId: target.zoneId,
    identity: target.dns,
    storageAccount: account.name,
    packageUrl,
  });
  const app = await ensureFunctionApp(ctx, planId, target.dns, settings, digest);
  const topic = await ensureTopic(ctx);
  await ensureEventSubscription(ctx, topic, app);
}

interface Account {
  name: string;
  id: string;
  blobEndpoint: string;
  /** Whether it (and so its container and blobs) may be read: it exists and is the cluster's. */
  readable: boolean;
}

/** The storage account of the host and the package: private, TLS 1.2, no keys (identities only). */
async function ensureStorage(ctx: AzureContext): Promise<Account> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const { group, groupId } = where(ctx);
  const name = discoveryStorageAccountName(inputs.subscription, spec);
  const id = `${groupId}/providers/Microsoft.Storage/storageAccounts/${name}`;
  const planned = isPlanned(clusterId);
  const found = planned
    ? undefined
    : await ifFound(() => clients.storage.storageAccounts.getProperties(group, name));
  if (found && ownerOf(found) !== clusterId) throw foreign("storage account", name, ownerOf(found));
  if (!found && !planned) {
    const check = await clients.storage.storageAccounts.checkNameAvailability({
      name,
      type: "Microsoft.Storage/storageAccounts",
    });
    if (check.nameAvailable === false)
      throw new KubebakeError(
        `storage account ${name} exists outside resource group ${group} or cannot be made (${check.reason}: ${check.message}); account names are global: rename the cluster`,
        ExitCode.unsafeState,
      );
  }
  const tags = tagsFor(spec, "dns-storage", clusterId);
  // Encryption at rest is Azure's default (256-bit AES, Microsoft-managed keys) and cannot be turned off.
  // Public network access stays on: Consumption apps reach storage over public endpoints.
  const same =
    found &&
    isDeepStrictEqual({ ...found.tags }, tags) &&
    found.kind === "StorageV2" &&
    found.sku?.name === "Standard_LRS" &&
    found.enableHttpsTrafficOnly === true &&
    found.minimumTlsVersion === "TLS1_2" &&
    found.allowBlobPublicAccess === false &&
    found.allowSharedKeyAccess === false;
  const made = same
    ? found
    : await rec.make(
        {
          action: found ? "update" : "create",
          kind: "storage-account",
          name,
          detail: "StorageV2 Standard_LRS, no shared keys",
        },
        async () =>
          await clients.storage.storageAccounts.create(
            group,
            name,
            {
              location: spec.location,
              kind: "StorageV2",
              sku: { name: "Standard_LRS" },
              tags,
              enableHttpsTrafficOnly: true,
              minimumTlsVersion: "TLS1_2",
              allowBlobPublicAccess: false,
              // The host and the package fetch use the app's identity: no key ever needed.
              allowSharedKeyAccess: false,
              defaultToOAuthAuthentication: true,
            },
            polled(ctx),
          ),
        undefined,
      );
  const blobEndpoint = made?.primaryEndpoints?.blob ?? `https://${name}.blob.core.windows.net/`;
  return { name, id, blobEndpoint, readable: found !== undefined };
}

/** The package's container, and the package as a blob named by its digest (uploaded once). */
async function ensurePackage(
  ctx: AzureContext,
  account: Account,
  zip: Buffer,
  digest: string,
): Promise<string> {
  const { clients, rec } = ctx;
  const { group } = where(ctx);
  const container = account.readable
    ? await ifFound(() => clients.storage.blobContainers.get(group, account.name, PACKAGE_CONTAINER))
    : undefined;
  if (!container)
    await rec.make(
      { action: "create", kind: "blob-container", name: `${account.name}/${PACKAGE_CONTAINER}` },
      async () =>
        void (await clients.storage.blobContainers.create(group, account.name, PACKAGE_CONTAINER, {
          publicAccess: "None",
        })),
      undefined,
    );
  const name = packageBlobName(digest);
  // StoragePipelineOptions does not declare tlsOptions; the core pipeline it is passed to honours it.
  const { ca } = clients.endpoints;
  const options: StoragePipelineOptions & { tlsOptions?: { ca: string } } = ca ? { tlsOptions: { ca } } : {};
  const blob = new BlobServiceClient(account.blobEndpoint, clients.credential, options)
    .getContainerClient(PACKAGE_CONTAINER)
    .getBlockBlobClient(name);
  const present = container ? await dataPlane(account, () => blob.exists()) : false;
  if (!present)
    await rec.make(
      { action: "create", kind: "function-package", name: `${account.name}/${PACKAGE_CONTAINER}/${name}` },
      () =>
        dataPlane(account, async () => {
          await blob.uploadData(zip, { blobHTTPHeaders: { blobContentType: "application/zip" } });
        }),
      undefined,
    );
  return blob.url;
}

/** A blob call; a refusal names the rights the operator lacks. */
async function dataPlane<T>(account: Account, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (statusOf(error) === 403)
      throw new KubebakeError(
        `storage account ${account.name} refused the operator's credential: it needs the blob data actions read and write on the account (for example Storage Blob Data Contributor)`,
        ExitCode.cloudFailed,
      );
    throw error;
  }
}

/** The Linux Consumption plan (Y1): pay per execution, nothing reserved. */
async function ensurePlan(ctx: AzureContext): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const { group, groupId } = where(ctx);
  const name = discoveryPlanName(spec.name);
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.web.appServicePlans.get(group, name));
  if (found && ownerOf(found) !== clusterId) throw foreign("app service plan", name, ownerOf(found));
  const tags = tagsFor(spec, "dns-plan", clusterId);
  const same =
    found &&
    found.sku?.name === "Y1" &&
    found.reserved === true &&
    isDeepStrictEqual({ ...found.tags }, tags);
  if (!same)
    await rec.make(
      { action: found ? "update" : "create", kind: "app-service-plan", name, detail: "Y1 Linux Consumption" },
      async () =>
        void (await clients.web.appServicePlans.createOrUpdate(
          group,
          name,
          {
            location: spec.location,
            kind: "functionapp",
            sku: { name: "Y1", tier: "Dynamic" },
            // Linux.
            reserved: true,
            tags,
          },
          polled(ctx),
        )),
      undefined,
    );
  return `${groupId}/providers/Microsoft.Web/serverfarms/${name}`;
}

/**
 * Inbound: only Event Grid. Public network access stays enabled because Event Grid delivers to the
 * function's webhook over the public endpoint (Consumption has no private endpoints, and a disabled
 * public access refuses Event Grid too); the timer needs no inbound at all. So the front end admits the
 * AzureEventGrid service tag only, and the webhook still wants the function's system key.
 */
const INBOUND = [
  {
    name: "event-grid",
    ipAddress: "AzureEventGrid",
    tag: "ServiceTag" as const,
    action: "Allow",
    priority: 100,
  },
];

/** The site's configuration kubebake sets besides its settings. */
const SITE_CONFIG = {
  linuxFxVersion: DISCOVERY_LINUX_FX_VERSION,
  minTlsVersion: "1.2",
  ftpsState: "Disabled",
  ipSecurityRestrictions: INBOUND,
  scmIpSecurityRestrictionsUseMain: true,
  // One instance: the timer, an event and `dns sync` never write the zone twice at once.
  functionAppScaleLimit: 1,
} as const;

/**
 * What of a site decides whether it must be written again. A GET of a site answers only part of its
 * configuration (the rest is `config/web`): a field it leaves out is not compared.
 */
function siteDrift(
  found: Site,
  want: { planId: string; identityId: string; tags: Record<string, string> },
): boolean {
  const config = found.siteConfig ?? {};
  const restrictions = (
    list: readonly { ipAddress?: string; tag?: string; action?: string; priority?: number }[],
  ) => list.map((r) => [lower(r.ipAddress), r.tag, lower(r.action), r.priority].join(" ")).sort();
  const shown = <K extends keyof typeof SITE_CONFIG>(key: K) =>
    config[key] === undefined || config[key] === null || isDeepStrictEqual(config[key], SITE_CONFIG[key]);
  return !(
    lower(found.serverFarmId) === lower(want.planId) &&
    found.httpsOnly === true &&
    /linux/i.test(found.kind ?? "") &&
    Object.keys(found.identity?.userAssignedIdentities ?? {})
      .map(lower)
      .join() === lower(want.identityId) &&
    isDeepStrictEqual({ ...found.tags }, want.tags) &&
    shown("linuxFxVersion") &&
    shown("minTlsVersion") &&
    shown("ftpsState") &&
    shown("functionAppScaleLimit") &&
    (!config.ipSecurityRestrictions ||
      isDeepStrictEqual(restrictions(config.ipSecurityRestrictions), restrictions(INBOUND)))
  );
}

interface FunctionApp {
  name: string;
  id: string;
}

async function ensureFunctionApp(
  ctx: AzureContext,
  planId: string,
  dns: ManagedIdentity,
  settings: Record<string, string>,
  digest: string,
): Promise<FunctionApp> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const { group, groupId } = where(ctx);
  const name = discoveryFunctionAppName(inputs.subscription, spec);
  const app = { name, id: `${groupId}/providers/Microsoft.Web/sites/${name}` };
  const found = isPlanned(clusterId) ? undefined : await ifFound(() => clients.web.webApps.get(group, name));
  if (found && ownerOf(found) !== clusterId) throw foreign("function app", name, ownerOf(found));
  const tags = tagsFor(spec, "dns-function", clusterId);
  const reconfigured = found !== undefined && siteDrift(found, { planId, identityId: dns.id, tags });
  // Only kubebake's settings are compared: Azure may add its own.
  const current = found
    ? ((await clients.web.webApps.listApplicationSettings(group, name)).properties ?? {})
    : {};
  const changed = Object.keys(settings).filter((key) => current[key] !== settings[key]);
  if (found && !reconfigured && changed.length === 0) return app;
  const detail = [
    changed.includes("WEBSITE_RUN_FROM_PACKAGE") || !found ? `package ${digest.slice(0, 12)}` : "",
    changed.some((key) => key !== "WEBSITE_RUN_FROM_PACKAGE") && found ? "settings" : "",
    reconfigured ? "configuration" : "",
  ]
    .filter(Boolean)
    .join(", ");
  await rec.make(
    { action: found ? "update" : "create", kind: "function-app", name, detail },
    async () => {
      if (found && !reconfigured)
        // Written whole: the call replaces every setting.
        await clients.web.webApps.updateApplicationSettings(group, name, { properties: settings });
      else
        await clients.web.webApps.createOrUpdate(
          group,
          name,
          {
            location: spec.location,
            kind: "functionapp,linux",
            tags,
            identity: { type: "UserAssigned", userAssignedIdentities: { [dns.id]: {} } },
            serverFarmId: planId,
            httpsOnly: true,
            clientAffinityEnabled: false,
            siteConfig: {
              ...SITE_CONFIG,
              ipSecurityRestrictions: INBOUND.map((rule) => ({ ...rule })),
              appSettings: Object.entries(settings).map(([key, value]) => ({ name: key, value })),
            },
          },
          polled(ctx),
        );
      // A package given by URL on Linux Consumption: its triggers are registered only when synced.
      await clients.web.webApps.syncFunctionTriggers(group, name);
    },
    undefined,
  );
  return app;
}

interface Topic {
  group: string;
  name: string;
}

/**
 * The resource group's system topic. Azure allows one per source: one that exists (the operator's,
 * another cluster's in the same group) is used and never changed or deleted; otherwise kubebake makes one.
 */
async function ensureTopic(ctx: AzureContext): Promise<Topic> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const { group, groupId } = where(ctx);
  const ours = { group, name: discoveryTopicName(spec.name) };
  const found = isPlanned(clusterId) ? undefined : await findTopic(ctx);
  if (found && lower(found.name) === lower(ours.name) && lower(found.group) === lower(group)) {
    if (found.owner !== clusterId) throw foreign("event grid system topic", ours.name, found.owner);
    return ours;
  }
  if (found) {
    rec.info(
      `Event Grid: using the resource group's system topic ${found.name} (not kubebake's: one per source)`,
    );
    return found;
  }
  await rec.make(
    { action: "create", kind: "event-grid-topic", name: ours.name, detail: `resource group ${group}` },
    async () =>
      void (await clients.eventGrid.systemTopics.beginCreateOrUpdateAndWait(
        group,
        ours.name,
        {
          location: "global",
          source: groupId,
          topicType: RESOURCE_GROUPS_TOPIC_TYPE,
          tags: tagsFor(spec, "dns-events", clusterId),
        },
        polled(ctx),
      )),
    undefined,
  );
  return ours;
}

/** The system topic whose source is the cluster's resource group, wherever it is in the subscription. */
async function findTopic(ctx: AzureContext): Promise<(Topic & { owner?: string }) | undefined> {
  const { groupId } = where(ctx);
  for await (const topic of ctx.clients.eventGrid.systemTopics.listBySubscription())
    if (lower(topic.source) === lower(groupId))
      return { group: topic.id!.split("/")[4]!, name: topic.name!, owner: ownerOf(topic) };
  return undefined;
}

/** The VM events of the group, delivered to the function one at a time. */
function wantedSubscription(ctx: AzureContext, app: FunctionApp): EventSubscription {
  return {
    destination: {
      endpointType: "AzureFunction",
      resourceId: `${app.id}/functions/${DISCOVERY_FUNCTIONS.events}`,
      maxEventsPerBatch: 1,
    },
    filter: {
      includedEventTypes: DISCOVERY_EVENT_TYPES,
      subjectBeginsWith: `${where(ctx).groupId}/providers/Microsoft.Compute/virtualMachines/`,
      advancedFilters: [{ operatorType: "StringIn", key: "data.operationName", values: VM_OPERATIONS }],
    },
    labels: [ownerLabel(ctx.clusterId)],
    eventDeliverySchema: "EventGridSchema",
    // An event only hastens what the timer does within a minute: a late one is worthless.
    retryPolicy: { maxDeliveryAttempts: 3, eventTimeToLiveInMinutes: 5 },
  };
}

const subscriptionShape = (s: EventSubscription) => {
  const destination = s.destination as { endpointType?: string; resourceId?: string } | undefined;
  const filters = (s.filter?.advancedFilters ?? []) as {
    operatorType?: string;
    key?: string;
    values?: string[];
  }[];
  return {
    endpoint: destination?.endpointType,
    resourceId: lower(destination?.resourceId),
    types: [...(s.filter?.includedEventTypes ?? [])].sort(),
    subject: lower(s.filter?.subjectBeginsWith),
    filters: filters.map((f) => `${f.operatorType} ${f.key} ${[...(f.values ?? [])].sort().join()}`),
    labels: [...(s.labels ?? [])].sort(),
    retry: [s.retryPolicy?.maxDeliveryAttempts, s.retryPolicy?.eventTimeToLiveInMinutes],
  };
};

async function ensureEventSubscription(ctx: AzureContext, topic: Topic, app: FunctionApp): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const name = discoveryEventSubscriptionName(inputs.spec.name);
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.eventGrid.systemTopicEventSubscriptions.get(topic.group, topic.name, name));
  if (found && !found.labels?.includes(ownerLabel(clusterId)))
    throw foreign("event subscription", `${topic.name}/${name}`, labelledOwner(found));
  const want = wantedSubscription(ctx, app);
  if (
    found &&
    found.provisioningState !== "Failed" &&
    isDeepStrictEqual(subscriptionShape(found), subscriptionShape(want))
  )
    return;
  await rec.make(
    {
      action: found ? "update" : "create",
      kind: "event-subscription",
      name: `${topic.name}/${name}`,
      detail: DISCOVERY_FUNCTIONS.events,
    },
    async () => {
      // Event Grid takes a function destination only once the host has loaded it from the package.
      await waitForFunction(ctx, app, DISCOVERY_FUNCTIONS.events);
      await clients.eventGrid.systemTopicEventSubscriptions.beginCreateOrUpdateAndWait(
        topic.group,
        topic.name,
        name,
        want,
        polled(ctx),
      );
    },
    undefined,
  );
}

const labelledOwner = (s: EventSubscription | undefined) =>
  s?.labels?.find((label) => label.startsWith("kubebake:owner="))?.slice("kubebake:owner=".length);

/**
 * Polls the app's functions every pollMs, for at most FUNCTION_WAIT_MS of polls. A missing function's
 * triggers are synced again now and then: the deployment's own sync fails while the host cannot read the
 * package yet (a new role assignment takes minutes to apply), and a later apply changes nothing to sync.
 */
async function waitForFunction(ctx: AzureContext, app: FunctionApp, fn: string): Promise<void> {
  const { group } = where(ctx);
  const pollMs = Math.max(ctx.pollMs, 1);
  const attempts = Math.max(1, Math.ceil(FUNCTION_WAIT_MS / pollMs));
  const syncEvery = Math.ceil(60_000 / pollMs);
  let syncFailed: string | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    for await (const listed of ctx.clients.web.webApps.listFunctions(group, app.name))
      if (listed.name?.split("/").pop() === fn) return;
    if (attempt % syncEvery === 0)
      syncFailed = await ctx.clients.web.webApps.syncFunctionTriggers(group, app.name).then(
        () => undefined,
        (error: unknown) => String((error as Error)?.message ?? error),
      );
    await ctx.sleep(pollMs);
  }
  throw new KubebakeError(
    `the function app ${app.name} did not list its function ${fn} within ${FUNCTION_WAIT_MS / 60_000} minutes: the Functions host could not load the package (see the app's logs; its identity must read the package blob)${syncFailed ? `; the last trigger sync failed: ${syncFailed}` : ""}`,
    ExitCode.cloudFailed,
  );
}

/** Gives the cluster's system topic to the cluster `heir`: its owner tag, without this cluster's name. */
async function handOverTopic(ctx: AzureContext, topic: Topic, heir: string): Promise<void> {
  const topics = ctx.clients.eventGrid.systemTopics;
  await ctx.rec.make(
    { action: "update", kind: "event-grid-topic", name: topic.name, detail: `owner ${heir}, which uses it` },
    async () => {
      const current = await topics.get(topic.group, topic.name);
      const { [CLUSTER_TAG]: _cluster, ...tags } = current.tags ?? {};
      void _cluster;
      await topics.beginCreateOrUpdateAndWait(
        topic.group,
        topic.name,
        {
          location: current.location,
          source: current.source,
          topicType: current.topicType,
          tags: { ...tags, [OWNER_TAG]: heir },
        },
        polled(ctx),
      );
    },
    undefined,
  );
}

/**
 * Deletes what ensureAzureDiscovery made, the cluster's only, in dependency order: the event
 * subscription, the system topic (if kubebake made it and nobody else subscribes to it; a cluster that still
 * does gets it), the function app, its plan, the storage account (its container and package go with it).
 * Absent parts are skipped.
 */
export async function removeAzureDiscovery(ctx: AzureContext): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  if (isPlanned(clusterId)) return;
  const { spec, subscription } = inputs;
  const { group } = where(ctx);
  const topic = await findTopic(ctx);
  if (topic) {
    const name = discoveryEventSubscriptionName(spec.name);
    const subscriptions = clients.eventGrid.systemTopicEventSubscriptions;
    const found = await ifFound(() => subscriptions.get(topic.group, topic.name, name));
    if (found?.labels?.includes(ownerLabel(clusterId)))
      await rec.make(
        { action: "delete", kind: "event-subscription", name: `${topic.name}/${name}` },
        () => subscriptions.beginDeleteAndWait(topic.group, topic.name, name, polled(ctx)),
        undefined,
      );
    if (topic.owner === clusterId) {
      const others: EventSubscription[] = [];
      for await (const s of subscriptions.listBySystemTopic(topic.group, topic.name))
        if (s.name !== name) others.push(s);
      // Another cluster of the group subscribes to it (one topic per source): the topic becomes that
      // cluster's, so nothing keeps this cluster's id and the last cluster to go deletes it.
      const heir = others.map(labelledOwner).find((owner) => owner !== undefined);
      if (heir) await handOverTopic(ctx, topic, heir);
      else if (others.length > 0)
        rec.info(
          `Event Grid: system topic ${topic.name} kept: it still delivers to ${others.map((s) => s.name).join(", ")}`,
        );
      else
        await rec.make(
          { action: "delete", kind: "event-grid-topic", name: topic.name },
          () => clients.eventGrid.systemTopics.beginDeleteAndWait(topic.group, topic.name, polled(ctx)),
          undefined,
        );
    }
  }
  const appName = discoveryFunctionAppName(subscription, spec);
  const app = await ifFound(() => clients.web.webApps.get(group, appName));
  const deletesApp = app !== undefined && ownerOf(app) === clusterId;
  if (deletesApp)
    await rec.make(
      { action: "delete", kind: "function-app", name: appName },
      () => clients.web.webApps.delete(group, appName, { deleteEmptyServerFarm: false }),
      undefined,
    );
  const planName = discoveryPlanName(spec.name);
  const plan = await ifFound(() => clients.web.appServicePlans.get(group, planName));
  // Someone else's app on the cluster's plan: Azure refuses to delete a plan in use, and so does kubebake.
  // (A dry run did not delete the cluster's app: the plan still counts it.)
  const others = (plan?.numberOfSites ?? 0) - (deletesApp && rec.dryRun ? 1 : 0);
  if (plan && ownerOf(plan) === clusterId && others > 0)
    rec.info(`app service plan ${planName} kept: it still hosts ${others} other app(s)`);
  else if (plan && ownerOf(plan) === clusterId)
    await rec.make(
      { action: "delete", kind: "app-service-plan", name: planName },
      () => clients.web.appServicePlans.delete(group, planName),
      undefined,
    );
  const accountName = discoveryStorageAccountName(subscription, spec);
  const account = await ifFound(() => clients.storage.storageAccounts.getProperties(group, accountName));
  if (account && ownerOf(account) === clusterId)
    await rec.make(
      { action: "delete", kind: "storage-account", name: accountName },
      () => clients.storage.storageAccounts.delete(group, accountName),
      undefined,
    );
}
