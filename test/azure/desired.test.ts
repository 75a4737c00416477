/** What an Azure cluster should be, as pure data: each rule of src/launch/azure/desired.ts on its own. */
import { azureClusterSpecSchema } from "../../src/cluster/schema";
import { parse } from "yaml";
import {
  DISCOVERY_EVENT_TYPES,
  DISCOVERY_LINUX_FX_VERSION,
  discoveryAppSettings,
  discoveryEventSubscriptionName,
  discoveryFunctionAppName,
  discoveryPlanName,
  discoveryStorageAccountName,
  discoveryTopicName,
  ownerLabel,
  PACKAGE_CONTAINER,
  packageBlobName,
  RESOURCE_GROUPS_TOPIC_TYPE,
  VM_OPERATIONS,
} from "../../src/launch/azure/discovery-desired";
import {
  assignmentName,
  capacityOf,
  egressAddressName,
  IDENTITIES,
  identityName,
  natGatewayName,
  ownsResourceGroup,
  privateZoneName,
  roleGroupName,
  scaleSetName,
  securityGroupName,
  SUBNET_NAME,
  virtualNetworkName,
  zoneLinkName,
  LAUNCH_GATE_SECRET,
  machineProfile,
  secretGrants,
  secretName,
  userData,
  resourceGroupName,
  securityRuleBody,
  securityRules,
  tagsFor,
  vaultName,
} from "../../src/launch/azure/desired";
import { azureClusterYaml, SUBSCRIPTION } from "./fixture";

const specOf = (overrides: Record<string, unknown> = {}) =>
  azureClusterSpecSchema.parse(azureClusterYaml(overrides));
const groupIds = { masters: "/asg/masters", minions: "/asg/minions" };

test("the resource group is the spec's or kubebake's own; tags carry the cluster and its id", () => {
  expect(resourceGroupName(specOf())).toBe("kubebake-demo");
  expect(resourceGroupName(specOf({ resourceGroup: "platform-rg" }))).toBe("platform-rg");
  expect(tagsFor(specOf(), "network", "kb-1")).toEqual({
    team: "platform",
    KubernetesCluster: "demo",
    "kubebake:owner": "kb-1",
    "kubebake:name": "network",
  });
});

test("vault names are 3 to 24 characters, and differ between clusters of one name elsewhere", () => {
  const names = [
    vaultName(SUBSCRIPTION, specOf()),
    vaultName(SUBSCRIPTION, specOf({ resourceGroup: "other" })),
    vaultName("11111111-1111-4111-8111-111111111111", specOf()),
    vaultName(SUBSCRIPTION, specOf({ name: "a-very-long-cluster-name-indeed" })),
  ];
  for (const name of names) expect(name).toMatch(/^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/);
  expect(new Set(names).size).toBe(4);
  expect(names[0]).toMatch(/^kb-demo-[0-9a-f]{8}$/);
  expect(names[3]).toBe(`kb-a-very-long-${names[3]!.slice(-8)}`);
});

test("subnet rules: each port from exactly its roles, operators' ranges only when listed, the rest of the network denied", () => {
  const rules = securityRules(specOf({ network: {} }));
  expect(rules.map((r) => `${r.priority} ${r.name} ${r.access} ${r.protocol}/${r.ports}`)).toEqual([
    "100 api-from-nodes Allow Tcp/6443",
    "110 etcd Allow Tcp/2379-2380",
    "120 kubelet Allow Tcp/10250",
    "130 flannel Allow Udp/8472",
    "4096 deny-other-virtual-network Deny */*",
  ]);
  const open = securityRules(
    specOf({ network: { apiAccess: ["198.51.100.0/24", "192.0.2.0/24"], sshAccess: ["192.0.2.0/24"] } }),
  );
  expect(open.map((r) => r.name)).toEqual([
    "api-from-nodes",
    "etcd",
    "kubelet",
    "flannel",
    "api-operators",
    "ssh",
    "deny-other-virtual-network",
  ]);
  expect(new Set(open.map((r) => r.priority)).size).toBe(open.length);
  expect(securityRuleBody(open[0]!, groupIds)).toEqual({
    name: "api-from-nodes",
    description: "API server from the nodes",
    priority: 100,
    direction: "Inbound",
    access: "Allow",
    protocol: "Tcp",
    sourcePortRange: "*",
    destinationPortRange: "6443",
    sourceApplicationSecurityGroups: [{ id: "/asg/masters" }, { id: "/asg/minions" }],
    destinationApplicationSecurityGroups: [{ id: "/asg/masters" }],
  });
  expect(
    securityRuleBody(
      open.find((r) => r.name === "api-operators")!,
      groupIds,
    ),
  ).toMatchObject({
    sourceAddressPrefixes: ["192.0.2.0/24", "198.51.100.0/24"],
    destinationApplicationSecurityGroups: [{ id: "/asg/masters" }],
  });
  expect(
    securityRuleBody(
      open.find((r) => r.name === "ssh")!,
      groupIds,
    ),
  ).toMatchObject({
    sourceAddressPrefix: "192.0.2.0/24",
    destinationApplicationSecurityGroups: [{ id: "/asg/masters" }, { id: "/asg/minions" }],
  });
  expect(securityRuleBody(open.at(-1)!, groupIds)).toMatchObject({
    access: "Deny",
    sourceAddressPrefix: "VirtualNetwork",
    destinationAddressPrefix: "VirtualNetwork",
    destinationPortRange: "*",
  });
});

