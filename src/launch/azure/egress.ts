/**
 * The way out of kubebake's subnet. Without `network.internet` the nodes have no public IP and the subnet
 * no default outbound access (Azure retires it), yet nodes fetch their PKI from Key Vault and masters ask
 * Resource Manager about joining VMs (and fetch Microsoft's issuing CAs): the subnet goes out through a NAT
 * gateway with one Standard static public IP (outbound only, nothing comes in through it).
 */
import { ROLES } from "../../discover/names";
import { isPlanned, plannedId } from "../changes";
import { foreign } from "../ownership";
import { ifFound, type AzureContext } from "./context";
import { egressAddressName, MODEL_TAG, natGatewayName, OWNER_TAG, scaleSetName, tagsFor } from "./desired";

export const sameId = (a: string | undefined, b: string | undefined) => a?.toLowerCase() === b?.toLowerCase();
const ownerOf = (resource: { tags?: Record<string, string> } | undefined) => resource?.tags?.[OWNER_TAG];

export interface Egress {
  /** The NAT gateway the subnet must name, if any. */
  natGatewayId?: string;
  /** Deletes the cluster's NAT gateway and address when the subnet no longer needs them. */
  retire(): Promise<void>;
}

/**
 * The subnet's way out. A Standard NAT gateway is zonal (one zone, or none and Azure picks it), and a
 * subnet takes one gateway: a gateway per zone would need a subnet per zone, and one gateway in a chosen
 * zone adds nothing for nodes in the other zones. So it has no zone, nor has its address (in a region with
 * zones Azure makes a zone-less Standard address zone-redundant); a zone-less gateway takes no zonal one.
 *
 * With `internet: true` nodes go out through their own public IPs. On a switch to it the gateway stays
 * while a node without one is left: the old nodes (masters approving the new ones' joins through Resource
 * Manager among them) need it until the rollout has replaced them. The apply after that removes it.
 */
export async function ensureEgress(ctx: AzureContext, group: string): Promise<Egress> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const name = natGatewayName(spec.name);
  const address = egressAddressName(spec.name);
  const planned = isPlanned(clusterId);
  const foundGateway = planned
    ? undefined
    : await ifFound(() => clients.network.natGateways.get(group, name));
  const foundAddress = planned
    ? undefined
    : await ifFound(() => clients.network.publicIPAddresses.get(group, address));
  if (spec.network.internet === true) {
    const ours = (found: { tags?: Record<string, string> } | undefined) =>
      found && ownerOf(found) === clusterId;
    if (ours(foundGateway) && (await privateNodesLeft(ctx, group))) {
      rec.info(
        `NAT gateway ${name} stays until every node has its own public IP (the next apply removes it)`,
      );
      return { natGatewayId: foundGateway!.id, retire: async () => {} };
    }
    return {
      retire: async () => {
        if (ours(foundGateway))
          await rec.make(
            { action: "delete", kind: "nat-gateway", name },
            () => clients.network.natGateways.beginDeleteAndWait(group, name),
            undefined,
          );
        if (ours(foundAddress))
          await rec.make(
            { action: "delete", kind: "public-ip", name: address },
            () => clients.network.publicIPAddresses.beginDeleteAndWait(group, address),
            undefined,
          );
      },
    };
  }
  if (foundAddress && ownerOf(foundAddress) !== clusterId)
    throw foreign("public IP address", address, ownerOf(foundAddress));
  if (foundGateway && ownerOf(foundGateway) !== clusterId)
    throw foreign("NAT gateway", name, ownerOf(foundGateway));
  const addressId =
    foundAddress?.id ??
    (await rec.make(
      { action: "create", kind: "public-ip", name: address, detail: "Standard, static" },
      async () =>
        (
          await clients.network.publicIPAddresses.beginCreateOrUpdateAndWait(group, address, {
            location: spec.location,
            tags: tagsFor(spec, "egress-address", clusterId),
            sku: { name: "Standard", tier: "Regional" },
            publicIPAllocationMethod: "Static",
            publicIPAddressVersion: "IPv4",
          })
        ).id!,
      plannedId("public IP"),
    ));
  const same =
    foundGateway &&
    foundGateway.sku?.name === "Standard" &&
    foundGateway.idleTimeoutInMinutes === NAT_IDLE_MINUTES &&
    foundGateway.publicIpAddresses?.length === 1 &&
    sameId(foundGateway.publicIpAddresses[0]!.id, addressId);
  const natGatewayId = same
    ? foundGateway.id!
    : await rec.make(
        {
          action: foundGateway ? "update" : "create",
          kind: "nat-gateway",
          name,
          detail: "Standard, no zone",
        },
        async () =>
          (
            await clients.network.natGateways.beginCreateOrUpdateAndWait(group, name, {
              location: spec.location,
              tags: tagsFor(spec, "egress", clusterId),
              sku: { name: "Standard" },
              idleTimeoutInMinutes: NAT_IDLE_MINUTES,
              publicIpAddresses: [{ id: addressId }],
            })
          ).id!,
        plannedId("NAT gateway"),
      );
  return { natGatewayId, retire: async () => {} };
}

/** Azure's default, kept explicit: a long idle flow holds a SNAT port of the gateway that long. */
const NAT_IDLE_MINUTES = 4;

/**
 * Whether a node of the cluster may still lack a public IP: a scale set whose model gives none, or a
 * member not (yet) made from its scale set's model.
 */
async function privateNodesLeft(ctx: AzureContext, group: string): Promise<boolean> {
  const { clients, inputs } = ctx;
  for (const role of ROLES) {
    const set = await ifFound(() =>
      clients.compute.virtualMachineScaleSets.get(group, scaleSetName(inputs.spec.name, role)),
    );
    if (!set) continue;
    const publicModel = set.virtualMachineProfile?.networkProfile?.networkInterfaceConfigurations?.some(
      (nic) => nic.ipConfigurations?.some((ip) => ip.publicIPAddressConfiguration !== undefined),
    );
    if (!publicModel) return true;
    for await (const vm of clients.compute.virtualMachines.list(group, {
      filter: `'virtualMachineScaleSet/id' eq '${set.id}'`,
    }))
      if (
        vm.provisioningState?.toLowerCase() !== "deleting" &&
        vm.tags?.[MODEL_TAG] !== set.tags?.[MODEL_TAG]
      )
        return true;
  }
  return false;
}
