/**
 * The ARM calls of Azure discovery over fetch: what the Azure Function bundles instead of the official
 * clients (three packages and their pipeline for five calls). The api-versions are pinned to the
 * descriptions kubebake is tested against; errors carry the HTTP status, which azure.ts classifies.
 */
import type {
  AzureDiscoveryApi,
  AzureNic,
  AzureRecordSet,
  AzureVm,
  AzureZone,
  RecordSetCondition,
} from "./azure";
import { Transient } from "./reconcile";

export const ARM_URL = "https://management.azure.com";

export const AZURE_API_VERSIONS = {
  compute: "2024-07-01",
  network: "2024-05-01",
  privateDns: "2024-06-01",
} as const;

/** The part of fetch used here: the global one, or a test's that trusts a fake's CA. */
export type Fetch = (
  url: string,
  init: { method: string; headers: Headers; body?: string },
) => Promise<Response>;

export interface AzureRestOptions {
  subscription: string;
  /** Request headers with the bearer token for https://management.azure.com/. */
  headers(): Promise<Headers>;
  /** ARM's URL, or a fake's; default ARM_URL. */
  baseUrl?: string;
  fetch?: Fetch;
}

/** An ARM answer that is not 2xx. */
export class AzureApiError extends Error {
  override name = "AzureApiError";
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface Page<T> {
  value?: T[];
  nextLink?: string | null;
}

interface VmJson {
  id: string;
  properties?: {
    provisioningState?: string;
    virtualMachineScaleSet?: { id?: string };
    instanceView?: { statuses?: { code?: string }[] };
  };
}

interface NicJson {
  properties?: {
    primary?: boolean;
    virtualMachine?: { id?: string };
    ipConfigurations?: {
      properties?: { primary?: boolean; privateIPAddress?: string; privateIPAddressVersion?: string };
    }[];
  };
}

interface RecordSetJson {
  name: string;
  type: string;
  etag?: string;
  properties?: {
    ttl?: number;
    fqdn?: string;
    aRecords?: { ipv4Address?: string }[];
    isAutoRegistered?: boolean;
  };
}

export function restDiscoveryApi(options: AzureRestOptions): AzureDiscoveryApi {
  const base = (options.baseUrl ?? ARM_URL).replace(/\/$/, "");
  const origin = new URL(base).origin;
  const send = options.fetch ?? ((url, init) => fetch(url, init));
  const segment = encodeURIComponent;
  const group = (resourceGroup: string) =>
    `/subscriptions/${segment(options.subscription)}/resourceGroups/${segment(resourceGroup)}`;
  const recordSetPath = (zone: AzureZone, name: string) =>
    `${group(zone.resourceGroup)}/providers/Microsoft.Network/privateDnsZones/${segment(zone.name)}/A/${segment(name)}`;

  async function request<T>(
    method: string,
    url: string,
    extra: Record<string, string> = {},
    body?: unknown,
  ): Promise<T | undefined> {
    let answer: Response;
    try {
      // A copy: the conditions below must not stay on a caller's shared Headers.
      const headers = new Headers(await options.headers());
      for (const [name, value] of Object.entries(extra)) headers.set(name, value);
      if (body !== undefined) headers.set("content-type", "application/json");
      answer = await send(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new Transient(`ARM ${method}: ${(error as Error).message}`, { cause: error });
    }
    const text = await answer.text();
    if (!answer.ok) {
      // ARM's JSON error, or whatever a front end in between answered (an HTML 502 page).
      let code: string | undefined;
      let message = text.slice(0, 300);
      try {
        const error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
        code = error?.code;
        message = error?.message ?? message;
      } catch {
        // not JSON: its first characters say enough
      }
      throw new AzureApiError(
        answer.status,
        code,
        `ARM ${answer.status}${code ? ` ${code}` : ""}: ${message}`,
      );
    }
    return text ? (JSON.parse(text) as T) : undefined;
  }

  /** Every page of a list; a nextLink elsewhere than ARM would be sent our token, so it is refused. */
  async function listAll<T>(path: string, query: Record<string, string>): Promise<T[]> {
    const items: T[] = [];
    let url: string | undefined = `${base}${path}?${new URLSearchParams(query)}`;
    while (url) {
      const page: Page<T> = (await request<Page<T>>("GET", url)) ?? {};
      items.push(...(page.value ?? []));
      url = page.nextLink || undefined;
      if (url && new URL(url).origin !== origin)
        throw new Error(`ARM answered a next page at ${new URL(url).origin}, not ${origin}`);
    }
    return items;
  }

  const conditionHeaders = (condition: RecordSetCondition): Record<string, string> =>
    "ifMatch" in condition ? { "If-Match": condition.ifMatch } : { "If-None-Match": condition.ifNoneMatch };

  return {
    async listScaleSetVms(resourceGroup, scaleSetId) {
      const vms = await listAll<VmJson>(
        `${group(resourceGroup)}/providers/Microsoft.Compute/virtualMachines`,
        {
          "api-version": AZURE_API_VERSIONS.compute,
          $filter: `'virtualMachineScaleSet/id' eq '${scaleSetId}'`,
          $expand: "instanceView",
        },
      );
      return vms.map((vm): AzureVm => ({
        id: vm.id,
        scaleSetId: vm.properties?.virtualMachineScaleSet?.id,
        provisioningState: vm.properties?.provisioningState,
        statuses: (vm.properties?.instanceView?.statuses ?? []).flatMap((s) => (s.code ? [s.code] : [])),
      }));
    },

    async listNics(resourceGroup) {
      const nics = await listAll<NicJson>(
        `${group(resourceGroup)}/providers/Microsoft.Network/networkInterfaces`,
        {
          "api-version": AZURE_API_VERSIONS.network,
        },
      );
      return nics.map((nic): AzureNic => ({
        virtualMachineId: nic.properties?.virtualMachine?.id,
        primary: nic.properties?.primary,
        ipConfigurations: (nic.properties?.ipConfigurations ?? []).map((c) => ({
          primary: c.properties?.primary,
          privateIPAddress: c.properties?.privateIPAddress,
          privateIPAddressVersion: c.properties?.privateIPAddressVersion,
        })),
      }));
    },

    async listRecordSets(zone) {
      const sets = await listAll<RecordSetJson>(
        `${group(zone.resourceGroup)}/providers/Microsoft.Network/privateDnsZones/${segment(zone.name)}/ALL`,
        { "api-version": AZURE_API_VERSIONS.privateDns },
      );
      return sets.map((set): AzureRecordSet => ({
        name: set.name,
        type: set.type.split("/").pop()!,
        etag: set.etag,
        ttl: set.properties?.ttl,
        fqdn: set.properties?.fqdn,
        ipv4Addresses: (set.properties?.aRecords ?? []).flatMap((r) =>
          r.ipv4Address ? [r.ipv4Address] : [],
        ),
        isAutoRegistered: set.properties?.isAutoRegistered,
      }));
    },

    async putRecordSet(zone, name, record, condition) {
      const query = new URLSearchParams({ "api-version": AZURE_API_VERSIONS.privateDns });
      await request("PUT", `${base}${recordSetPath(zone, name)}?${query}`, conditionHeaders(condition), {
        properties: {
          ttl: record.ttl,
          aRecords: record.ipv4Addresses.map((ipv4Address) => ({ ipv4Address })),
        },
      });
    },

    async deleteRecordSet(zone, name, condition) {
      const query = new URLSearchParams({ "api-version": AZURE_API_VERSIONS.privateDns });
      await request("DELETE", `${base}${recordSetPath(zone, name)}?${query}`, conditionHeaders(condition));
    },
  };
}
