/** The Flexible scale set model driven through @azure/arm-compute 22.1.0 (which sends 2024-07-01). */
import { ComputeManagementClient, type VirtualMachineScaleSet } from "@azure/arm-compute";
import { NetworkManagementClient } from "@azure/arm-network";
import { ArmFake } from "./arm-fake";
import { installVmss, VMSS_SPECS, VmssState, type FlexVm } from "./compute-vmss";

const SUB = "00000000-1111-2222-3333-444444444444";
const RG = `/subscriptions/${SUB}/resourceGroups/rg-1`;
const IMAGE_1 = `${RG}/providers/Microsoft.Compute/images/kubebake-1`;
const IMAGE_2 = `${RG}/providers/Microsoft.Compute/images/kubebake-2`;
const SUBNET = `${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/nodes`;
const NSG = `${RG}/providers/Microsoft.Network/networkSecurityGroups/nodes`;
const ASG = `${RG}/providers/Microsoft.Network/applicationSecurityGroups/masters`;
const IDENTITY = `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nodes`;
const credential = {
  getToken: async () => ({ token: "test-token", expiresOnTimestamp: Date.now() + 3600_000 }),
};
const wait = { updateIntervalInMs: 1 };

let fake: ArmFake;
let state: VmssState;
let client: ComputeManagementClient;
let booted: FlexVm[];

beforeEach(async () => {
  fake = await ArmFake.start(VMSS_SPECS);
  booted = [];
  state = installVmss(
    fake,
    new VmssState({
      imageExists: (id) => [IMAGE_1, IMAGE_2].includes(id),
      subnetPrefix: (id) => (id.toLowerCase() === SUBNET.toLowerCase() ? "10.1.2.0/29" : undefined),
      onBoot: (vm) => void booted.push(vm),
    }),
  );
  client = new ComputeManagementClient(credential, SUB, {
    endpoint: fake.endpoint,
    tlsOptions: { ca: fake.ca },
  });
});
afterEach(async () => {
  await fake.stop();
});

const customData = Buffer.from("#cloud-config\nkubebake: master\n").toString("base64");

function scaleSet(capacity: number, image = IMAGE_1): VirtualMachineScaleSet {
  return {
    location: "westeurope",
    tags: { "kubebake:cluster": "c1" },
    sku: { name: "Standard_D2s_v5", capacity },
    identity: { type: "UserAssigned", userAssignedIdentities: { [IDENTITY]: {} } },
    orchestrationMode: "Flexible",
    platformFaultDomainCount: 1,
    upgradePolicy: { mode: "Manual" },
    virtualMachineProfile: {
      storageProfile: { imageReference: { id: image } },
      osProfile: {
        computerNamePrefix: "c1-master-",
        adminUsername: "kubebake",
        customData,
        linuxConfiguration: {
          disablePasswordAuthentication: true,
          ssh: { publicKeys: [{ path: "/home/kubebake/.ssh/authorized_keys", keyData: "ssh-ed25519 AAAA" }] },
        },
      },
      securityProfile: {
        securityType: "TrustedLaunch",
        uefiSettings: { secureBootEnabled: true, vTpmEnabled: true },
      },
      networkProfile: {
        networkApiVersion: "2020-11-01",
        networkInterfaceConfigurations: [
          {
            name: "nic",
            primary: true,
            networkSecurityGroup: { id: NSG },
            ipConfigurations: [
              { name: "ip", subnet: { id: SUBNET }, applicationSecurityGroups: [{ id: ASG }] },
            ],
          },
        ],
      },
    },
  };
}

const create = (name: string, body: VirtualMachineScaleSet) =>
  client.virtualMachineScaleSets.beginCreateOrUpdateAndWait("rg-1", name, body, wait);
const members = async (name: string) => {
  const vms = [];
  for await (const vm of client.virtualMachines.list("rg-1", {
    filter: `'virtualMachineScaleSet/id' eq '${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/${name}'`,
  }))
    vms.push(vm);
  return vms;
};
const capacityOf = async (name: string) =>
  (await client.virtualMachineScaleSets.get("rg-1", name)).sku?.capacity;

