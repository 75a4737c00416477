/**
 * The private Cloud DNS zone `<cluster>.<domain>.` bound to the cluster's network: where discovery keeps
 * the masters, minions and etcd records (src/discover/gce.ts), seen only from inside that network.
 */
import { invalidInput } from "../../errors";
import { isPlanned } from "../changes";
import { ifFound } from "./clients";
import { computeUrl, resourcePath, type GceContext } from "./context";
import { clusterZoneDnsName, describedAs, labelsFor, managedZoneName, OWNER_LABEL } from "./desired";
import type { NetworkLinks } from "./network";
import { foreign } from "./owner";

export interface ManagedZone {
  name: string;
  dnsName: string;
  labels?: Record<string, string>;
  privateVisibilityConfig?: { networks?: { networkUrl: string }[] };
}

export const zonePath = (project: string, zone: string) => `dns/v1/projects/${project}/managedZones/${zone}`;

export async function ensureZone(ctx: GceContext, links: NetworkLinks): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const name = managedZoneName(inputs.spec.name);
  const dnsName = clusterZoneDnsName(inputs);
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.rest<ManagedZone>("dns", "GET", zonePath(clients.project, name)));
  const network = { networkUrl: computeUrl(links.network) };
  if (!found) {
    await rec.make(
      { action: "create", kind: "dns-zone", name, detail: `private ${dnsName}` },
      async () => {
        await clients.rest("dns", "POST", `dns/v1/projects/${clients.project}/managedZones`, {
          name,
          dnsName,
          description: describedAs(inputs.spec, clusterId, "discovery records"),
          visibility: "private",
          privateVisibilityConfig: { networks: [network] },
          labels: labelsFor(inputs.spec, "zone", clusterId),
        });
      },
      undefined,
    );
    return name;
  }
  if (found.labels?.[OWNER_LABEL] !== clusterId) throw foreign("dns zone", name, found.labels?.[OWNER_LABEL]);
  if (found.dnsName !== dnsName)
    throw invalidInput(
      `image: the image's discovery domain makes the zone ${dnsName}, but the cluster's zone ${name} is ${found.dnsName}; a cluster's domain cannot change under its nodes`,
    );
  const bound = (found.privateVisibilityConfig?.networks ?? []).map((n) => resourcePath(n.networkUrl));
  if (!bound.includes(links.network))
    await rec.make(
      { action: "update", kind: "dns-zone", name, detail: `bind to ${links.network}` },
      async () => {
        await clients.rest("dns", "PATCH", zonePath(clients.project, name), {
          privateVisibilityConfig: { networks: [network] },
        });
      },
      undefined,
    );
  return name;
}
