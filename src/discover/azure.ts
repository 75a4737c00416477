/**
 * DiscoveryPorts on Azure: the members of the cluster's two Flexible scale sets (Compute) and their NICs
 * (Network) for the truth, a Private DNS zone for the records. The reconciler core is the one of every cloud
 * (reconcile.ts); this file only says what Azure's words mean in its terms.
 *
 * Compare-and-swap: a record set carries an ETag, and ARM replaces it only when If-Match names the ETag we
 * read (If-None-Match: * creates it only when absent), else answers 412. The core's DELETE(read) +
 * CREATE(desired) batch is therefore one PUT with If-Match: the same "nobody changed it since" guarantee as
 * Route 53's batch, and no moment without a record.
 *
 * The `api` is the few ARM calls this needs: over fetch (azure-rest.ts, what the function bundles) or the
 * official clients (azure-sdk.ts, what `kubebake dns sync` uses).
 */
import type { ClusterGroup, DiscoveryPorts, GroupMember, RecordChange, RecordSet } from "./reconcile";
import { RecordConflict, Rejected, Transient } from "./reconcile";
import { normaliseName, ROLES, zoneName, type Role } from "./names";

/**
 * Azure Private DNS takes at most 20 records per record set (learn.microsoft.com, "Azure Private DNS
 * limits"), so no record may want more; the core caps the addresses at this (ReconcileOptions.maxValues).
 * With it a swap is one PUT of at most 20 addresses, far inside the core's one-batch limit (see `batches`).
 */
export const AZURE_MAX_RECORD_VALUES = 20;

/** The functions the Azure Function's package registers (lambdas/dns-discovery-azure); Event Grid names one. */
export const AZURE_FUNCTIONS = { schedule: "reconcile-schedule", events: "reconcile-events" } as const;

/** A role's scale set: `kubebake-<cluster>-<role>`, in the cluster's resource group. */
export const azureScaleSetName = (cluster: string, role: Role) => `kubebake-${cluster}-${role}`;

/** The cluster's private zone as Azure names it: `<cluster>.<domain>`, no trailing dot. */
export const azureZoneName = (cluster: string, domain: string) =>
  zoneName(cluster, domain).replace(/\.$/, "");

const groupPath = (subscription: string, resourceGroup: string) =>
  `/subscriptions/${subscription}/resourceGroups/${resourceGroup}`;

/** The zone's resource id: what HOSTED_ZONE_ID holds on Azure. */
export const azureZoneId = (subscription: string, resourceGroup: string, zone: string) =>
  `${groupPath(subscription, resourceGroup)}/providers/Microsoft.Network/privateDnsZones/${zone}`;

export const azureScaleSetId = (subscription: string, resourceGroup: string, name: string) =>
  `${groupPath(subscription, resourceGroup)}/providers/Microsoft.Compute/virtualMachineScaleSets/${name}`;

export interface AzureZone {
  subscription: string;
  resourceGroup: string;
  /** `demo.k8s`: no trailing dot. */
  name: string;
}

/** A private zone's resource id in its parts; anything else is refused (a Route 53 id given by mistake). */
export function parseAzureZoneId(id: string): AzureZone {
  const match =
    /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/privateDnsZones\/([^/]+)$/i.exec(
      id,
    );
  if (!match) throw new Error(`${JSON.stringify(id)} is not the resource id of an Azure private DNS zone`);
  return { subscription: match[1]!, resourceGroup: match[2]!, name: match[3]!.replace(/\.$/, "") };
}

/** A scale set member as VirtualMachines_List answers it with $expand=instanceView (the fields read). */
export interface AzureVm {
  id: string;
  /** properties.virtualMachineScaleSet.id. */
  scaleSetId?: string;
  /** properties.provisioningState: read only when the instance view has no ProvisioningState status. */
  provisioningState?: string;
  /** The instance view's status codes: `ProvisioningState/succeeded`, `PowerState/running`… */
  statuses: string[];
}

/** A NIC as NetworkInterfaces_List answers it (the fields read). */
export interface AzureNic {
  /** properties.virtualMachine.id: the VM it is attached to, if any. */
  virtualMachineId?: string;
  primary?: boolean;
  ipConfigurations: { primary?: boolean; privateIPAddress?: string; privateIPAddressVersion?: string }[];
}

/** A record set of the zone, of any type, as RecordSets_List answers it (the fields read). */
export interface AzureRecordSet {
  /** Relative to the zone: `masters`, `@`. */
  name: string;
  /** `A`, `TXT`, `SOA`… (the last part of ARM's `Microsoft.Network/privateDnsZones/<type>`). */
  type: string;
  etag?: string;
  ttl?: number;
  /** With the trailing dot. */
  fqdn?: string;
  /** The A records' addresses (empty for other types). */
  ipv4Addresses: string[];
  isAutoRegistered?: boolean;
}

/** A PUT's precondition: replace exactly the set we read, or create one where none is. */
export type RecordSetCondition = { ifMatch: string } | { ifNoneMatch: "*" };