test("a create builds the members: sequential addresses, booted, custom data never returned", async () => {
  const created = await create("masters", scaleSet(3));
  expect(created).toMatchObject({
    provisioningState: "Succeeded",
    orchestrationMode: "Flexible",
    sku: { capacity: 3 },
  });
  expect(created.virtualMachineProfile?.osProfile?.customData).toBeUndefined();
  const vms = await members("masters");
  expect(vms.map((vm) => vm.name)).toEqual(state.vms.map((vm) => vm.name));
  expect(state.vms.map((vm) => vm.privateIp)).toEqual(["10.1.2.4", "10.1.2.5", "10.1.2.6"]);
  expect(state.vms[0]!.nics).toEqual([
    {
      id: `${RG}/providers/Microsoft.Network/networkInterfaces/${state.vms[0]!.name}-nic`,
      primary: true,
      subnetId: SUBNET,
      privateIp: "10.1.2.4",
      publicIp: false,
      networkSecurityGroupId: NSG,
      applicationSecurityGroupIds: [ASG],
    },
  ]);
  expect(vms[0]!.networkProfile?.networkInterfaces).toEqual([
    { id: state.vms[0]!.nics[0]!.id, primary: true, deleteOption: "Delete" },
  ]);
  expect(vms[0]).toMatchObject({
    provisioningState: "Succeeded",
    virtualMachineScaleSet: { id: `${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/masters` },
    storageProfile: { imageReference: { id: IMAGE_1 } },
    hardwareProfile: { vmSize: "Standard_D2s_v5" },
    osProfile: { adminUsername: "kubebake", computerName: expect.stringMatching(/^c1-master-/) },
  });
  expect(vms[0]!.name).toMatch(/^masters_[0-9a-f]{8}$/);
  expect(vms[0]!.identity?.userAssignedIdentities?.[IDENTITY]?.principalId).toMatch(/^[0-9a-f-]{36}$/);
  const view = await client.virtualMachines.instanceView("rg-1", vms[0]!.name!);
  expect(view.statuses?.map((s) => s.code)).toEqual(["ProvisioningState/succeeded", "PowerState/running"]);
  expect(booted.map((vm) => vm.customData)).toEqual([customData, customData, customData]);
  expect(
    (await client.virtualMachineScaleSets.get("rg-1", "masters")).virtualMachineProfile?.osProfile,
  ).not.toHaveProperty("customData");
  expect(fake.violations).toEqual([]);
});

