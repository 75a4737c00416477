import { NetworkManagementClient, type SecurityRule } from "@azure/arm-network";
import { ArmFake } from "./arm-fake";
import { installNetwork, NETWORK_SPECS, NetworkState } from "./network";
import { ResourceGroupsState } from "./resource-groups";
import { clientOptions, credential, failure } from "./sdk";

const SUB = "00000000-0000-0000-0000-0000000000aa";
const RG = `/subscriptions/${SUB}/resourceGroups/rg`;
const NSG_ID = `${RG}/providers/Microsoft.Network/networkSecurityGroups/kb-nsg`;
const VNET_ID = `${RG}/providers/Microsoft.Network/virtualNetworks/kb-vnet`;
const NODES = `${VNET_ID}/subnets/nodes`;
const IP_ID = `${RG}/providers/Microsoft.Network/publicIPAddresses/kb-egress`;
const NAT_ID = `${RG}/providers/Microsoft.Network/natGateways/kb-egress`;

let fake: ArmFake;
let groups: ResourceGroupsState;
let state: NetworkState;
let client: NetworkManagementClient;

beforeEach(async () => {
  fake = await ArmFake.start(NETWORK_SPECS);
  groups = new ResourceGroupsState();
  groups.add(SUB, "rg", "westeurope");
  state = installNetwork(fake, new NetworkState({ groups }));
  client = new NetworkManagementClient(credential, SUB, clientOptions(fake));
});
afterEach(async () => {
  await fake.stop();
});

const rule = (name: string, properties: Omit<SecurityRule, "name">): SecurityRule => ({
  name,
  ...properties,
});
const sshIn = rule("ssh", {
  priority: 100,
  direction: "Inbound",
  access: "Allow",
  protocol: "Tcp",
  sourceAddressPrefix: "VirtualNetwork",
  sourcePortRange: "*",
  destinationAddressPrefix: "*",
  destinationPortRange: "22",
});
const nsg = (rules: SecurityRule[] = [sshIn], location = "westeurope") =>
  client.networkSecurityGroups.beginCreateOrUpdateAndWait("rg", "kb-nsg", { location, securityRules: rules });
const vnet = (subnets: { name: string; prefix: string; nsg?: string }[], space = ["10.0.0.0/16"]) =>
  client.virtualNetworks.beginCreateOrUpdateAndWait("rg", "kb-vnet", {
    location: "westeurope",
    addressSpace: { addressPrefixes: space },
    subnets: subnets.map((s) => ({
      name: s.name,
      addressPrefix: s.prefix,
      ...(s.nsg ? { networkSecurityGroup: { id: s.nsg } } : {}),
    })),
  });

const address = (name = "kb-egress", zones?: string[]) =>
  client.publicIPAddresses.beginCreateOrUpdateAndWait("rg", name, {
    location: "westeurope",
    sku: { name: "Standard" },
    publicIPAllocationMethod: "Static",
    ...(zones ? { zones } : {}),
  });
const natGateway = (ips: string[] = [IP_ID], name = "kb-egress", zones?: string[]) =>
  client.natGateways.beginCreateOrUpdateAndWait("rg", name, {
    location: "westeurope",
    sku: { name: "Standard" },
    idleTimeoutInMinutes: 4,
    publicIpAddresses: ips.map((id) => ({ id })),
    ...(zones ? { zones } : {}),
  });
/** The network with subnet `nodes`, going out through `nat` when given. */
const vnetWithNat = (nat?: string) =>
  client.virtualNetworks.beginCreateOrUpdateAndWait("rg", "kb-vnet", {
    location: "westeurope",
    addressSpace: { addressPrefixes: ["10.0.0.0/16"] },
    subnets: [
      {
        name: "nodes",
        addressPrefix: "10.0.0.0/24",
        defaultOutboundAccess: false,
        ...(nat ? { natGateway: { id: nat } } : {}),
      },
    ],
  });

