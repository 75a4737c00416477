/**
 * The Azure launch's first steps against the fake Azure: the resource group with the cluster id, the
 * virtual network (with its NAT gateway and address when the nodes are private), the roles' application
 * security groups and the security group whose rules name them. A plan lists what apply makes, a second
 * pass changes nothing, drift is put back, and a look-alike holding one of the cluster's names is refused
 * (exit 8).
 */
import { azureClusterSpecSchema } from "../../src/cluster/schema";
import { ExitCode, KubebakeError } from "../../src/errors";
import { ChangeRecorder, formatChange } from "../../src/launch/changes";
import { azureClients } from "../../src/launch/azure/clients";
import type { AzureBaseContext, AzureInputs } from "../../src/launch/azure/context";
import { ensureClusterId, readClusterId } from "../../src/launch/azure/group";
import { ensureIdentities } from "../../src/launch/azure/identity";
import { ensureScaleSet } from "../../src/launch/azure/groups";
import { ensureNetwork } from "../../src/launch/azure/network";
import { silentProgress } from "../../src/util/progress";
import { startAzureCloud, type AzureCloud } from "../fakes/azure/cloud";
import { credential } from "../fakes/azure/sdk";
import { addImage, azureClusterYaml, IMAGE_ID, SUBSCRIPTION, TENANT } from "./fixture";

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
  return {
    changes: rec.changes.map(formatChange),
    notes: rec.notes,
    network,
    identities,
    clusterId,
    clients,
    ctx,
  };
}

const RG = "kubebake-demo";
const EGRESS = "kubebake-demo-egress";
const egressMade = [
  `+ create public-ip ${EGRESS} (Standard, static)`,
  `+ create nat-gateway ${EGRESS} (Standard, no zone)`,
];
/** The id of the NAT gateway the cluster's subnet names, if any. */
async function subnetGateway(clients: ReturnType<typeof azureClients>): Promise<string | undefined> {
  return (await clients.network.subnets.get(RG, RG, "nodes")).natGateway?.id;
}

