/**
 * The Azure launch's first steps against the fake Azure: the resource group with the cluster id, the
 * virtual network, the roles' application security groups and the security group whose rules name them.
 * A plan lists what apply makes, a second pass changes nothing, drift is put back, and a look-alike holding
 * one of the cluster's names is refused (exit 8).
 */
import { azureClusterSpecSchema } from "../../src/cluster/schema";
import { ExitCode, KubebakeError } from "../../src/errors";
import { ChangeRecorder, formatChange } from "../../src/launch/changes";
import { azureClients } from "../../src/launch/azure/clients";
import type { AzureBaseContext, AzureInputs } from "../../src/launch/azure/context";
import { ensureClusterId, readClusterId } from "../../src/launch/azure/group";
import { ensureIdentities } from "../../src/launch/azure/identity";
import { ensureNetwork } from "../../src/launch/azure/network";
import { silentProgress } from "../../src/util/progress";
import { startAzureCloud, type AzureCloud } from "../fakes/azure/cloud";
import { credential } from "../fakes/azure/sdk";
import { azureClusterYaml, IMAGE_ID, SUBSCRIPTION, TENANT } from "./fixture";

let cloud: AzureCloud;
beforeEach(async () => {
  cloud = await startAzureCloud();
});
afterEach(async () => {
  expect(cloud.fake.violations).toEqual([]);
  await cloud.stop();
});

function inputsOf(overrides: Record<string, unknown> = {}): AzureInputs {
  return {
    spec: azureClusterSpecSchema.parse(azureClusterYaml(overrides)),
    subscription: SUBSCRIPTION,
    tenant: TENANT,
    image: IMAGE_ID,
    discoveryDomain: "k8s",
  };
}

/** The steps written so far, in apply's order, as a plan (dryRun) or an apply. */
async function pass(inputs: AzureInputs, dryRun = false) {
  const clients = azureClients(credential, SUBSCRIPTION, { resourceManager: cloud.endpoint, ca: cloud.ca });
  const rec = new ChangeRecorder(dryRun, silentProgress);
  const base: AzureBaseContext = { clients, inputs, rec, pollMs: 1, sleep: async () => {} };
  const clusterId = await ensureClusterId(base, await readClusterId(base));
  const ctx = { ...base, clusterId };
  const network = await ensureNetwork(ctx);
  const identities = await ensureIdentities(ctx);
  return { changes: rec.changes.map(formatChange), network, identities, clusterId, clients };
}

test("a plan lists what apply makes; a second pass changes nothing", async () => {
  const inputs = inputsOf();
  const plan = await pass(inputs, true);
  const made = await pass(inputs);
  expect(made.changes).toEqual(plan.changes);
  expect(made.changes).toEqual([
    "+ create resource-group kubebake-demo (westeurope)",
    "+ create virtual-network kubebake-demo (10.0.0.0/16)",
    "+ create application-security-group kubebake-demo-masters",
    "+ create application-security-group kubebake-demo-minions",
    "+ create network-security-group kubebake-demo-nodes (6 inbound rules)",
    "+ create managed-identity kubebake-demo-masters",
    "+ create managed-identity kubebake-demo-minions",
    "+ create managed-identity kubebake-demo-dns",
  ]);
  expect((await pass(inputs)).changes).toEqual([]);
  expect(made.network.subnetId).toMatch(/\/virtualNetworks\/kubebake-demo\/subnets\/nodes$/);
  expect(made.clusterId).toMatch(/^kb-[0-9a-f]{16}$/);
  const group = cloud.groups.get(SUBSCRIPTION, "kubebake-demo")!;
  expect(group.tags).toMatchObject({
    "kubebake:owner": made.clusterId,
    "kubebake:cluster-id:demo": made.clusterId,
  });
  expect(Object.values(made.identities).every((i) => /^[0-9a-f-]{36}$/.test(i.principalId))).toBe(true);
});

