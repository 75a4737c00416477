/**
 * The Azure clients of a launch: the official ARM clients, each pinned to the api-version kubebake is
 * written and tested against (the descriptions in ../shared/reference/apis/azure/), since a client's
 * default moves with its releases. Every call is named in `calls`, so a failure says which call it was.
 */
import type { TokenCredential } from "@azure/core-auth";
import { AuthorizationManagementClient } from "@azure/arm-authorization";
import { ComputeManagementClient } from "@azure/arm-compute";
import { EventGridManagementClient } from "@azure/arm-eventgrid";
import { KeyVaultManagementClient } from "@azure/arm-keyvault";
import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { NetworkManagementClient } from "@azure/arm-network";
import { PrivateDnsManagementClient } from "@azure/arm-privatedns";
import { ResourceManagementClient } from "@azure/arm-resources";
import { StorageManagementClient } from "@azure/arm-storage";
import { WebSiteManagementClient } from "@azure/arm-appservice";

/** The api-versions of the descriptions kubebake follows, per resource provider. */
export const API_VERSIONS = {
  resources: "2024-07-01",
  network: "2024-05-01",
  msi: "2023-01-31",
  privateDns: "2024-06-01",
  keyVault: "2023-07-01",
  web: "2024-04-01",
  storage: "2023-05-01",
  /** The Key Vault data plane's service version (@azure/keyvault-secrets' serviceVersion). */
  secrets: "7.5",
} as const;

/** Where ARM is: Azure's, or a fake on this machine (tests) with the CA its certificate is signed by. */
export interface AzureEndpoints {
  resourceManager?: string;
  ca?: string;
}

export interface AzureClients {
  subscription: string;
  credential: TokenCredential;
  endpoints: AzureEndpoints;
  resources: ResourceManagementClient;
  network: NetworkManagementClient;
  msi: ManagedServiceIdentityClient;
  authorization: AuthorizationManagementClient;
  privateDns: PrivateDnsManagementClient;
  compute: ComputeManagementClient;
  keyVault: KeyVaultManagementClient;
  web: WebSiteManagementClient;
  storage: StorageManagementClient;
  eventGrid: EventGridManagementClient;
  /** Names of the calls made, in order (the last one is the one that failed). */
  calls: string[];
}

export function azureClients(
  credential: TokenCredential,
  subscription: string,
  endpoints: AzureEndpoints = {},
): AzureClients {
  const base = {
    ...(endpoints.resourceManager ? { endpoint: endpoints.resourceManager } : {}),
    ...(endpoints.ca ? { tlsOptions: { ca: endpoints.ca } } : {}),
  };
  const calls: string[] = [];
  /** Logs `<client>.<operation group>.<method>` for every call of the client's operation groups. */
  const named = <C extends object>(client: C, api: string): C =>
    new Proxy(client, {
      get(target, group, receiver) {
        const value = Reflect.get(target, group, receiver);
        if (typeof group !== "string" || value === null || typeof value !== "object") return value;
        return new Proxy(value as object, {
          get(ops, method, r) {
            const fn = Reflect.get(ops, method, r);
            if (typeof fn !== "function" || typeof method !== "string") return fn;
            return (...args: unknown[]) => {
              calls.push(`${api}.${group}.${method}`);
              return (fn as (...a: unknown[]) => unknown).apply(ops, args);
            };
          },
        });
      },
    });
  return {
    subscription,
    credential,
    endpoints,
    resources: named(
      new ResourceManagementClient(credential, subscription, { ...base, apiVersion: API_VERSIONS.resources }),
      "resources",
    ),
    network: named(new NetworkManagementClient(credential, subscription, base), "network"),
    msi: named(
      new ManagedServiceIdentityClient(credential, subscription, { ...base, apiVersion: API_VERSIONS.msi }),
      "msi",
    ),
    authorization: named(new AuthorizationManagementClient(credential, subscription, base), "authorization"),
    privateDns: named(
      new PrivateDnsManagementClient(credential, subscription, {
        ...base,
        apiVersion: API_VERSIONS.privateDns,
      }),
      "privateDns",
    ),
    compute: named(new ComputeManagementClient(credential, subscription, base), "compute"),
    keyVault: named(
      new KeyVaultManagementClient(credential, subscription, { ...base, apiVersion: API_VERSIONS.keyVault }),
      "keyVault",
    ),
    web: named(
      new WebSiteManagementClient(credential, subscription, { ...base, apiVersion: API_VERSIONS.web }),
      "web",
    ),
    storage: named(
      new StorageManagementClient(credential, subscription, { ...base, apiVersion: API_VERSIONS.storage }),
      "storage",
    ),
    eventGrid: named(new EventGridManagementClient(credential, subscription, base), "eventGrid"),
    calls,
  };
}