test("a plan lists what apply makes; a second pass changes nothing", async () => {
  const inputs = inputsOf();
  const plan = await pass(inputs, true);
  const made = await pass(inputs);
  expect(made.changes).toEqual(plan.changes);
  expect(made.changes).toEqual([
    "+ create resource-group kubebake-demo (westeurope)",
    ...egressMade,
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
  // Private nodes go out through the NAT gateway, with a Standard static address, neither in a zone
  // (the spec's nodes are in zones 1 and 2: a zonal gateway would serve one of them no better).
  const nat = await made.clients.network.natGateways.get(RG, EGRESS);
  const ip = await made.clients.network.publicIPAddresses.get(RG, EGRESS);
  expect(await subnetGateway(made.clients)).toBe(nat.id);
  expect(nat).toMatchObject({
    sku: { name: "Standard" },
    idleTimeoutInMinutes: 4,
    publicIpAddresses: [{ id: ip.id }],
  });
  expect(ip).toMatchObject({
    sku: { name: "Standard" },
    publicIPAllocationMethod: "Static",
    publicIPAddressVersion: "IPv4",
  });
  expect([nat.zones, ip.zones]).toEqual([undefined, undefined]);
  for (const tags of [nat.tags, ip.tags])
    expect(tags).toMatchObject({
      "kubebake:owner": made.clusterId,
      KubernetesCluster: "demo",
      team: "platform",
    });
  expect((await made.clients.network.subnets.get(RG, RG, "nodes")).defaultOutboundAccess).toBe(false);
});

test("egress drift is put back: a subnet without its NAT gateway, a gateway deleted by hand", async () => {
  const inputs = inputsOf();
  const first = await pass(inputs);
  const network = first.clients.network;
  const vnet = await network.virtualNetworks.get(RG, RG);
  const detach = () =>
    network.virtualNetworks.beginCreateOrUpdateAndWait(RG, RG, {
      ...vnet,
      subnets: vnet.subnets!.map((s) => ({ ...s, natGateway: undefined })),
    });
  await detach();
  expect(await subnetGateway(first.clients)).toBeUndefined();
  expect((await pass(inputs)).changes).toEqual(["~ update virtual-network kubebake-demo (10.0.0.0/16)"]);
  expect(await subnetGateway(first.clients)).toMatch(/\/natGateways\/kubebake-demo-egress$/);

  await detach();
  await network.natGateways.beginDeleteAndWait(RG, EGRESS);
  const plan = await pass(inputs, true);
  expect(plan.changes).toEqual([egressMade[1], "~ update virtual-network kubebake-demo (10.0.0.0/16)"]);
  expect((await pass(inputs)).changes).toEqual(plan.changes);
  expect(await subnetGateway(first.clients)).toMatch(/\/natGateways\/kubebake-demo-egress$/);
  expect((await pass(inputs)).changes).toEqual([]);
});

test("internet: true makes no NAT gateway; a switch to it without nodes removes it and its address", async () => {
  const open = inputsOf({ network: { zones: ["1", "2"], apiAccess: ["203.0.113.0/24"], internet: true } });
  const made = await pass(open);
  expect(made.changes.filter((c) => c.includes(EGRESS))).toEqual([]);
  expect(cloud.network.natGateways.size + cloud.network.publicIpAddresses.size).toBe(0);
  expect((await made.clients.network.subnets.get(RG, RG, "nodes")).defaultOutboundAccess).toBe(true);
  expect((await pass(open)).changes).toEqual([]);

  await pass(inputsOf());
  expect(cloud.network.natGateways.size).toBe(1);
  const retire = [
    "~ update virtual-network kubebake-demo (10.0.0.0/16)",
    `- delete nat-gateway ${EGRESS}`,
    `- delete public-ip ${EGRESS}`,
  ];
  expect((await pass(open, true)).changes).toEqual(retire);
  expect((await pass(open)).changes).toEqual(retire);
  expect(cloud.network.natGateways.size + cloud.network.publicIpAddresses.size).toBe(0);
  expect((await pass(open)).changes).toEqual([]);
});

test("a switch to internet: true keeps the NAT gateway until no node is left without a public IP", async () => {
  addImage(cloud);
  const minions = async (made: Awaited<ReturnType<typeof pass>>) =>
    ensureScaleSet(
      made.ctx,
      "minions",
      {
        subnetId: made.network.subnetId,
        securityGroupId: made.network.securityGroupId,
        roleGroupId: made.network.roleGroupIds.minions,
        identityId: made.identities.minions.id,
        image: IMAGE_ID,
      },
      {
        subscription: SUBSCRIPTION,
        resourceGroup: RG,
        vault: "kb-demo",
        clientId: made.identities.minions.clientId,
      },
    );
  await minions(await pass(inputsOf()));
  await cloud.vmss.settle();
  const open = inputsOf({ network: { zones: ["1", "2"], apiAccess: ["203.0.113.0/24"], internet: true } });
  // The subnet allows default outbound access from now on, yet its private nodes keep the gateway.
  const switched = await pass(open);
  expect(switched.changes).toEqual(["~ update virtual-network kubebake-demo (10.0.0.0/16)"]);
  expect(switched.notes.join()).toMatch(/NAT gateway kubebake-demo-egress stays/);
  expect(await subnetGateway(switched.clients)).toMatch(/\/natGateways\/kubebake-demo-egress$/);
  // The scale set's new model gives public IPs; its members are still the old, private ones.
  await minions(switched);
  expect((await pass(open)).changes).toEqual([]);

  // A rollout replaces them.
  const stale = cloud.vmss.vms.map((vm) => vm.name);
  const sets = switched.clients.compute.virtualMachineScaleSets;
  await sets.beginDeleteInstancesAndWait(RG, "kubebake-demo-minions", { instanceIds: stale });
  await sets.beginUpdateAndWait(RG, "kubebake-demo-minions", { sku: { capacity: stale.length } });
  await cloud.vmss.settle();
  expect(cloud.vmss.vms.every((vm) => vm.nics.every((nic) => nic.publicIp))).toBe(true);
  expect((await pass(open)).changes).toEqual([
    "~ update virtual-network kubebake-demo (10.0.0.0/16)",
    `- delete nat-gateway ${EGRESS}`,
    `- delete public-ip ${EGRESS}`,
  ]);
  expect(await subnetGateway(switched.clients)).toBeUndefined();
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
  expect(made.changes.some((c) => /virtual-network|nat-gateway|public-ip/.test(c))).toBe(false);
  // The operator's subnet and its egress are the operator's: no NAT gateway, no address.
  expect(cloud.network.natGateways.size + cloud.network.publicIpAddresses.size).toBe(0);
  expect((await clients.network.subnets.get("platform", "shared", "k8s")).natGateway).toBeUndefined();
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

test("a look-alike NAT gateway or address with the cluster's name is refused (exit 8)", async () => {
  const inputs = inputsOf();
  const first = await pass(inputs);
  const network = first.clients.network;
  for (const [kind, read, write] of [
    [
      "public IP address",
      () => network.publicIPAddresses.get(RG, EGRESS),
      (body: object) => network.publicIPAddresses.beginCreateOrUpdateAndWait(RG, EGRESS, body),
    ],
    [
      "NAT gateway",
      () => network.natGateways.get(RG, EGRESS),
      (body: object) => network.natGateways.beginCreateOrUpdateAndWait(RG, EGRESS, body),
    ],
  ] as const) {
    const found = await read();
    await write({ ...found, tags: { "kubebake:owner": "kb-someone-else" } });
    const refused = await pass(inputs).catch((e: Error) => e);
    expect((refused as KubebakeError).exitCode).toBe(ExitCode.unsafeState);
    expect(String(refused)).toContain(`${kind} ${EGRESS} exists but is not this cluster's`);
    await write(found);
  }
  expect((await pass(inputs)).changes).toEqual([]);
});
