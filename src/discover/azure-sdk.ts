/**
 * The ARM calls of Azure discovery over the official clients (src/launch/azure/clients.ts pins their
 * api-versions): what `kubebake dns sync` uses from an operator's machine. Their RestError carries the
 * HTTP status as statusCode, which azure.ts classifies as it does the REST api's.
 */
import type { ComputeManagementClient } from "@azure/arm-compute";
import type { NetworkManagementClient } from "@azure/arm-network";
import type { PrivateDnsManagementClient } from "@azure/arm-privatedns";
import type { AzureDiscoveryApi, AzureNic, AzureRecordSet, AzureVm } from "./azure";

/** The clients discovery calls (an AzureClients has them). */
export interface AzureDiscoveryClients {
  compute: Pick<ComputeManagementClient, "virtualMachines">;
  network: Pick<NetworkManagementClient, "networkInterfaces">;
  privateDns: Pick<PrivateDnsManagementClient, "recordSets">;
}

async function all<T>(pages: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of pages) items.push(item);
  return items;
}

export function sdkDiscoveryApi(clients: AzureDiscoveryClients): AzureDiscoveryApi {
  return {
    async listScaleSetVms(resourceGroup, scaleSetId) {
      const vms = await all(
        clients.compute.virtualMachines.list(resourceGroup, {
          filter: `'virtualMachineScaleSet/id' eq '${scaleSetId}'`,
          expand: "instanceView",
        }),
      );
      return vms.map((vm): AzureVm => ({
        id: vm.id ?? "",
        scaleSetId: vm.virtualMachineScaleSet?.id,
        provisioningState: vm.provisioningState,
        statuses: (vm.instanceView?.statuses ?? []).flatMap((s) => (s.code ? [s.code] : [])),
      }));
    },

    async listNics(resourceGroup) {
      const nics = await all(clients.network.networkInterfaces.list(resourceGroup));
      return nics.map((nic): AzureNic => ({
        virtualMachineId: nic.virtualMachine?.id,
        primary: nic.primary,
        ipConfigurations: (nic.ipConfigurations ?? []).map((c) => ({
          primary: c.primary,
          privateIPAddress: c.privateIPAddress,
          privateIPAddressVersion: c.privateIPAddressVersion,
        })),
      }));
    },

    async listRecordSets(zone) {
      const sets = await all(clients.privateDns.recordSets.list(zone.resourceGroup, zone.name));
      return sets.map((set): AzureRecordSet => ({
        name: set.name ?? "",
        type: (set.type ?? "").split("/").pop()!,
        etag: set.etag,
        ttl: set.ttl,
        fqdn: set.fqdn,
        ipv4Addresses: (set.aRecords ?? []).flatMap((r) => (r.ipv4Address ? [r.ipv4Address] : [])),
        isAutoRegistered: set.isAutoRegistered,
      }));
    },

    async putRecordSet(zone, name, record, condition) {
      await clients.privateDns.recordSets.createOrUpdate(
        zone.resourceGroup,
        zone.name,
        "A",
        name,
        { ttl: record.ttl, aRecords: record.ipv4Addresses.map((ipv4Address) => ({ ipv4Address })) },
        condition,
      );
    },

    async deleteRecordSet(zone, name, condition) {
      await clients.privateDns.recordSets.delete(zone.resourceGroup, zone.name, "A", name, condition);
    },
  };
}