test.each([
  [
    "an image that does not exist",
    (b: any) => (b.virtualMachineProfile.storageProfile.imageReference.id += "x"),
    "cannot be found",
  ],
  [
    "an unknown subnet",
    (b: any) =>
      (b.virtualMachineProfile.networkProfile.networkInterfaceConfigurations[0].ipConfigurations[0].subnet.id +=
        "x"),
    "referenced by resource",
  ],
  [
    "custom data over 64 KiB",
    (b: any) => (b.virtualMachineProfile.osProfile.customData = "A".repeat(87384)),
    "Base64",
  ],
  [
    "custom data that is not base64",
    (b: any) => (b.virtualMachineProfile.osProfile.customData = "not base64!"),
    "Base64",
  ],
  ["no fault domain count", (b: any) => delete b.platformFaultDomainCount, "platformFaultDomainCount"],
  [
    "no network api version",
    (b: any) => delete b.virtualMachineProfile.networkProfile.networkApiVersion,
    "networkApiVersion",
  ],
  [
    "password login off and no ssh key",
    (b: any) => delete b.virtualMachineProfile.osProfile.linuxConfiguration.ssh,
    "SSH",
  ],
  ["Rolling without a health probe", (b: any) => (b.upgradePolicy = { mode: "Rolling" }), "health probe"],
  ["Uniform orchestration", (b: any) => (b.orchestrationMode = "Uniform"), "Flexible only"],
])("refused: %s", async (_, change, mention) => {
  const body = scaleSet(2);
  change(body);
  await expect(create("bad", body)).rejects.toMatchObject({
    statusCode: 400,
    message: expect.stringContaining(mention),
  });
  expect(state.vms).toEqual([]);
  expect(state.scaleSets.size).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("a subnet without free addresses refuses the scale-out; scale-in removes the newest and frees its address", async () => {
  await create("nodes", scaleSet(2));
  // 10.1.2.0/29: .4, .5 and .6 are usable (Azure keeps .0-.3 and .7).
  await expect(
    client.virtualMachineScaleSets.beginUpdateAndWait("rg-1", "nodes", { sku: { capacity: 4 } }, wait),
  ).rejects.toMatchObject({ statusCode: 400, code: "SubnetIsFull" });
  expect(await capacityOf("nodes")).toBe(2);
  await client.virtualMachineScaleSets.beginUpdateAndWait("rg-1", "nodes", { sku: { capacity: 3 } }, wait);
  expect(state.vms.map((vm) => vm.privateIp)).toEqual(["10.1.2.4", "10.1.2.5", "10.1.2.6"]);
  const newest = state.vms[2]!.name;
  await client.virtualMachineScaleSets.beginUpdateAndWait("rg-1", "nodes", { sku: { capacity: 2 } }, wait);
  expect((await members("nodes")).map((vm) => vm.name)).not.toContain(newest);
  await client.virtualMachineScaleSets.beginUpdateAndWait("rg-1", "nodes", { sku: { capacity: 3 } }, wait);
  expect(state.vms.map((vm) => vm.privateIp)).toEqual(["10.1.2.4", "10.1.2.5", "10.1.2.6"]);
  expect(booted).toHaveLength(4);
  expect(fake.violations).toEqual([]);
});

test("replacing members with a new model: update the model, delete the outdated, restore the capacity", async () => {
  await create("masters", scaleSet(2));
  const [old1, old2] = state.vms.map((vm) => vm.name!) as [string, string];
  await client.virtualMachineScaleSets.beginUpdateAndWait(
    "rg-1",
    "masters",
    { virtualMachineProfile: { storageProfile: { imageReference: { id: IMAGE_2 } } } },
    wait,
  );
  // Flexible members keep the model they were built from.
  expect((await client.virtualMachines.get("rg-1", old1)).storageProfile?.imageReference?.id).toBe(IMAGE_1);
  expect(state.model(`${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/masters`)).toBe(2);

  await client.virtualMachines.beginDeleteAndWait("rg-1", old1, wait);
  expect(await capacityOf("masters")).toBe(1);
  await client.virtualMachineScaleSets.beginUpdateAndWait("rg-1", "masters", { sku: { capacity: 2 } }, wait);
  const after = await members("masters");
  expect(after.map((vm) => [vm.name === old2, vm.storageProfile?.imageReference?.id])).toEqual([
    [true, IMAGE_1],
    [false, IMAGE_2],
  ]);
  // The replacement took the deleted member's address back.
  expect(state.vms[1]!.privateIp).toBe("10.1.2.4");

  await client.virtualMachineScaleSets.beginDeleteInstancesAndWait(
    "rg-1",
    "masters",
    { instanceIds: [old2] },
    wait,
  );
  expect(await capacityOf("masters")).toBe(1);
  expect((await members("masters")).map((vm) => vm.storageProfile?.imageReference?.id)).toEqual([IMAGE_2]);
  expect(fake.violations).toEqual([]);
});

test("Flexible has no scale-set-wide reimage here: calling it leaves a violation", async () => {
  await create("masters", scaleSet(1));
  await expect(
    client.virtualMachineScaleSets.beginReimageAllAndWait("rg-1", "masters", wait),
  ).rejects.toMatchObject({
    statusCode: 501,
  });
  expect(fake.violations).toEqual([
    expect.stringContaining("no handler is registered for VirtualMachineScaleSets_ReimageAll"),
  ]);
});

test("a client that does not wait sees Creating members until the model settles; onBoot failures surface there", async () => {
  await client.virtualMachineScaleSets.beginCreateOrUpdate("rg-1", "workers", scaleSet(2), wait);
  expect(state.vms.map((vm) => [vm.provisioningState, vm.powerState])).toEqual([
    ["Creating", "starting"],
    ["Creating", "starting"],
  ]);
  expect(booted).toEqual([]);
  state.onBoot = (vm) => {
    booted.push(vm);
    if (booted.length === 2) throw new Error("boot failed");
  };
  await expect(state.settle()).rejects.toThrow("boot failed");
  expect(booted).toHaveLength(2);
  const vm = await client.virtualMachines.get("rg-1", state.vms[0]!.name, { expand: "instanceView" });
  expect(vm.instanceView?.statuses?.[1]?.code).toBe("PowerState/running");
  expect((await client.virtualMachineScaleSets.get("rg-1", "workers")).provisioningState).toBe("Succeeded");
  expect(fake.violations).toEqual([]);
});

test("deleting the scale set deletes its members; lists follow their scope", async () => {
  await create("a", scaleSet(1));
  await create("b", scaleSet(1));
  const names = async () => {
    const found = [];
    for await (const set of client.virtualMachineScaleSets.list("rg-1")) found.push(set.name);
    return found;
  };
  expect(await names()).toEqual(["a", "b"]);
  await client.virtualMachineScaleSets.beginDeleteAndWait("rg-1", "a", wait);
  expect(await names()).toEqual(["b"]);
  const all = [];
  for await (const vm of client.virtualMachines.listAll()) all.push(vm.virtualMachineScaleSet?.id);
  expect(all).toEqual([`${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/b`]);
  await expect(client.virtualMachines.list("rg-1", { filter: "name eq 'x'" }).next()).rejects.toMatchObject({
    statusCode: 400,
  });
  expect(fake.violations).toEqual([]);
});

test("If-Match with a stale ETag is refused and changes nothing", async () => {
  await create("masters", scaleSet(1));
  await expect(
    client.virtualMachineScaleSets.beginUpdateAndWait(
      "rg-1",
      "masters",
      { sku: { capacity: 2 } },
      { ...wait, ifMatch: '"0"' },
    ),
  ).rejects.toMatchObject({ statusCode: 412 });
  expect(state.vms).toHaveLength(1);
});

test("the members' NICs: listed in the group (virtualMachine.id, the primary address), read one by one, gone with the member", async () => {
  const network = new NetworkManagementClient(credential, SUB, {
    endpoint: fake.endpoint,
    tlsOptions: { ca: fake.ca },
  });
  await create("masters", scaleSet(2));
  const nics = [];
  for await (const nic of network.networkInterfaces.list("rg-1")) nics.push(nic);
  expect(
    nics.map((nic) => [nic.virtualMachine?.id, nic.primary, nic.ipConfigurations?.[0]?.privateIPAddress]),
  ).toEqual(state.vms.map((vm) => [vm.id, true, vm.privateIp]));
  expect(nics[0]).toMatchObject({
    name: `${state.vms[0]!.name}-nic`,
    networkSecurityGroup: { id: NSG },
    ipConfigurations: [
      {
        name: "ip",
        primary: true,
        privateIPAddressVersion: "IPv4",
        subnet: { id: SUBNET },
        applicationSecurityGroups: [{ id: ASG }],
      },
    ],
  });
  const [first, second] = state.vms as [FlexVm, FlexVm];
  expect((await network.networkInterfaces.get("rg-1", `${second.name}-nic`)).virtualMachine?.id).toBe(
    second.id,
  );

  await client.virtualMachines.beginDeleteAndWait("rg-1", first.name, wait);
  const left = [];
  for await (const nic of network.networkInterfaces.list("rg-1")) left.push(nic.virtualMachine?.id);
  expect(left).toEqual([second.id]);
  await expect(network.networkInterfaces.get("rg-1", `${first.name}-nic`)).rejects.toMatchObject({
    statusCode: 404,
  });
  expect(fake.violations).toEqual([]);
});
