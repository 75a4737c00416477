/**
 * An Azure cluster end to end against the fake Azure (and azurite for the function's package): plan,
 * apply, a second apply that changes nothing, a new image rolled out masters first and one at a time
 * through the launch gate, and a destroy that leaves nothing of the cluster. Every request is checked
 * against the official descriptions (violations stay empty).
 */
import { formatChange } from "../../src/launch/changes";
import { LAUNCH_GATE_SECRET, OWNER_TAG } from "../../src/launch/azure/desired";
import { BUILT_IN_ROLES } from "../fakes/azure/authorization";
import type { AzureCloud } from "../fakes/azure/cloud";
import {
  addImage,
  apply,
  azureClusterYaml,
  destroy,
  IMAGE_ID,
  mastersPassTheGate,
  settle,
  SUBSCRIPTION,
  useAzureCloud,
  writeSpec,
} from "./fixture";

const azure = useAzureCloud();
let cloud: AzureCloud;
beforeEach(() => {
  cloud = azure.cloud();
});

const owned = (cloud: AzureCloud, id: string) =>
  [
    ...[...cloud.vmss.scaleSets.values()].map((s) => s.resource),
    ...cloud.vmss.vms.map((vm) => ({ tags: vm.tags })),
    ...[...cloud.keyVault.vaults.values()].filter((v) => !v.deleted).map((v) => v.resource),
    ...cloud.network.natGateways.values(),
    ...cloud.network.publicIpAddresses.values(),
  ].filter((r) => (r.tags as Record<string, string> | undefined)?.[OWNER_TAG] === id);

test("plan lists what apply makes; a second apply and plan change nothing; destroy leaves nothing", async () => {
  const path = writeSpec(azureClusterYaml());
  const plan = await apply(cloud, path, true);
  const made = await apply(cloud, path);
  expect(made.rec.changes.map(formatChange)).toEqual(plan.rec.changes.map(formatChange));
  expect(made.rec.changes.map((c) => `${c.action} ${c.kind}`)).toEqual(
    expect.arrayContaining([
      "create resource-group",
      "create virtual-network",
      "create key-vault",
      "create pki",
      "create private-dns-zone",
      "create zone-link",
      "create scale-set",
      "create role-assignment",
    ]),
  );
  const again = await apply(cloud, path);
  expect(again.rec.changes.map(formatChange)).toEqual([]);
  expect((await apply(cloud, path, true)).rec.changes).toEqual([]);

  const members = (role: string) =>
    cloud.vmss.vms.filter((vm) => vm.name.startsWith(`kubebake-demo-${role}_`));
  expect(members("masters")).toHaveLength(3);
  expect(members("minions")).toHaveLength(2);
  // The role file is the custom data, with nothing secret in it.
  const roleFile = Buffer.from(members("masters")[0]!.customData!, "base64").toString();
  expect(roleFile).toContain("CLOUD_PROVIDER=azure");
  expect(roleFile).toMatch(/SECRET_SOURCE=keyvault:kb-demo-[0-9a-f]{8}\/pki/);
  expect(roleFile).toContain(`LAUNCH_HOOK=${LAUNCH_GATE_SECRET}`);
  expect(roleFile).not.toMatch(/BEGIN|PRIVATE/);

  const clusterId = cloud.groups.get(SUBSCRIPTION, "kubebake-demo")!.tags!["kubebake:owner"]!;
  const gone = await destroy(cloud, path);
  expect(gone.changes.length).toBeGreaterThan(10);
  // Deleted one by one (the group's deletion would take them too, but not an operator's group).
  expect(gone.changes.map((c) => `${c.action} ${c.kind}`)).toEqual(
    expect.arrayContaining(["delete nat-gateway", "delete public-ip"]),
  );
  expect(cloud.groups.get(SUBSCRIPTION, "kubebake-demo")).toBeUndefined();
  expect(owned(cloud, clusterId)).toEqual([]);
  expect([...cloud.keyVault.vaults.values()]).toEqual([]);
  expect(cloud.rbac.all().filter((a) => a.scope.includes("kubebake-demo"))).toEqual([]);
  expect((await destroy(cloud, path)).changes).toEqual([]);
});

