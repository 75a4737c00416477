/** An Azure cluster spec for tests, and where to write it. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";

export const SUBSCRIPTION = "00000000-0000-4000-8000-000000000001";
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
