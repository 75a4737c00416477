/**
 * A GCE cluster against the fake Google Cloud (test/fakes/gcp/cloud.ts): the spec, the official clients
 * pointed at the fake, and plan/apply/destroy as the commands run them.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadCloudSpec } from "../../src/cluster/load";
import { ChangeRecorder } from "../../src/launch/changes";
import { gceClients, type GceClients } from "../../src/launch/gce/clients";
import { applyGceCluster } from "../../src/launch/gce/cluster";
import { destroyGceCluster } from "../../src/launch/gce/destroy";
import { resolveGceInputs } from "../../src/launch/gce/inputs";
import { resolveGceSpec } from "../../src/launch/gce/defaults";
import { silentProgress } from "../../src/util/progress";
import { startGoogleCloud, type GoogleCloud } from "../fakes/gcp/cloud";
import type { ManagedVm } from "../fakes/gcp/compute-groups";
import { LAUNCH_GATE_ATTRIBUTE } from "../../src/launch/gce/desired";
import { testAuth } from "../publish/gce/helpers";

export const PROJECT = "kb-test-project";
export const REGION = "europe-west1";
export const IMAGE = "kubebake-1";

export function gceClusterYaml(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "kubebake.io/v1alpha1",
    kind: "Cluster",
    name: "demo",
    cloud: "gce",
    project: PROJECT,
    region: REGION,
    network: { zones: [`${REGION}-b`, `${REGION}-c`], apiAccess: ["203.0.113.0/24"] },
    image: { name: IMAGE },
    groups: {
      masters: { count: 3, machineType: "e2-standard-2" },
      minions: { min: 1, max: 10, desired: 2, machineType: "e2-standard-4" },
    },
    labels: { team: "platform" },
    ...overrides,
  };
}

export function writeSpec(
  spec: Record<string, unknown>,
  dir = mkdtempSync(join(tmpdir(), "kb-gce-")),
): string {
  const path = join(dir, "cluster.yaml");
  writeFileSync(path, stringify(spec));
  return path;
}

/**
 * A fake Google Cloud holding a published kubebake image, whose masters pass the launch gate as they boot
 * (what src/node/launch-ready does once the master votes and serves; tests that need otherwise reset it).
 */
export async function startCloud(): Promise<GoogleCloud> {
  const cloud = await startGoogleCloud({ project: PROJECT });
  addImage(cloud, IMAGE);
  cloud.resources.onBoot = mastersPassTheGate;
  return cloud;
}

export const mastersPassTheGate = (vm: ManagedVm) => {
  if (vm.name.includes("-masters-"))
    vm.guestAttributes = { ...vm.guestAttributes, [LAUNCH_GATE_ATTRIBUTE]: "ready" };
};

export function addImage(cloud: GoogleCloud, name: string, labels: Record<string, string> = {}): void {
  cloud.compute.images.set(name, {
    kind: "compute#image",
    id: cloud.compute.nextId(),
    name,
    status: "READY",
    selfLink: `${cloud.url}/compute/v1/projects/${PROJECT}/global/images/${name}`,
    creationTimestamp: new Date().toISOString(),
    labels,
  });
}

export function clientsOf(cloud: GoogleCloud): GceClients {
  return gceClients(testAuth, PROJECT, REGION, {
    rest: cloud.url,
    compute: { host: "127.0.0.1", port: cloud.port, protocol: "http" },
  });
}

const timing = { pollMs: 1, sleep: async () => {} };

/** plan (dryRun) or apply of the spec at `path`; the recorder holds the changes. */
export async function apply(cloud: GoogleCloud, path: string, dryRun = false, clients = clientsOf(cloud)) {
  const spec = resolveGceSpec(loadCloudSpec(path, "gce"), path);
  const inputs = await resolveGceInputs(clients, spec, path);
  const rec = new ChangeRecorder(dryRun, silentProgress);
  const result = await applyGceCluster({ clients, inputs, rec, ...timing });
  return { rec, result, clients };
}

export async function destroy(
  cloud: GoogleCloud,
  cluster = "demo",
  dryRun = false,
  clients = clientsOf(cloud),
) {
  const rec = new ChangeRecorder(dryRun, silentProgress);
  await destroyGceCluster({ clients, rec, cluster, ...timing });
  return rec;
}