/** The ARM calls of discovery, in one subscription. Errors carry the HTTP status (statusCode or status). */
export interface AzureDiscoveryApi {
  /** VirtualMachines_List of the group, filtered to one scale set's members, with their instance views. */
  listScaleSetVms(resourceGroup: string, scaleSetId: string): Promise<AzureVm[]>;
  /** NetworkInterfaces_List of the group, every page. */
  listNics(resourceGroup: string): Promise<AzureNic[]>;
  /** RecordSets_List of the zone, every page. */
  listRecordSets(zone: AzureZone): Promise<AzureRecordSet[]>;
  /** RecordSets_CreateOrUpdate of an A record set (name relative to the zone). */
  putRecordSet(
    zone: AzureZone,
    name: string,
    record: { ttl: number; ipv4Addresses: string[] },
    condition: RecordSetCondition,
  ): Promise<void>;
  /** RecordSets_Delete of an A record set, If-Match its ETag. */
  deleteRecordSet(zone: AzureZone, name: string, condition: { ifMatch: string }): Promise<void>;
}

export interface AzureDiscoveryTarget {
  subscription: string;
  /** The cluster's resource group: its scale sets, their NICs and the zone. */
  resourceGroup: string;
  cluster: string;
}

/** Provisioning states of a VM that exists as built: `updating` is a change (tags, an extension) while it runs. */
const BUILT = new Set(["succeeded", "updating"]);

/** The state after `<kind>/` of the first such status code, lower case (`ProvisioningState/failed/X` → failed). */
function statusOf(vm: AzureVm, kind: string): string | undefined {
  const code = vm.statuses.find((c) => c.toLowerCase().startsWith(`${kind.toLowerCase()}/`));
  return code?.split("/")[1]?.toLowerCase();
}

/**
 * A scale set member in the reconciler's words, which are Auto Scaling's: `InService` when it is built and
 * runs; `Pending` while it is created or started (alive: the etcd record lists it); anything else (deleting,
 * deallocated, stopped, failed…) as `azure:<provisioning>:<power>`, which no record lists. Always `Healthy`:
 * without a health extension or a load balancer probe, which kubebake does not add, Azure reports no
 * health for a VM, and a running one counts.
 */
export function azureMemberOf(vm: AzureVm): GroupMember {
  const provisioning = statusOf(vm, "ProvisioningState") ?? vm.provisioningState?.toLowerCase() ?? "unknown";
  // A VM being created may have no power state yet.
  const power = statusOf(vm, "PowerState") ?? "unknown";
  let lifecycleState: string;
  if (BUILT.has(provisioning) && power === "running") lifecycleState = "InService";
  else if (
    (provisioning === "creating" && ["unknown", "starting", "running"].includes(power)) ||
    (BUILT.has(provisioning) && power === "starting")
  )
    lifecycleState = "Pending";
  else lifecycleState = `azure:${provisioning}:${power}`;
  return { instanceId: vm.id.toLowerCase(), lifecycleState, healthStatus: "Healthy" };
}

/** The HTTP status of an ARM error: the official clients' RestError (statusCode) or ours (status). */
export function azureStatusOf(error: unknown): number | undefined {
  const { statusCode, status } = (error ?? {}) as { statusCode?: unknown; status?: unknown };
  if (typeof statusCode === "number") return statusCode;
  return typeof status === "number" ? status : undefined;
}

/** Socket errors by Node's code, and the official clients' REQUEST_SEND_ERROR (the REST api's are Transient already). */
const NETWORK_CODES = ["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "EAI_AGAIN", "REQUEST_SEND_ERROR"];

/** ARM's errors in the reconciler's kinds: 412/409 a lost swap, 429, 5xx and the network worth a retry, 400 refused. */
export function classifyAzureError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  if (error instanceof Transient || error instanceof RecordConflict || error instanceof Rejected)
    return error;
  const status = azureStatusOf(error) ?? 0;
  if (status === 412 || status === 409) return new RecordConflict(error.message, { cause: error });
  if (status === 429 || (status >= 500 && status < 600))
    return new Transient(error.message, { cause: error });
  if (NETWORK_CODES.includes(String((error as { code?: unknown }).code)))
    return new Transient(error.message, { cause: error });
  if (status === 400) return new Rejected(error.message, { cause: error });
  return error;
}

