/** What an Azure cluster should be, as pure data: each rule of src/launch/azure/desired.ts on its own. */
import { azureClusterSpecSchema } from "../../src/cluster/schema";
import {
  assignmentName,
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
