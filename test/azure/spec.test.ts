/** `cloud: azure` cluster specs: defaults, and every bad field named with its line, exit 2, no cloud call. */
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { loadCloudSpec } from "../../src/cluster/load";
import { repoRoot, runCli, tempDir } from "../helpers";
import { refusal, writeIn } from "../cluster/refusals";
import { azureClusterYaml, writeSpec } from "./fixture";

const dir = tempDir("azure-spec");
const write = (spec: Record<string, unknown>) => writeIn(dir, spec);
const problems = (spec: Record<string, unknown>) => refusal(dir, spec);

const groups = (masters: Record<string, unknown>, minions: Record<string, unknown> = {}) => ({
  masters: { count: 3, vmSize: "Standard_D2s_v5", ...masters },
  minions: { min: 1, max: 10, desired: 2, vmSize: "Standard_D4s_v5", ...minions },
});

test("an Azure spec gets the documented defaults", () => {
  const spec = loadCloudSpec(
    write(azureClusterYaml({ network: {}, tags: undefined, subscription: undefined })),
    "azure",
  );
  expect(spec.network).toEqual({ cidr: "10.0.0.0/16", apiAccess: [], sshAccess: [] });
  expect(spec.tags).toEqual({});
  expect(spec.subscription).toBeUndefined();
  expect(spec.resourceGroup).toBeUndefined();
  expect(spec.discovery).toEqual({ ttl: 30, emptyGroup: "delete" });
  expect(spec.rollout).toEqual({ batchPercent: 25, timeoutSeconds: 900 });
});

test.each<[string, Record<string, unknown>, RegExp]>([
  [
    "a subscription that is no GUID",
    { subscription: "my-sub" },
    /:\d+: subscription: expected a subscription id/,
  ],
  [
    "a location in capitals",
    { location: "West Europe" },
    /location: expected an Azure location such as westeurope/,
  ],
  ["AWS's region instead", { region: "eu-west-1" }, /unknown key "region"|region/],
  [
    "a VM size in GCE's words",
    { groups: groups({ vmSize: "e2-standard-2" }) },
    /groups\.masters\.vmSize: expected a VM size/,
  ],
  ["four masters", { groups: groups({ count: 4 }) }, /groups\.masters\.count: expected 1, 3 or 5/],
  ["min above max", { groups: groups({}, { min: 11 }) }, /groups\.minions\.min: expected at most max/],
  [
    "a tag kubebake sets",
    { tags: { KubernetesCluster: "x" } },
    /tags\.KubernetesCluster: expected a key of your own/,
  ],
  [
    "a tag Azure reserves",
    { tags: { "microsoft-thing": "x" } },
    /tags\.microsoft-thing: expected a key of your own/,
  ],
  ["zone 4", { network: { zones: ["4"] } }, /network\.zones\[0\]: expected an availability zone/],
  [
    "a network without its subnet",
    { resourceGroup: "rg", network: { virtualNetwork: "vnet" } },
    /network\.subnet: expected virtualNetwork and subnet together/,
  ],
  [
    "an existing network without its group",
    { network: { virtualNetwork: "vnet", subnet: "nodes" } },
    /resourceGroup: expected the resource group that holds network\.virtualNetwork/,
  ],
  [
    "an address space too small",
    { network: { cidr: "10.0.0.0/26" } },
    /network\.cidr: expected a \/8 to \/24/,
  ],
  [
    "the API open to the internet unasked",
    { network: { apiAccess: ["0.0.0.0/0"] } },
    /network\.apiAccess\[0\]: 0\.0\.0\.0\/0 opens the API server to the whole internet/,
  ],
  [
    "both image forms",
    {
      image: {
        id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/i",
        manifest: "m.json",
      },
    },
    /image: expected exactly one of id and manifest/,
  ],
  [
    "an image that is no resource id",
    { image: { id: "kubebake-1" } },
    /image\.id: expected a managed image's resource id/,
  ],
  [
    "a private key for SSH",
    { sshPublicKey: "-----BEGIN OPENSSH PRIVATE KEY-----" },
    /sshPublicKey: expected an OpenSSH public key/,
  ],
])("%s is refused, naming the field", (_, override, expected) => {
  expect(problems(azureClusterYaml(override))).toMatch(expected);
});

test("the CLI validates an Azure spec; without a subscription in the file or the environment, plan exits 2 naming it", () => {
  const path = writeSpec(azureClusterYaml(), mkdtempSync(join(dir, "cli-")));
  const valid = runCli("kubebake", ["cluster", "validate", "-f", path]);
  expect(valid.code).toBe(0);
  expect(valid.stdout).toMatch(/valid \(cluster demo on azure westeurope\)/);
  const unnamed = writeSpec(azureClusterYaml({ subscription: undefined }), mkdtempSync(join(dir, "cli-")));
  const result = runCli("kubebake", ["cluster", "plan", "-f", unnamed], { AZURE_SUBSCRIPTION_ID: "" });
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(
    /subscription: expected a subscription id in the cluster file or in AZURE_SUBSCRIPTION_ID/,
  );
  expect(result.stderr).not.toMatch(/\n\s+at /);
});

test("the documented Azure example is valid", () => {
  const example = join(repoRoot, "docs", "examples", "cluster-azure.yaml");
  const spec = loadCloudSpec(example, "azure");
  expect(spec).toMatchObject({ location: "westeurope", tags: { team: "platform" } });
  expect(spec.groups.masters).toEqual({ count: 3, vmSize: "Standard_D2s_v5" });
  expect(spec.network.zones).toEqual(["1", "2", "3"]);
});
