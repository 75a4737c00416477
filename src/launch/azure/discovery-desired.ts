/**
 * What the Azure discovery deployment should be, as pure data: the names of its resources, the events it
 * listens to and the function app's settings. Shared by the launcher (deploy-discovery.ts) and tests.
 */
import { createHash } from "node:crypto";
import type { AzureClusterSpec } from "../../cluster/schema";
import { discoveryEnvironment } from "../../discover/config";
import { prefix, resourceGroupName } from "./desired";

type Named = Pick<AzureClusterSpec, "name" | "resourceGroup">;

/** A short hex digest of the subscription, group and cluster: global names of two clusters never meet. */
const clusterHash = (subscription: string, spec: Named, length: number) =>
  createHash("sha256")
    .update(`${subscription}/${resourceGroupName(spec)}/${spec.name}/dns`)
    .digest("hex")
    .slice(0, length);

/** Storage account names are global, 3 to 24 lower-case letters and digits: `kb<cluster><hash>`. */
export function discoveryStorageAccountName(subscription: string, spec: Named): string {
  const tail = clusterHash(subscription, spec, 10);
  return `kb${spec.name.replace(/[^a-z0-9]/g, "").slice(0, 24 - 2 - tail.length)}${tail}`;
}

/** Function app names are global too (`<name>.azurewebsites.net`, at most 60): a cluster name is at most 40. */
export const discoveryFunctionAppName = (subscription: string, spec: Named) =>
  `kb-${spec.name}-dns-${clusterHash(subscription, spec, 8)}`;

export const discoveryPlanName = (cluster: string) => `${prefix(cluster)}-dns`;
/** The blob container the package is uploaded to. */
export const PACKAGE_CONTAINER = "dns-discovery";
/** One blob per package digest: a new package is a new URL, so the app's settings change and it restarts. */
export const packageBlobName = (digest: string) => `dns-discovery-azure-${digest}.zip`;
/** The system topic kubebake creates when the resource group has none (Azure allows one per source). */
export const discoveryTopicName = (cluster: string) => `${prefix(cluster)}-events`;
export const discoveryEventSubscriptionName = (cluster: string) => `${prefix(cluster)}-vms`;
/** Event subscriptions carry no tags: their owner is one of their labels. */
export const ownerLabel = (clusterId: string) => `kubebake:owner=${clusterId}`;

/** The functions the package registers (lambdas/dns-discovery-azure). */
export { AZURE_FUNCTIONS as DISCOVERY_FUNCTIONS } from "../../discover/azure";

/**
 * The Functions runtime: Linux, Node 22. Node 20 reached its end of life in April 2026; the bundle
 * targets Node 20 (what kubebake runs on) and runs on 22, as the Lambda and the Cloud Function do.
 */
export const DISCOVERY_LINUX_FX_VERSION = "Node|22";

export const RESOURCE_GROUPS_TOPIC_TYPE = "Microsoft.Resources.ResourceGroups";
export const DISCOVERY_EVENT_TYPES = [
  "Microsoft.Resources.ResourceWriteSuccess",
  "Microsoft.Resources.ResourceDeleteSuccess",
];
/** A node comes or goes: a scale set member (Flexible orchestration: a plain VM) is written or deleted. */
export const VM_OPERATIONS = [
  "Microsoft.Compute/virtualMachines/write",
  "Microsoft.Compute/virtualMachines/delete",
];

export interface DiscoverySettingsInput {
  spec: AzureClusterSpec;
  subscription: string;
  discoveryDomain: string;
  /** The private zone's resource id. */
  zoneId: string;
  /** The `dns` identity the app runs as. */
  identity: { id: string; clientId: string };
  storageAccount: string;
  packageUrl: string;
}

/**
 * The app's settings: the discovery environment, where it works, and the Functions host's own. The host's
 * storage is reached with the identity (`AzureWebJobsStorage__*`), never a key, and the package is fetched
 * from its private blob with the same identity (WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID).
 */
export function discoveryAppSettings(input: DiscoverySettingsInput): Record<string, string> {
  const { spec, identity } = input;
  return {
    FUNCTIONS_EXTENSION_VERSION: "~4",
    FUNCTIONS_WORKER_RUNTIME: "node",
    WEBSITE_RUN_FROM_PACKAGE: input.packageUrl,
    WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: identity.id,
    AzureWebJobsStorage__accountName: input.storageAccount,
    AzureWebJobsStorage__credential: "managedidentity",
    AzureWebJobsStorage__clientId: identity.clientId,
    ...discoveryEnvironment({
      cluster: spec.name,
      zoneId: input.zoneId,
      domain: input.discoveryDomain,
      ttl: spec.discovery.ttl,
      emptyGroup: spec.discovery.emptyGroup,
    }),
    AZURE_SUBSCRIPTION_ID: input.subscription,
    AZURE_RESOURCE_GROUP: resourceGroupName(spec),
    AZURE_CLIENT_ID: identity.clientId,
  };
}