test("a role assignment's name is a GUID fixed by its scope, role and principal", () => {
  const a = assignmentName("/subscriptions/s/resourceGroups/g", "role-1", "p-1");
  expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(assignmentName("/subscriptions/s/resourceGroups/G", "role-1", "p-1")).toBe(a);
  expect(assignmentName("/subscriptions/s/resourceGroups/g", "role-2", "p-1")).not.toBe(a);
  expect(assignmentName("/subscriptions/s/resourceGroups/g", "role-1", "p-2")).not.toBe(a);
});

test("each secret's grants: minions the CA certificate and the join token, masters their files and two writes, nobody the admin's", () => {
  const grants = secretGrants();
  const readers = (secret: string) =>
    grants
      .filter((g) => g.secret === secret && g.role === "keyVaultSecretsUser")
      .map((g) => g.who)
      .sort();
  expect(readers("pki-ca-crt")).toEqual(["masters", "minions"]);
  expect(readers("pki-bootstrap-token")).toEqual(["masters", "minions"]);
  expect(readers("pki-ca-key")).toEqual(["masters"]);
  expect(readers("pki-sa-key")).toEqual(["masters"]);
  for (const admin of ["pki-admin-crt", "pki-admin-key", "pki-admin-kubeconfig"])
    expect(grants.filter((g) => g.secret === admin)).toEqual([]);
  expect(
    grants
      .filter((g) => g.who === "minions")
      .map((g) => g.secret)
      .sort(),
  ).toEqual(["pki-bootstrap-token", "pki-ca-crt"]);
  expect(grants.filter((g) => g.role === "keyVaultSecretsOfficer")).toEqual([
    { secret: "pki-bootstrap-token", role: "keyVaultSecretsOfficer", who: "masters" },
    { secret: LAUNCH_GATE_SECRET, role: "keyVaultSecretsOfficer", who: "masters" },
  ]);
  expect(secretName("encryption-config.yaml")).toBe("pki-encryption-config-yaml");
});

const facts = {
  subscription: SUBSCRIPTION,
  resourceGroup: "kubebake-demo",
  vault: "kb-demo-1",
  clientId: "c-1",
};