test("the pinned client (@azure/arm-network 33.5.0) sends the described api-version", async () => {
  const client = new NetworkManagementClient(credential, SUB, clientOptions(fake));
  await failure(client.virtualNetworks.get("rg", "no-such-vnet"));
  expect(fake.violations).toEqual([]);
  expect(fake.log.at(-1)?.status).toBe(404);
});

test("a network with inline subnets, one behind an NSG, as Azure answers it", async () => {
  await nsg();
  const created = await client.virtualNetworks.beginCreateOrUpdateAndWait("rg", "kb-vnet", {
    location: "West Europe",
    tags: { cluster: "c1" },
    addressSpace: { addressPrefixes: ["10.0.0.0/16"] },
    subnets: [
      {
        name: "nodes",
        addressPrefix: "10.0.0.0/24",
        networkSecurityGroup: { id: NSG_ID },
        defaultOutboundAccess: false,
      },
      { name: "endpoints", addressPrefix: "10.0.1.0/24", privateEndpointNetworkPolicies: "enabled" },
    ],
  });
  expect(created).toMatchObject({
    id: VNET_ID,
    location: "westeurope",
    provisioningState: "Succeeded",
    etag: expect.stringMatching(/^W\/"/),
    subnets: [
      {
        id: NODES,
        type: "Microsoft.Network/virtualNetworks/subnets",
        addressPrefix: "10.0.0.0/24",
        networkSecurityGroup: { id: NSG_ID },
        defaultOutboundAccess: false,
        privateEndpointNetworkPolicies: "Disabled",
        provisioningState: "Succeeded",
      },
      { name: "endpoints", privateEndpointNetworkPolicies: "Enabled" },
    ],
  });
  const group = await client.networkSecurityGroups.get("rg", "kb-nsg");
  expect(group.subnets?.map((s) => s.id)).toEqual([NODES]);
  expect((await client.subnets.get("rg", "kb-vnet", "nodes")).addressPrefix).toBe("10.0.0.0/24");
  const listed: string[] = [];
  for await (const v of client.virtualNetworks.list("rg")) listed.push(v.name!);
  expect(listed).toEqual(["kb-vnet"]);
  expect(fake.violations).toEqual([]);
});

test("a write reads Updating until its operation is polled to Succeeded", async () => {
  fake.pollsBeforeDone = 2;
  const poller = await client.virtualNetworks.beginCreateOrUpdate(
    "rg",
    "kb-vnet",
    { location: "westeurope", addressSpace: { addressPrefixes: ["10.0.0.0/16"] } },
    { updateIntervalInMs: 0 },
  );
  // begin… sends the PUT and polls once.
  expect(fake.log.find((l) => l.method === "PUT")?.status).toBe(201);
  expect((await client.virtualNetworks.get("rg", "kb-vnet")).provisioningState).toBe("Updating");
  expect((await poller.pollUntilDone()).provisioningState).toBe("Succeeded");
  expect(fake.violations).toEqual([]);
});

test("subnets must lie inside the address space, apart, and name an NSG of their region", async () => {
  await nsg([], "eastus");
  const refusals: [Parameters<typeof vnet>[0], string][] = [
    [[{ name: "a", prefix: "10.1.0.0/24" }], "NetcfgSubnetRangeOutsideVnet"],
    [
      [
        { name: "a", prefix: "10.0.0.0/24" },
        { name: "b", prefix: "10.0.0.128/25" },
      ],
      "NetcfgSubnetRangesOverlap",
    ],
    [[{ name: "a", prefix: "10.0.0.1/24" }], "InvalidCIDRNotation"],
    [[{ name: "a", prefix: "10.0.0/24" }], "InvalidAddressPrefixFormat"],
    [[{ name: "a", prefix: "10.0.0.0/24", nsg: `${NSG_ID}-missing` }], "InvalidResourceReference"],
    // The NSG exists, but in another region.
    [[{ name: "a", prefix: "10.0.0.0/24", nsg: NSG_ID }], "InvalidResourceReference"],
    [
      [
        { name: "a", prefix: "10.0.0.0/24" },
        { name: "A", prefix: "10.0.1.0/24" },
      ],
      "DuplicateResourceName",
    ],
  ];
  for (const [subnets, code] of refusals)
    expect(await failure(vnet(subnets))).toMatchObject({ status: 400, code });
  expect(state.virtualNetworks.size).toBe(0);

  await vnet([{ name: "a", prefix: "10.0.0.0/24" }]);
  expect(
    await failure(
      client.subnets.beginCreateOrUpdateAndWait("rg", "kb-vnet", "b", { addressPrefix: "10.0.0.0/23" }),
    ),
  ).toMatchObject({ status: 400, code: "NetcfgSubnetRangesOverlap" });
  const added = await client.subnets.beginCreateOrUpdateAndWait("rg", "kb-vnet", "b", {
    addressPrefix: "10.0.1.0/24",
  });
  expect(added).toMatchObject({ id: `${VNET_ID}/subnets/b`, provisioningState: "Succeeded" });
  expect((await client.virtualNetworks.get("rg", "kb-vnet")).subnets?.map((s) => s.name)).toEqual(["a", "b"]);
  expect(fake.violations).toEqual([]);
});

test("NSG rules: defaults answered, service tags, application security groups, port ranges", async () => {
  const asg = await client.applicationSecurityGroups.beginCreateOrUpdateAndWait("rg", "masters", {
    location: "westeurope",
  });
  const created = await nsg([
    sshIn,
    rule("api", {
      priority: 110,
      direction: "Inbound",
      access: "Allow",
      protocol: "tcp",
      sourceApplicationSecurityGroups: [{ id: asg.id }],
      sourcePortRange: "*",
      destinationAddressPrefixes: ["10.0.0.0/24", "10.0.1.4"],
      destinationPortRanges: ["6443", "2379-2380"],
    }),
    rule("lb", {
      priority: 120,
      direction: "Inbound",
      access: "Allow",
      protocol: "*",
      sourceAddressPrefix: "AzureLoadBalancer",
      sourcePortRange: "*",
      destinationAddressPrefix: "*",
      destinationPortRange: "*",
    }),
    // The same priority in the other direction does not clash.
    rule("out", {
      priority: 100,
      direction: "Outbound",
      access: "Deny",
      protocol: "Udp",
      sourceAddressPrefix: "*",
      sourcePortRange: "*",
      destinationAddressPrefix: "Internet",
      destinationPortRange: "53",
    }),
  ]);
  expect(created.securityRules?.map((r) => [r.name, r.protocol])).toEqual([
    ["ssh", "Tcp"],
    ["api", "Tcp"],
    ["lb", "*"],
    ["out", "Udp"],
  ]);
  expect(created.securityRules?.[1]?.sourceApplicationSecurityGroups).toEqual([{ id: asg.id }]);
  expect(created.defaultSecurityRules?.map((r) => `${r.name}:${r.priority}:${r.access}`)).toEqual([
    "AllowVnetInBound:65000:Allow",
    "AllowAzureLoadBalancerInBound:65001:Allow",
    "DenyAllInBound:65500:Deny",
    "AllowVnetOutBound:65000:Allow",
    "AllowInternetOutBound:65001:Allow",
    "DenyAllOutBound:65500:Deny",
  ]);
  expect(fake.violations).toEqual([]);
});

test("NSG rules Azure refuses", async () => {
  const bad = (properties: Partial<SecurityRule>) => nsg([{ ...sshIn, name: "bad", ...properties }]);
  const cases: [Partial<SecurityRule>, string][] = [
    [{ priority: 99 }, "SecurityRuleInvalidPriority"],
    [{ priority: 4097 }, "SecurityRuleInvalidPriority"],
    [{ protocol: "Gre" }, "SecurityRuleParameterContainsUnsupportedValue"],
    [
      { sourceAddressPrefix: undefined, sourceAddressPrefixes: ["VirtualNetwork"] },
      "SecurityRuleParameterContainsUnsupportedValue",
    ],
    [{ sourceAddressPrefix: "any" }, "SecurityRuleInvalidAddressPrefix"],
    [{ sourceAddressPrefix: undefined }, "SecurityRuleParameterMissing"],
    [{ sourceAddressPrefixes: ["10.0.0.0/8"] }, "SecurityRuleParametersConflict"],
    [{ destinationPortRange: "70000" }, "SecurityRuleInvalidPortRange"],
    [{ destinationPortRange: "90-80" }, "SecurityRuleInvalidPortRange"],
    [
      {
        sourceAddressPrefix: undefined,
        sourceApplicationSecurityGroups: [
          { id: `${RG}/providers/Microsoft.Network/applicationSecurityGroups/none` },
        ],
      },
      "InvalidResourceReference",
    ],
  ];
  for (const [properties, code] of cases)
    expect([code, await failure(bad(properties))]).toEqual([
      code,
      expect.objectContaining({ status: 400, code }),
    ]);
  expect(await failure(nsg([sshIn, { ...sshIn, name: "ssh2" }]))).toMatchObject({
    status: 400,
    code: "SecurityRuleConflict",
    message: expect.stringContaining("Rules cannot have the same Priority and Direction"),
  });
  expect(state.securityGroups.size).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("security rules one by one: checked against the others, deleted asynchronously", async () => {
  await nsg();
  expect(
    await failure(
      client.securityRules.beginCreateOrUpdateAndWait("rg", "kb-nsg", "other", { ...sshIn, name: undefined }),
    ),
  ).toMatchObject({ status: 400, code: "SecurityRuleConflict" });
  const added = await client.securityRules.beginCreateOrUpdateAndWait("rg", "kb-nsg", "https", {
    ...sshIn,
    name: undefined,
    priority: 200,
    destinationPortRange: "443",
  });
  expect(added).toMatchObject({ id: `${NSG_ID}/securityRules/https`, provisioningState: "Succeeded" });
  await client.securityRules.beginDeleteAndWait("rg", "kb-nsg", "ssh");
  expect((await client.networkSecurityGroups.get("rg", "kb-nsg")).securityRules?.map((r) => r.name)).toEqual([
    "https",
  ]);
  expect(await failure(client.securityRules.get("rg", "kb-nsg", "ssh"))).toMatchObject({ status: 404 });
  expect(fake.violations).toEqual([]);
});

test("an NSG a subnet uses cannot be deleted until the subnet lets go of it", async () => {
  await nsg();
  await vnet([{ name: "nodes", prefix: "10.0.0.0/24", nsg: NSG_ID }]);
  expect(await failure(client.networkSecurityGroups.beginDeleteAndWait("rg", "kb-nsg"))).toMatchObject({
    status: 400,
    code: "InUseNetworkSecurityGroupCannotBeDeleted",
    message: expect.stringContaining(`in use by the following resources: ${NODES}`),
  });
  await client.subnets.beginCreateOrUpdateAndWait("rg", "kb-vnet", "nodes", { addressPrefix: "10.0.0.0/24" });
  await client.networkSecurityGroups.beginDeleteAndWait("rg", "kb-nsg");
  expect(state.securityGroups.size).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("a subnet in use can be neither deleted, dropped from its network's PUT, renumbered, nor its network deleted", async () => {
  let users = [`${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/workers`];
  state.subnetUsers.push((id) => (id.toLowerCase() === NODES.toLowerCase() ? users : []));
  await vnet([{ name: "nodes", prefix: "10.0.0.0/24" }]);
  const inUse = {
    status: 400,
    code: "InUseSubnetCannotBeDeleted",
    message: expect.stringContaining(users[0]!),
  };
  expect(await failure(client.subnets.beginDeleteAndWait("rg", "kb-vnet", "nodes"))).toMatchObject(inUse);
  expect(await failure(client.virtualNetworks.beginDeleteAndWait("rg", "kb-vnet"))).toMatchObject(inUse);
  expect(await failure(vnet([]))).toMatchObject(inUse);
  expect(await failure(vnet([{ name: "nodes", prefix: "10.0.0.0/23" }]))).toMatchObject({
    status: 400,
    code: "InUseSubnetCannotBeUpdated",
  });
  // The same prefix again is fine.
  await vnet([{ name: "nodes", prefix: "10.0.0.0/24" }]);

  users = [];
  await client.subnets.beginDeleteAndWait("rg", "kb-vnet", "nodes");
  await client.virtualNetworks.beginDeleteAndWait("rg", "kb-vnet");
  expect(state.virtualNetworks.size).toBe(0);
  // Deleting what is gone is 204.
  await client.virtualNetworks.beginDeleteAndWait("rg", "kb-vnet");
  expect(fake.log.filter((l) => l.method === "DELETE" && l.status < 400).map((l) => l.status)).toEqual([
    202, 202, 204,
  ]);
  expect(fake.violations).toEqual([]);
});

test("resources need their group, and go with it", async () => {
  expect(
    await failure(
      client.networkSecurityGroups.beginCreateOrUpdateAndWait("nogroup", "n", { location: "westeurope" }),
    ),
  ).toMatchObject({ status: 404, code: "ResourceGroupNotFound" });
  await nsg();
  await vnet([{ name: "nodes", prefix: "10.0.0.0/24", nsg: NSG_ID }]);
  await address();
  await natGateway();
  groups.remove(SUB, "rg");
  expect(
    state.virtualNetworks.size +
      state.securityGroups.size +
      state.natGateways.size +
      state.publicIpAddresses.size,
  ).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("a NAT gateway with a Standard static address, on a subnet, as Azure answers them", async () => {
  const ip = await address();
  expect(ip).toMatchObject({
    id: IP_ID,
    sku: { name: "Standard", tier: "Regional" },
    publicIPAllocationMethod: "Static",
    publicIPAddressVersion: "IPv4",
    ipAddress: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+$/),
    provisioningState: "Succeeded",
  });
  const nat = await natGateway();
  expect(nat).toMatchObject({
    id: NAT_ID,
    sku: { name: "Standard" },
    idleTimeoutInMinutes: 4,
    publicIpAddresses: [{ id: IP_ID }],
    provisioningState: "Succeeded",
  });
  expect(nat.zones).toBeUndefined();
  const network = await vnetWithNat(NAT_ID);
  expect(network.subnets?.[0]?.natGateway).toEqual({ id: NAT_ID });
  expect((await client.natGateways.get("rg", "kb-egress")).subnets).toEqual([{ id: NODES }]);
  const held = await client.publicIPAddresses.get("rg", "kb-egress");
  expect(held.natGateway?.id).toBe(NAT_ID);
  // The address stays what it was through an update.
  expect((await address()).ipAddress).toBe(ip.ipAddress);
  const listed: string[] = [];
  for await (const n of client.natGateways.list("rg")) listed.push(n.name!);
  for await (const p of client.publicIPAddresses.list("rg")) listed.push(p.name!);
  expect(listed).toEqual(["kb-egress", "kb-egress"]);
  expect(fake.violations).toEqual([]);
});

test("public IP addresses Azure refuses: Basic (the API's default SKU), Standard but not Static", async () => {
  const put = (body: Parameters<typeof client.publicIPAddresses.beginCreateOrUpdateAndWait>[2]) =>
    failure(
      client.publicIPAddresses.beginCreateOrUpdateAndWait("rg", "ip", { location: "westeurope", ...body }),
    );
  expect(await put({})).toMatchObject({ status: 400, code: "IPv4BasicSkuPublicIpCountLimitReached" });
  expect(await put({ sku: { name: "Basic" }, publicIPAllocationMethod: "Static" })).toMatchObject({
    status: 400,
    code: "IPv4BasicSkuPublicIpCountLimitReached",
  });
  const mustBeStatic = { status: 400, code: "StandardSkuPublicIPAddressesMustBeStatic" };
  expect(await put({ sku: { name: "Standard" } })).toMatchObject(mustBeStatic);
  expect(await put({ sku: { name: "Standard" }, publicIPAllocationMethod: "Dynamic" })).toMatchObject(
    mustBeStatic,
  );
  expect(state.publicIpAddresses.size).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("NAT gateways Azure refuses: missing or taken addresses, several zones, an address of another zone", async () => {
  await address();
  await address("zonal", ["2"]);
  const zonalId = IP_ID.replace(/kb-egress$/, "zonal");
  expect(await failure(natGateway([`${IP_ID}-missing`]))).toMatchObject({
    status: 400,
    code: "InvalidResourceReference",
  });
  expect(await failure(natGateway([IP_ID], "kb-nat", ["1", "2"]))).toMatchObject({
    status: 400,
    code: "NatGatewayZonesInvalid",
  });
  const mismatch = { status: 400, code: "NatGatewayPublicIpZoneMismatch" };
  expect(await failure(natGateway([zonalId]))).toMatchObject(mismatch);
  expect(await failure(natGateway([zonalId], "kb-nat", ["1"]))).toMatchObject(mismatch);
  await natGateway([zonalId], "zonal", ["2"]);
  await natGateway();
  expect(await failure(natGateway([IP_ID], "other"))).toMatchObject({
    status: 400,
    code: "PublicIPAddressInUse",
    message: expect.stringContaining(`already allocated to resource ${NAT_ID}`),
  });
  // A subnet may name only a gateway that exists.
  expect(await failure(vnetWithNat(`${NAT_ID}-missing`))).toMatchObject({
    status: 400,
    code: "InvalidResourceReference",
  });
  expect([...state.natGateways.values()].map((n) => n.name).sort()).toEqual(["kb-egress", "zonal"]);
  expect(fake.violations).toEqual([]);
});

test("a NAT gateway on a subnet, and its address, are deleted only once let go", async () => {
  await address();
  await natGateway();
  await vnetWithNat(NAT_ID);
  expect(await failure(client.publicIPAddresses.beginDeleteAndWait("rg", "kb-egress"))).toMatchObject({
    status: 400,
    code: "PublicIPAddressCannotBeDeleted",
    message: expect.stringContaining(`still allocated to resource ${NAT_ID}`),
  });
  expect(await failure(client.natGateways.beginDeleteAndWait("rg", "kb-egress"))).toMatchObject({
    status: 400,
    code: "CannotDeleteNatGatewayAssociatedToSubnet",
  });
  // The network's PUT without the gateway lets go of it; so does deleting the network.
  await vnetWithNat();
  expect((await client.natGateways.get("rg", "kb-egress")).subnets).toBeUndefined();
  await vnetWithNat(NAT_ID);
  await client.virtualNetworks.beginDeleteAndWait("rg", "kb-vnet");
  await client.natGateways.beginDeleteAndWait("rg", "kb-egress");
  expect((await client.publicIPAddresses.get("rg", "kb-egress")).natGateway).toBeUndefined();
  await client.publicIPAddresses.beginDeleteAndWait("rg", "kb-egress");
  expect(state.natGateways.size + state.publicIpAddresses.size).toBe(0);
  // Deleting what is gone is 204.
  await client.natGateways.beginDeleteAndWait("rg", "kb-egress");
  await client.publicIPAddresses.beginDeleteAndWait("rg", "kb-egress");
  expect(fake.log.filter((l) => l.method === "DELETE").map((l) => l.status)).toEqual([
    400, 400, 202, 202, 202, 204, 204,
  ]);
  expect(fake.violations).toEqual([]);
});
