/**
 * One fake Azure for a launch test: a single ArmFake serving every resource provider the Azure launch uses,
 * its models wired as Azure's services are: resources live in resource groups (deleting a group deletes
 * them), role assignments name principals of managed identities, scale sets take managed images and
 * subnets that exist, private DNS links name virtual networks that exist, Event Grid delivers to functions
 * of the function apps. Key Vault data planes run on their own ports (one per vault), as vaults have hosts.
 */
import { ArmFake } from "./arm-fake";
import { AUTHORIZATION_SPECS, AuthorizationState, installAuthorization } from "./authorization";
import { COMPUTE_SPECS } from "./compute";
import { installVmss, VMSS_SPECS, VmssState } from "./compute-vmss";
import { EVENTGRID_SPECS, EventGridState, installEventGrid } from "./eventgrid";
import { installKeyVault, KEYVAULT_SPECS, KeyVaultState } from "./keyvault";
import { installMsi, MSI_SPECS, MsiState } from "./msi";
import { installNetwork, NETWORK_SPECS, NetworkState } from "./network";
import { installPrivateDns, PRIVATE_DNS_SPECS, PrivateDnsState } from "./private-dns";
import { installResourceGroups, RESOURCE_GROUP_SPECS, ResourceGroupsState } from "./resource-groups";
import { registerResource, ResourceStore } from "./resources";
import { installStorage, STORAGE_SPECS, StorageState } from "./storage-arm";
import { installWeb, WEB_SPECS, WebState } from "./web";

export interface AzureCloud {
  fake: ArmFake;
  endpoint: string;
  ca: string;
  groups: ResourceGroupsState;
  network: NetworkState;
  msi: MsiState;
  rbac: AuthorizationState;
  dns: PrivateDnsState;
  /** Managed images (the publish's). */
  images: ResourceStore;
  vmss: VmssState;
  keyVault: KeyVaultState;
  web: WebState;
  storage: StorageState;
  eventGrid: EventGridState;
  stop(): Promise<void>;
}

export async function startAzureCloud(): Promise<AzureCloud> {
  const fake = await ArmFake.start([
    ...RESOURCE_GROUP_SPECS,
    ...NETWORK_SPECS,
    ...MSI_SPECS,
    ...AUTHORIZATION_SPECS,
    ...PRIVATE_DNS_SPECS,
    ...COMPUTE_SPECS,
    ...VMSS_SPECS,
    ...KEYVAULT_SPECS,
    ...WEB_SPECS,
    ...STORAGE_SPECS,
    ...EVENTGRID_SPECS,
  ]);
  const groups = installResourceGroups(fake);
  const network = installNetwork(fake, new NetworkState({ groups }));
  const msi = installMsi(fake, new MsiState({ groups }));
  const rbac = installAuthorization(fake, new AuthorizationState({ groups, directories: [msi] }));
  const dns = installPrivateDns(fake, new PrivateDnsState({ groups, network }));
  const images = new ResourceStore();
  registerResource(fake, images, {
    createOrUpdate: "Images_CreateOrUpdate",
    get: "Images_Get",
    update: "Images_Update",
    delete: "Images_Delete",
    list: ["Images_List", "Images_ListByResourceGroup"],
  });
  const vmss = installVmss(
    fake,
    new VmssState({
      imageExists: (id) => images.get(id) !== undefined,
      subnetPrefix: (id) => {
        const properties = network.subnet(id)?.properties as { addressPrefix?: string } | undefined;
        return properties?.addressPrefix;
      },
    }),
  );
  const keyVault = installKeyVault(fake);
  const web = installWeb(fake);
  const storage = installStorage(fake);
  const eventGrid = installEventGrid(
    fake,
    new EventGridState({ functionExists: (id) => web.functionExists(id) }),
  );
  return {
    fake,
    endpoint: fake.endpoint,
    ca: fake.ca,
    groups,
    network,
    msi,
    rbac,
    dns,
    images,
    vmss,
    keyVault,
    web,
    storage,
    eventGrid,
    stop: async () => {
      await keyVault.stop();
      await fake.stop();
    },
  };
}