test("a rule changed by hand is put back; the operators' new range is added", async () => {
  const inputs = inputsOf();
  const first = await pass(inputs);
  const rg = "kubebake-demo";
  const nsg = await first.clients.network.networkSecurityGroups.get(rg, "kubebake-demo-nodes");
  const rules = nsg.securityRules!.map((r) =>
    r.name === "etcd" ? { ...r, sourceApplicationSecurityGroups: undefined, sourceAddressPrefix: "*" } : r,
  );
  await first.clients.network.networkSecurityGroups.beginCreateOrUpdateAndWait(rg, "kubebake-demo-nodes", {
    ...nsg,
    securityRules: rules,
  });
  expect((await pass(inputs)).changes).toEqual([
    "~ update network-security-group kubebake-demo-nodes (6 inbound rules)",
  ]);
  const wider = inputsOf({
    network: { zones: ["1", "2"], apiAccess: ["203.0.113.0/24"], sshAccess: ["192.0.2.0/24"] },
  });
  expect((await pass(wider)).changes).toEqual([
    "~ update network-security-group kubebake-demo-nodes (7 inbound rules)",
  ]);
  expect((await pass(wider)).changes).toEqual([]);
});

test("an operator's network and group: the subnet is checked, the group only tagged, nothing else changed", async () => {
  const clients = azureClients(credential, SUBSCRIPTION, { resourceManager: cloud.endpoint, ca: cloud.ca });
  await clients.resources.resourceGroups.createOrUpdate("platform", {
    location: "westeurope",
    tags: { owner: "ops" },
  });
  await clients.network.virtualNetworks.beginCreateOrUpdateAndWait("platform", "shared", {
    location: "westeurope",
    addressSpace: { addressPrefixes: ["10.9.0.0/16"] },
    subnets: [{ name: "k8s", addressPrefix: "10.9.1.0/24" }],
  });
  const inputs = inputsOf({
    resourceGroup: "platform",
    network: { virtualNetwork: "shared", subnet: "k8s" },
  });
  const made = await pass(inputs);
  expect(made.changes[0]).toBe("~ update resource-group platform (tag kubebake:cluster-id:demo)");
  expect(made.changes.some((c) => c.includes("virtual-network"))).toBe(false);
  expect(made.network.subnetId).toMatch(
    /\/resourceGroups\/platform\/providers\/Microsoft\.Network\/virtualNetworks\/shared\/subnets\/k8s$/i,
  );
  expect(cloud.groups.get(SUBSCRIPTION, "platform")!.tags).toMatchObject({
    owner: "ops",
    "kubebake:cluster-id:demo": made.clusterId,
  });
  expect((await pass(inputs)).changes).toEqual([]);
  const missing = await pass(
    inputsOf({ resourceGroup: "platform", network: { virtualNetwork: "shared", subnet: "nope" } }),
  ).catch((e: Error) => e);
  expect((missing as KubebakeError).exitCode).toBe(ExitCode.invalidInput);
  expect(String(missing)).toMatch(
    /network\.subnet: subnet nope of virtual network shared does not exist in platform/,
  );
});

test("a look-alike virtual network with the cluster's name is refused (exit 8)", async () => {
  const inputs = inputsOf();
  const first = await pass(inputs);
  await first.clients.network.virtualNetworks.beginCreateOrUpdateAndWait("kubebake-demo", "kubebake-demo", {
    location: "westeurope",
    tags: { "kubebake:owner": "kb-someone-else" },
    addressSpace: { addressPrefixes: ["10.0.0.0/16"] },
    subnets: [{ name: "nodes", addressPrefix: "10.0.0.0/16" }],
  });
  const refused = await pass(inputs).catch((e: Error) => e);
  expect(refused).toBeInstanceOf(KubebakeError);
  expect((refused as KubebakeError).exitCode).toBe(ExitCode.unsafeState);
  expect(String(refused)).toMatch(
    /virtual network kubebake-demo exists but is not this cluster's \(its owner is kb-someone-else\)/,
  );
});