async function call<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw classifyAzureError(error);
  }
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Each VM's primary NIC's primary address, by lower-case VM id (ARM's ids differ in case between resources). */
export function privateIpsOf(nics: AzureNic[]): Map<string, string> {
  const byVm = new Map<string, AzureNic[]>();
  for (const nic of nics) {
    if (!nic.virtualMachineId) continue;
    const id = nic.virtualMachineId.toLowerCase();
    byVm.set(id, [...(byVm.get(id) ?? []), nic]);
  }
  const ips = new Map<string, string>();
  for (const [vm, attached] of byVm) {
    const nic = attached.find((n) => n.primary) ?? (attached.length === 1 ? attached[0] : undefined);
    const configs = nic?.ipConfigurations ?? [];
    const config = configs.find((c) => c.primary) ?? (configs.length === 1 ? configs[0] : undefined);
    const ip = config?.privateIPAddress;
    if (ip && config.privateIPAddressVersion !== "IPv6" && IPV4.test(ip)) ips.set(vm, ip);
  }
  return ips;
}

/** A record set's name in the core's form: lowercase FQDN with the trailing dot. */
function fqdnOf(set: AzureRecordSet, zone: string): string {
  if (set.fqdn) return normaliseName(set.fqdn);
  return normaliseName(set.name === "@" ? zone : `${set.name}.${zone}`);
}

/** `masters.demo.k8s.` in zone `demo.k8s` is `masters`; a name outside the zone is a configuration error. */
export function relativeRecordName(fqdn: string, zone: string): string {
  const name = normaliseName(fqdn);
  const apex = normaliseName(zone);
  if (name === apex) return "@";
  if (!name.endsWith(`.${apex}`))
    throw new Error(`${name} is not in the zone ${zone}: HOSTED_ZONE_ID names another cluster's zone`);
  return name.slice(0, -apex.length - 1);
}

function etagOf(record: RecordSet): string {
  // ARM always answers one; without it, a swap could not be conditional, so none is made.
  if (!record.version) throw new Error(`${record.name}: the record set was read without an ETag`);
  return record.version;
}

export function azureDiscoveryPorts(api: AzureDiscoveryApi, target: AzureDiscoveryTarget): DiscoveryPorts {
  const { subscription, resourceGroup } = target;
  const sameCluster = (cluster: string) => {
    if (cluster !== target.cluster)
      throw new Error(`these ports read cluster ${target.cluster}, not ${cluster}`);
  };
  const zoneOf = (zoneId: string) => {
    const zone = parseAzureZoneId(zoneId);
    if (zone.subscription.toLowerCase() !== subscription.toLowerCase())
      throw new Error(`the zone ${zoneId} is not in the subscription ${subscription}`);
    return zone;
  };
  return {
    async groups(cluster) {
      sameCluster(cluster);
      const groups: ClusterGroup[] = [];
      for (const role of ROLES) {
        const name = azureScaleSetName(cluster, role);
        const id = azureScaleSetId(subscription, resourceGroup, name);
        const vms = await call(async () => {
          try {
            return await api.listScaleSetVms(resourceGroup, id);
          } catch (error) {
            // A scale set not made yet (or deleted) has no members: its records follow the empty policy.
            if (azureStatusOf(error) === 404) return [];
            throw error;
          }
        });
        // The filter is ARM's; a member of any other scale set must never count.
        const members = vms.filter(
          (vm) => !vm.scaleSetId || vm.scaleSetId.toLowerCase() === id.toLowerCase(),
        );
        groups.push({ name, role, members: members.map(azureMemberOf) });
      }
      return groups;
    },

    async privateIps(cluster) {
      sameCluster(cluster);
      return privateIpsOf(await call(() => api.listNics(resourceGroup)));
    },

    async readRecords(zoneId) {
      const zone = zoneOf(zoneId);
      const sets = await call(() => api.listRecordSets(zone));
      return sets.map((set) => ({
        name: fqdnOf(set, zone.name),
        type: set.type,
        ttl: set.ttl ?? 0,
        values: set.type === "A" ? [...set.ipv4Addresses] : [],
        ...(set.etag ? { version: set.etag } : {}),
        // The virtual network's auto-registration owns these; like a routing policy, not ours.
        ...(set.isAutoRegistered ? { setIdentifier: "autoRegistered" } : {}),
      }));
    },

    /**
     * A batch is about one record: DELETE(read) + CREATE is a PUT If-Match the read ETag, a CREATE alone a
     * PUT If-None-Match *, a DELETE alone a DELETE If-Match. Should the core ever split a swap (`batches`;
     * not with AZURE_MAX_RECORD_VALUES), the DELETE and then the CREATE are each as conditional.
     */
    async changeRecords(zoneId, changes: RecordChange[]) {
      const zone = zoneOf(zoneId);
      const deleted = changes.filter((c) => c.action === "DELETE").map((c) => c.record);
      const created = changes.filter((c) => c.action === "CREATE").map((c) => c.record);
      const names = new Set(changes.map((c) => c.record.name));
      if (names.size !== 1 || deleted.length > 1 || created.length > 1)
        throw new Error("an Azure change is one record set's: at most one DELETE and one CREATE of one name");
      const name = relativeRecordName([...names][0]!, zone.name);
      const [old] = deleted;
      const [next] = created;
      if (next) {
        if (next.type !== "A") throw new Error(`${next.name}: discovery writes A records only`);
        const condition: RecordSetCondition = old ? { ifMatch: etagOf(old) } : { ifNoneMatch: "*" };
        await call(() =>
          api.putRecordSet(zone, name, { ttl: next.ttl, ipv4Addresses: next.values }, condition),
        );
      } else if (old) await call(() => api.deleteRecordSet(zone, name, { ifMatch: etagOf(old) }));
    },

    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
  };
}