test("the role file: where the node's secrets are and who it is; masters also their group, count and gate", () => {
  const roleFile = (role: "masters" | "minions") =>
    (
      parse(userData(specOf(), role, facts).replace(/^#cloud-config\n/, "")) as {
        write_files: { path: string; content: string; permissions: string }[];
      }
    ).write_files;
  const [minion] = roleFile("minions");
  expect(minion!.path).toBe("/etc/sysconfig/kubernetes-minions");
  expect(minion!.permissions).toBe("0644");
  expect(minion!.content.split("\n")).toEqual([
    "CLUSTER_NAME=demo",
    "CLOUD_PROVIDER=azure",
    "SECRET_SOURCE=keyvault:kb-demo-1/pki",
    "AZURE_CLIENT_ID=c-1",
    `AZURE_SUBSCRIPTION_ID=${SUBSCRIPTION}`,
    "AZURE_RESOURCE_GROUP=kubebake-demo",
    "",
  ]);
  const [master] = roleFile("masters");
  expect(master!.path).toBe("/etc/sysconfig/kubernetes-masters");
  expect(master!.content).toContain(
    "MASTERS_COUNT=3\nGROUP_NAME=kubebake-demo-masters\nLAUNCH_HOOK=launch-ready\n",
  );
  expect(userData(specOf(), "masters", facts).startsWith("#cloud-config\n")).toBe(true);
});

test("the machine profile: Trusted Launch, a key only, the role's NIC groups, a public IP only when asked", () => {
  const links = {
    subnetId: "/subnet",
    securityGroupId: "/nsg",
    roleGroupId: "/asg/masters",
    identityId: "/id",
    image: "/image",
  };
  const profile = machineProfile(specOf(), "masters", links, "#cloud-config\n", "ssh-ed25519 AAAA k");
  expect(profile.securityProfile).toEqual({
    securityType: "TrustedLaunch",
    uefiSettings: { secureBootEnabled: true, vTpmEnabled: true },
  });
  expect(profile.osProfile).toMatchObject({
    computerNamePrefix: "demo-masters-",
    adminUsername: "kubebake",
    customData: Buffer.from("#cloud-config\n").toString("base64"),
    linuxConfiguration: {
      disablePasswordAuthentication: true,
      ssh: { publicKeys: [{ path: "/home/kubebake/.ssh/authorized_keys", keyData: "ssh-ed25519 AAAA k" }] },
    },
  });
  expect(profile.storageProfile?.imageReference).toEqual({ id: "/image" });
  const [nic] = profile.networkProfile!.networkInterfaceConfigurations!;
  expect(nic!.networkSecurityGroup).toEqual({ id: "/nsg" });
  expect(nic!.ipConfigurations![0]).toEqual({
    name: "ip",
    primary: true,
    subnet: { id: "/subnet" },
    applicationSecurityGroups: [{ id: "/asg/masters" }],
  });
  const open = machineProfile(specOf({ network: { internet: true } }), "minions", links, "", "k");
  expect(
    open.networkProfile!.networkInterfaceConfigurations![0]!.ipConfigurations![0]!
      .publicIPAddressConfiguration,
  ).toEqual({
    name: "public",
    deleteOption: "Delete",
  });
  expect(capacityOf(specOf(), "masters")).toBe(3);
  expect(capacityOf(specOf(), "minions")).toBe(2);
});

test("discovery's global names fit Azure's rules and differ between clusters of one name elsewhere", () => {
  const spec = specOf({ name: "a-long-cluster-name-that-goes-on-and-onn" });
  const account = discoveryStorageAccountName(SUBSCRIPTION, spec);
  expect(account).toMatch(/^[a-z0-9]{3,24}$/);
  expect(account).not.toBe(
    discoveryStorageAccountName(SUBSCRIPTION, specOf({ name: spec.name, resourceGroup: "rg" })),
  );
  const app = discoveryFunctionAppName(SUBSCRIPTION, spec);
  expect(app.length).toBeLessThanOrEqual(60);
  expect(app).toMatch(/^kb-a-long-cluster-name-that-goes-on-and-onn-dns-[0-9a-f]{8}$/);
  const settings = discoveryAppSettings({
    spec: specOf(),
    subscription: SUBSCRIPTION,
    discoveryDomain: "k8s",
    zoneId: "/zone",
    identity: { id: "/id", clientId: "c-1" },
    storageAccount: "kbdemo",
    packageUrl: "https://kbdemo.blob.core.windows.net/p.zip",
  });
  expect(settings).toMatchObject({
    WEBSITE_RUN_FROM_PACKAGE: "https://kbdemo.blob.core.windows.net/p.zip",
    WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: "/id",
    AzureWebJobsStorage__credential: "managedidentity",
    AzureWebJobsStorage__clientId: "c-1",
    AzureWebJobsStorage__accountName: "kbdemo",
    FUNCTIONS_EXTENSION_VERSION: "~4",
    FUNCTIONS_WORKER_RUNTIME: "node",
    AZURE_SUBSCRIPTION_ID: SUBSCRIPTION,
    DISCOVERY_DOMAIN: "k8s",
    CLUSTER_NAME: "demo",
    HOSTED_ZONE_ID: "/zone",
    AZURE_RESOURCE_GROUP: "kubebake-demo",
    AZURE_CLIENT_ID: "c-1",
  });
  expect(Object.keys(settings).filter((k) => /KEY|CONNECTION|PASSWORD/i.test(k))).toEqual([]);
});

test("each rule's sources and targets: the roles that need the port, nobody else", () => {
  const rules = securityRules(
    specOf({ network: { apiAccess: ["198.51.100.0/24", "192.0.2.0/24"], sshAccess: ["192.0.2.0/24"] } }),
  );
  const shape = (r: (typeof rules)[number]) =>
    `${r.name}: ${"roles" in r.from ? r.from.roles.join("+") : r.from.prefixes.join("+")} -> ${Array.isArray(r.to) ? r.to.join("+") : r.to}`;
  expect(rules.map(shape)).toEqual([
    "api-from-nodes: masters+minions -> masters",
    "etcd: masters -> masters",
    "kubelet: masters+minions -> minions",
    "flannel: minions -> minions",
    "api-operators: 192.0.2.0/24+198.51.100.0/24 -> masters",
    "ssh: 192.0.2.0/24 -> masters+minions",
    "deny-other-virtual-network: VirtualNetwork -> VirtualNetwork",
  ]);
  expect(rules.every((r) => r.what.length > 10)).toBe(true);
  // Sorted copies: the spec's own lists are left as written.
  const spec = specOf({ network: { sshAccess: ["198.51.100.0/24", "192.0.2.0/24"] } });
  securityRules(spec);
  expect(spec.network.sshAccess).toEqual(["198.51.100.0/24", "192.0.2.0/24"]);
});

test("the names of a cluster's resources", () => {
  expect([
    virtualNetworkName("demo"),
    SUBNET_NAME,
    securityGroupName("demo"),
    natGatewayName("demo"),
    egressAddressName("demo"),
    roleGroupName("demo", "minions"),
    scaleSetName("demo", "masters"),
    IDENTITIES.map((i) => identityName("demo", i)).join(" "),
    privateZoneName("demo", "k8s"),
    zoneLinkName("demo"),
    discoveryPlanName("demo"),
    PACKAGE_CONTAINER,
    packageBlobName("ab12"),
    discoveryTopicName("demo"),
    discoveryEventSubscriptionName("demo"),
    ownerLabel("kb-1"),
  ]).toEqual([
    "kubebake-demo",
    "nodes",
    "kubebake-demo-nodes",
    "kubebake-demo-egress",
    "kubebake-demo-egress",
    "kubebake-demo-minions",
    "kubebake-demo-masters",
    "kubebake-demo-masters kubebake-demo-minions kubebake-demo-dns",
    "demo.k8s",
    "kubebake-demo-nodes",
    "kubebake-demo-dns",
    "dns-discovery",
    "dns-discovery-azure-ab12.zip",
    "kubebake-demo-events",
    "kubebake-demo-vms",
    "kubebake:owner=kb-1",
  ]);
  expect(ownsResourceGroup(specOf())).toBe(true);
  expect(ownsResourceGroup(specOf({ resourceGroup: "platform-rg" }))).toBe(false);
  expect(vaultName(SUBSCRIPTION, specOf({ name: "ab-" + "c".repeat(20) }))).not.toMatch(/--/);
  // Scope is compared without case, as Azure does.
  expect(assignmentName("/subscriptions/S/resourceGroups/RG", "r", "p")).toBe(
    assignmentName("/subscriptions/s/resourcegroups/rg", "r", "p"),
  );
});

test("what discovery listens to, and the runtime", () => {
  expect(RESOURCE_GROUPS_TOPIC_TYPE).toBe("Microsoft.Resources.ResourceGroups");
  expect(DISCOVERY_EVENT_TYPES).toEqual([
    "Microsoft.Resources.ResourceWriteSuccess",
    "Microsoft.Resources.ResourceDeleteSuccess",
  ]);
  expect(VM_OPERATIONS).toEqual([
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/delete",
  ]);
  expect(DISCOVERY_LINUX_FX_VERSION).toBe("Node|22");
});
