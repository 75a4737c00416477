/**
 * Discovery on GCE: the same reconciler core as every cloud (src/discover/reconcile.ts) over GCE's ports
 * (src/discover/gce.ts), with the cluster's private zone.
 */
import { gceDiscoveryPorts } from "../../discover/gce";
import { restDiscoveryCompute } from "../../discover/gce-rest";
import { reconcile, ReconcileFailed } from "../../discover/reconcile";
import type { SyncResult } from "../../discover/sync";
import { ExitCode, KubebakeError } from "../../errors";
import { headersOf } from "../../publish/gce/auth";
import type { GceClients } from "./clients";
import { managedZoneName, type GceInputs } from "./desired";

/** The reconciler's options for the cluster: its zone, domain and the spec's TTL and empty-group policy. */
export const gceDiscoveryConfig = (inputs: GceInputs) => ({
  cluster: inputs.spec.name,
  zoneId: managedZoneName(inputs.spec.name),
  domain: inputs.discoveryDomain,
  ttl: inputs.spec.discovery.ttl,
  emptyGroup: inputs.spec.discovery.emptyGroup,
});

/** One reconciliation from here (no function is deployed on GCE yet: no other writer exists). */
export async function syncGceDiscovery(
  clients: GceClients,
  inputs: GceInputs,
  log: (entry: object) => void,
): Promise<SyncResult> {
  const headers = () => headersOf(clients.auth);
  const ports = gceDiscoveryPorts(
    {
      ...restDiscoveryCompute(clients.endpoints.rest ?? "https://compute.googleapis.com", headers),
      dns: { baseUrl: clients.endpoints.rest ?? "https://dns.googleapis.com", headers },
    },
    { project: clients.project, region: clients.region },
  );
  try {
    return { via: "local", ...(await reconcile(ports, { ...gceDiscoveryConfig(inputs), log })) };
  } catch (error) {
    if (error instanceof ReconcileFailed)
      throw new KubebakeError(`dns sync: ${error.message}`, ExitCode.cloudFailed);
    throw error;
  }
}
