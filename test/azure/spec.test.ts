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

const IMAGE = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/images/i";
test.each<[string, Record<string, unknown>, string]>([
  ["subscription", { subscription: "x00000000-0000-4000-8000-000000000001" }, "subscription"],
  ["subscription", { subscription: "00000000-0000-4000-8000-000000000001x" }, "subscription"],
  ["resourceGroup", { resourceGroup: "rg." }, "resourceGroup"],
  ["resourceGroup", { resourceGroup: "a b" }, "resourceGroup"],
  ["vmSize", { groups: groups({ vmSize: "xStandard_D2s_v5" }) }, "groups.masters.vmSize"],
  ["vmSize", { groups: groups({ vmSize: "Standard_D2s_v5 " }) }, "groups.masters.vmSize"],
  ["location", { location: "west europe" }, "location"],
  ["location", { location: "West" }, "location"],
  ["tag", { tags: { "kubebake:x": "y" } }, "tags.kubebake:x"],
  ["tag", { tags: { Name: "y" } }, "tags.Name"],
  ["tag", { tags: { "windows-x": "y" } }, "tags.windows-x"],
  [
    "virtualNetwork",
    { resourceGroup: "rg", network: { virtualNetwork: "-v", subnet: "s1" } },
    "network.virtualNetwork",
  ],
  [
    "virtualNetwork",
    { resourceGroup: "rg", network: { virtualNetwork: "v-", subnet: "s1" } },
    "network.virtualNetwork",
  ],
  [
    "virtualNetwork",
    { resourceGroup: "rg", network: { virtualNetwork: "v" + "x".repeat(64), subnet: "s1" } },
    "network.virtualNetwork",
  ],
  ["subnet", { resourceGroup: "rg", network: { virtualNetwork: "v1", subnet: "s/1" } }, "network.subnet"],
  [
    "subnet",
    { resourceGroup: "rg", network: { virtualNetwork: "v1", subnet: "s" + "x".repeat(80) } },
    "network.subnet",
  ],
  ["image id", { image: { id: `x${IMAGE}` } }, "image.id"],
  ["image id", { image: { id: `${IMAGE}/versions/1` } }, "image.id"],
  ["sshPublicKey", { sshPublicKey: "x ssh-ed25519 AAAA" }, "sshPublicKey"],
  ["sshPublicKey", { sshPublicKey: "ssh-ed25519 AA AA\nmore" }, "sshPublicKey"],
  ["sshPublicKey", { sshPublicKey: "ecdsa-sha2-nistpX AAAA" }, "sshPublicKey"],
  ["tag value", { tags: { team: "x".repeat(257) } }, "tags.team"],
  ["cidr", { network: { cidr: "10.0.0.0/7" } }, "network.cidr"],
  ["cidr", { network: { cidr: "10.0.0.0/25" } }, "network.cidr"],
])("%s: %j is refused", (_, override, field) => {
  expect(problems(azureClusterYaml(override))).toContain(`${field}:`);
});

test.each<[string, Record<string, unknown>]>([
  ["a subscription in capitals", { subscription: "ABCDEF00-0000-4000-8000-000000000001" }],
  ["a group with dots and brackets", { resourceGroup: "my.rg(1)" }],
  ["a basic VM size", { groups: groups({ vmSize: "Basic_A1" }) }],
  ["a location with digits", { location: "westus2" }],
  ["a one-letter location", { location: "w" }],
  ["the widest address space", { network: { cidr: "10.0.0.0/8" } }],
  ["the narrowest address space", { network: { cidr: "10.0.0.0/24" } }],
  ["an existing network", { resourceGroup: "rg", network: { virtualNetwork: "v.1_x", subnet: "s-1" } }],
  ["a two-letter network", { resourceGroup: "rg", network: { virtualNetwork: "v1", subnet: "s1" } }],
  ["an ECDSA key with a comment", { sshPublicKey: "ecdsa-sha2-nistp256 AAAA+/= me@host" }],
  ["a tag of one's own", { tags: { "my-azure": "x", Names: "y" } }],
])("%s is accepted", (_, override) => {
  expect(() => loadCloudSpec(write(azureClusterYaml(override)), "azure")).not.toThrow();
});
