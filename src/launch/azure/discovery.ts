/**
 * Discovery on Azure: `dns deploy` converges the function alone (deploy-discovery.ts); `dns sync` runs the
 * same reconciler core as every cloud (src/discover/reconcile.ts) from here, over Azure's ports
 * (src/discover/azure.ts) and the launch's official clients. The ETag swaps keep it safe beside the
 * deployed function.
 */
import { azureDiscoveryPorts, AZURE_MAX_RECORD_VALUES } from "../../discover/azure";
import { sdkDiscoveryApi } from "../../discover/azure-sdk";
import { reconcile, ReconcileFailed } from "../../discover/reconcile";
import type { SyncResult } from "../../discover/sync";
import { ExitCode, KubebakeError } from "../../errors";
import type { AzureClients } from "./clients";
import { ifFound, type AzureBaseContext, type AzureInputs } from "./context";
import { ensureAzureDiscovery } from "./deploy-discovery";
import { identityName, OWNER_TAG, privateZoneName, resourceGroupName } from "./desired";
import { readClusterId } from "./group";
import { zoneId } from "./zone";

/** The reconciler's options for the cluster: its zone, domain and the spec's TTL and empty-group policy. */
export const azureDiscoveryConfig = (inputs: AzureInputs) => ({
  cluster: inputs.spec.name,
  zoneId: zoneId(
    inputs.subscription,
    resourceGroupName(inputs.spec),
    privateZoneName(inputs.spec.name, inputs.discoveryDomain),
  ),
  domain: inputs.discoveryDomain,
  ttl: inputs.spec.discovery.ttl,
  emptyGroup: inputs.spec.discovery.emptyGroup,
  maxValues: AZURE_MAX_RECORD_VALUES,
});

export async function deployAzureDiscovery(base: AzureBaseContext): Promise<void> {
  const { clients, inputs } = base;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const zone = privateZoneName(spec.name, inputs.discoveryDomain);
  const clusterId = await readClusterId(base);
  const found = clusterId ? await ifFound(() => clients.privateDns.privateZones.get(group, zone)) : undefined;
  const dns = clusterId
    ? await ifFound(() => clients.msi.userAssignedIdentities.get(group, identityName(spec.name, "dns")))
    : undefined;
  if (!clusterId || found?.tags?.[OWNER_TAG] !== clusterId || dns?.tags?.[OWNER_TAG] !== clusterId)
    throw new KubebakeError(
      `cluster ${spec.name}: expected its private zone ${zone} and identity in resource group ${group}; run 'kubebake cluster apply' first`,
      ExitCode.unsafeState,
    );
  await ensureAzureDiscovery(
    { ...base, clusterId },
    {
      zoneId: azureDiscoveryConfig(inputs).zoneId,
      dns: { id: dns.id!, principalId: dns.principalId!, clientId: dns.clientId! },
    },
  );
}

/** One reconciliation from here, through the launch's clients. */
export async function syncAzureDiscovery(
  clients: AzureClients,
  inputs: AzureInputs,
  log: (entry: object) => void,
): Promise<SyncResult> {
  const ports = azureDiscoveryPorts(sdkDiscoveryApi(clients), {
    subscription: inputs.subscription,
    resourceGroup: resourceGroupName(inputs.spec),
    cluster: inputs.spec.name,
  });
  try {
    return { via: "local", ...(await reconcile(ports, { ...azureDiscoveryConfig(inputs), log })) };
  } catch (error) {
    if (error instanceof ReconcileFailed)
      throw new KubebakeError(`dns sync: ${error.message}`, ExitCode.cloudFailed);
    throw error;
  }
}
