/**
 * The cluster's private DNS zone `<cluster>.<domain>` and its link to the nodes' virtual network (no
 * auto-registration: discovery alone writes the records). Azure's private zones are global resources in
 * the cluster's resource group; a zone of this name elsewhere does not clash with it.
 */
import { azureZoneId } from "../../discover/azure";
import { isPlanned } from "../changes";
import { foreign } from "../ownership";
import { ifFound, type AzureContext } from "./context";
import { OWNER_TAG, privateZoneName, resourceGroupName, tagsFor, zoneLinkName } from "./desired";

export const virtualNetworkOf = (subnetId: string) => subnetId.replace(/\/subnets\/[^/]+$/i, "");

export { azureZoneId as zoneId } from "../../discover/azure";

/** Makes the zone and its link; answers the zone's resource id (discovery's HOSTED_ZONE_ID). */
export async function ensureZone(ctx: AzureContext, subnetId: string): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const zone = privateZoneName(spec.name, inputs.discoveryDomain);
  const planned = isPlanned(clusterId);
  const found = planned ? undefined : await ifFound(() => clients.privateDns.privateZones.get(group, zone));
  if (found && found.tags?.[OWNER_TAG] !== clusterId)
    throw foreign("private DNS zone", zone, found.tags?.[OWNER_TAG]);
  if (!found)
    await rec.make(
      { action: "create", kind: "private-dns-zone", name: zone },
      async () =>
        void (await clients.privateDns.privateZones.beginCreateOrUpdateAndWait(group, zone, {
          location: "global",
          tags: tagsFor(spec, "zone", clusterId),
        })),
      undefined,
    );
  const link = zoneLinkName(spec.name);
  const network = virtualNetworkOf(subnetId);
  const linked = found
    ? await ifFound(() => clients.privateDns.virtualNetworkLinks.get(group, zone, link))
    : undefined;
  const same =
    linked &&
    linked.virtualNetwork?.id?.toLowerCase() === network.toLowerCase() &&
    linked.registrationEnabled === false;
  if (!same)
    await rec.make(
      {
        action: linked ? "update" : "create",
        kind: "zone-link",
        name: `${zone}/${link}`,
        detail: network.split("/").pop(),
      },
      async () =>
        void (await clients.privateDns.virtualNetworkLinks.beginCreateOrUpdateAndWait(group, zone, link, {
          location: "global",
          tags: tagsFor(spec, "zone-link", clusterId),
          virtualNetwork: { id: network },
          registrationEnabled: false,
        })),
      undefined,
    );
  return azureZoneId(inputs.subscription, group, zone);
}
