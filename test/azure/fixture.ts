/** An Azure cluster spec for tests, and where to write it. */
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadCloudSpec } from "../../src/cluster/load";
import { azureClients, type AzureClients } from "../../src/launch/azure/clients";
import { applyAzureCluster } from "../../src/launch/azure/cluster";
import { LAUNCH_GATE_SECRET, OWNER_TAG } from "../../src/launch/azure/desired";
import { destroyAzureCluster } from "../../src/launch/azure/destroy";
import { resolveAzureInputs } from "../../src/launch/azure/inputs";
import { ChangeRecorder } from "../../src/launch/changes";
import { silentProgress } from "../../src/util/progress";
import type { AzureCloud } from "../fakes/azure/cloud";
import type { FlexVm } from "../fakes/azure/compute-vmss";
import { startAzurite, tokenCredential, type Azurite } from "../fakes/azure/azurite";
import { startAzureCloud } from "../fakes/azure/cloud";
import { connectAzurite, emptyAzurite } from "../fakes/azure/functions-host";
import { azureClusterSpecSchema } from "../../src/cluster/schema";
import { discoveryStorageAccountName } from "../../src/launch/azure/discovery-desired";

export const SUBSCRIPTION = "00000000-0000-4000-8000-000000000001";
export const TENANT = "00000000-0000-4000-8000-0000000000aa";
export const LOCATION = "westeurope";
export const IMAGE_ID = `/subscriptions/${SUBSCRIPTION}/resourceGroups/images/providers/Microsoft.Compute/images/kubebake-1`;

export function azureClusterYaml(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "kubebake.io/v1alpha1",
    kind: "Cluster",
    name: "demo",
    cloud: "azure",
    subscription: SUBSCRIPTION,
    location: LOCATION,
    network: { zones: ["1", "2"], apiAccess: ["203.0.113.0/24"] },
    image: { id: IMAGE_ID },
    groups: {
      masters: { count: 3, vmSize: "Standard_D2s_v5" },
      minions: { min: 1, max: 10, desired: 2, vmSize: "Standard_D4s_v5" },
    },
    tags: { team: "platform" },
    ...overrides,
  };
}

export function writeSpec(
  spec: Record<string, unknown>,
  dir = mkdtempSync(join(tmpdir(), "kb-azure-")),
): string {
  const path = join(dir, "cluster.yaml");
  writeFileSync(path, stringify(spec));
  return path;
}

/** The publish's managed image, as the fake holds it (a resource group of images, as operators keep them). */
export function addImage(cloud: AzureCloud, id = IMAGE_ID, tags: Record<string, string> = {}): void {
  cloud.images.put({
    id,
    name: id.split("/").pop()!,
    type: "Microsoft.Compute/images",
    location: LOCATION,
    tags,
    properties: { provisioningState: "Succeeded", hyperVGeneration: "V2" },
  });
}

/**
 * What a new master's launch-ready does once it votes and serves: a version of its own cluster's gate
 * secret (the vault with the VM's owner tag), tagged with its vmId.
 */
export function mastersPassTheGate(cloud: AzureCloud): (vm: FlexVm) => void {
  return (vm) => {
    if (!vm.name.includes("-masters_")) return;
    const vault = [...cloud.keyVault.vaults.values()].find(
      (v) =>
        !v.deleted &&
        (v.resource.tags as Record<string, string> | undefined)?.[OWNER_TAG] === vm.tags[OWNER_TAG],
    );
    const now = Math.floor(Date.now() / 1000);
    vault?.secrets.get(LAUNCH_GATE_SECRET)?.versions.push({
      version: randomBytes(16).toString("hex"),
      value: "ready",
      tags: { vmId: vm.vmId },
      enabled: true,
      created: now,
      updated: now,
    });
  };
}

export const timing = { pollMs: 1, sleep: async () => {} };

export function clientsOf(cloud: AzureCloud): AzureClients {
  return azureClients(tokenCredential, SUBSCRIPTION, { resourceManager: cloud.endpoint, ca: cloud.ca });
}

/** plan (dryRun) or apply of the spec at `path`; the recorder holds the changes. */
export async function apply(cloud: AzureCloud, path: string, dryRun = false, clients = clientsOf(cloud)) {
  const spec = loadCloudSpec(path, "azure");
  const inputs = await resolveAzureInputs(clients, spec, path);
  const rec = new ChangeRecorder(dryRun, silentProgress);
  const result = await applyAzureCluster({ clients, inputs, rec, ...timing });
  await settle(cloud);
  return { rec, result, clients, inputs };
}

export async function destroy(cloud: AzureCloud, path: string, dryRun = false, clients = clientsOf(cloud)) {
  const spec = loadCloudSpec(path, "azure");
  const rec = new ChangeRecorder(dryRun, silentProgress);
  await destroyAzureCluster({ clients, rec, inputs: { spec, subscription: SUBSCRIPTION }, ...timing });
  await settle(cloud);
  return rec;
}

/** Ends the fake's pending work (VM boots, purges, deployments) so a test reads the state as it ends. */
export async function settle(cloud: AzureCloud): Promise<void> {
  await Promise.all([
    cloud.vmss.settle(),
    cloud.keyVault.settle(),
    cloud.web.settle(),
    cloud.storage.settle(),
  ]);
}

/** The storage accounts (of the discovery function) of clusters named in a test. */
export const accountOf = (name = "demo", resourceGroup?: string) =>
  discoveryStorageAccountName(
    SUBSCRIPTION,
    azureClusterSpecSchema.parse(azureClusterYaml({ name, ...(resourceGroup ? { resourceGroup } : {}) })),
  );

/** azurite for a test file (started before its tests, stopped after), with these storage accounts. */
export function useAzurite(accounts = [accountOf()]): () => Azurite {
  let azurite: Azurite | undefined;
  beforeAll(async () => {
    azurite = await startAzurite({ accounts });
  }, 60_000);
  afterAll(async () => {
    await azurite?.stop();
  });
  return () => azurite!;
}

/** A fresh fake Azure whose blobs are azurite's, holding the image; its new masters pass the launch gate. */
export async function startTestCloud(azurite: Azurite): Promise<AzureCloud> {
  const cloud = await startAzureCloud();
  connectAzurite(cloud, azurite);
  addImage(cloud);
  cloud.vmss.onBoot = mastersPassTheGate(cloud);
  return cloud;
}

/**
 * The hooks of a launch test file: azurite for the file (the function's package and host storage, with
 * the storage accounts of the clusters it names), a fresh test cloud per test; every test ends without a
 * violation of the descriptions, and azurite's containers emptied.
 */
export function useAzureCloud(accounts = [accountOf()]): { cloud: () => AzureCloud; azurite: () => Azurite } {
  const azurite = useAzurite(accounts);
  let cloud: AzureCloud | undefined;
  beforeEach(async () => {
    cloud = await startTestCloud(azurite());
  });
  afterEach(async () => {
    expect(cloud!.fake.violations).toEqual([]);
    await cloud!.stop();
    for (const account of accounts) await emptyAzurite(azurite(), account);
  });
  return { cloud: () => cloud!, azurite };
}