test("a new image replaces the masters one at a time, each after it passes the launch gate, then the minions", async () => {
  const path = writeSpec(azureClusterYaml());
  await apply(cloud, path);
  const first = new Set(cloud.vmss.vms.map((vm) => vm.name));
  const next = IMAGE_ID.replace(/kubebake-1$/, "kubebake-2");
  addImage(cloud, next);
  const rolled = await apply(cloud, writeSpec(azureClusterYaml({ image: { id: next } })));
  const replaced = rolled.rec.changes.filter((c) => c.kind === "instances");
  expect(replaced.map((c) => c.name)).toEqual([
    "kubebake-demo-masters",
    "kubebake-demo-masters",
    "kubebake-demo-masters",
    // 25 % of two minions: one at a time.
    "kubebake-demo-minions",
    "kubebake-demo-minions",
  ]);
  await settle(cloud);
  const live = cloud.vmss.vms.filter((vm) => vm.provisioningState !== "Deleting");
  expect(live).toHaveLength(5);
  expect(live.every((vm) => vm.imageId === next && !first.has(vm.name))).toBe(true);
});

test("a rollout stops when a new master never passes the gate, and the next apply goes on", async () => {
  const path = writeSpec(azureClusterYaml({ rollout: { timeoutSeconds: 1 } }));
  await apply(cloud, path);
  const next = IMAGE_ID.replace(/kubebake-1$/, "kubebake-2");
  addImage(cloud, next);
  cloud.vmss.onBoot = undefined;
  const newImage = writeSpec(azureClusterYaml({ image: { id: next }, rollout: { timeoutSeconds: 1 } }));
  await expect(apply(cloud, newImage)).rejects.toThrow(/launch gate/);
  cloud.vmss.onBoot = mastersPassTheGate(cloud);
  // The master that timed out never says it is ready: it is on the new model, so the rollout goes on
  // with the others; the gate is asked only of the masters replaced now.
  for (const vm of cloud.vmss.vms) mastersPassTheGate(cloud)(vm);
  await apply(cloud, newImage);
  const live = cloud.vmss.vms.filter((vm) => vm.provisioningState !== "Deleting");
  expect(live.every((vm) => vm.imageId === next)).toBe(true);
});

test("members without the model tag are judged by their image and size: not replaced again and again", async () => {
  const path = writeSpec(azureClusterYaml());
  await apply(cloud, path);
  for (const vm of cloud.vmss.vms) vm.tags = {};
  expect((await apply(cloud, path)).rec.changes).toEqual([]);
  const next = IMAGE_ID.replace(/kubebake-1$/, "kubebake-2");
  addImage(cloud, next);
  const rolled = await apply(cloud, writeSpec(azureClusterYaml({ image: { id: next } })));
  expect(rolled.rec.changes.filter((c) => c.kind === "instances")).toHaveLength(5);
});

test("what each identity may do after an apply: its grants, at their scopes, and nothing more", async () => {
  const path = writeSpec(azureClusterYaml());
  await apply(cloud, path);
  const principal = (name: string) => cloud.msi.all().find((i) => i.name === name)!.principalId;
  const roles = Object.fromEntries(Object.entries(BUILT_IN_ROLES).map(([name, id]) => [id, name]));
  const grants = (identity: string) =>
    cloud.rbac
      .forPrincipal(principal(`kubebake-demo-${identity}`))
      .map((a) => `${roles[a.roleDefinitionId.split("/").pop()!]} ${a.scope.split("/").slice(-2).join("/")}`)
      .sort();
  expect(grants("minions")).toEqual([
    "Key Vault Secrets User secrets/pki-bootstrap-token",
    "Key Vault Secrets User secrets/pki-ca-crt",
  ]);
  const masters = grants("masters");
  expect(masters).toContain("Reader resourceGroups/kubebake-demo");
  expect(masters).toContain("Key Vault Secrets Officer secrets/launch-ready");
  expect(masters).toContain("Key Vault Secrets Officer secrets/pki-bootstrap-token");
  expect(masters).toContain("Key Vault Secrets User secrets/pki-ca-key");
  expect(masters.filter((g) => /admin/.test(g))).toEqual([]);
  // Reader on the group, Officer on two secrets, User on the ten a master fetches.
  expect(masters).toHaveLength(1 + 2 + 10);
  expect(grants("dns")).toEqual([
    "Private DNS Zone Contributor privateDnsZones/demo.k8s",
    "Reader resourceGroups/kubebake-demo",
    expect.stringMatching(/^Storage Blob Data Owner storageAccounts\/kbdemo[0-9a-f]{10}$/),
  ]);
});
