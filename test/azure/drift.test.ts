/**
 * What someone changed by hand in an Azure cluster is put back by the next apply, which its plan shows
 * first; afterwards another apply changes nothing. (The security group's rules: test/azure/network.test.ts.)
 */
import { secretName } from "../../src/launch/azure/desired";
import { discoveryFunctionAppName } from "../../src/launch/azure/discovery-desired";
import { formatChange } from "../../src/launch/changes";
import type { AzureCloud } from "../fakes/azure/cloud";
import { apply, azureClusterYaml, clientsOf, SUBSCRIPTION, useAzureCloud, writeSpec } from "./fixture";

const azure = useAzureCloud();
let cloud: AzureCloud;
beforeEach(() => {
  cloud = azure.cloud();
});

const GROUP = "kubebake-demo";
const spec = azureClusterYaml();
const path = writeSpec(spec);

async function drifted(change: () => Promise<void>): Promise<string[]> {
  await apply(cloud, path);
  await change();
  const plan = (await apply(cloud, path, true)).rec.changes.map(formatChange);
  const made = (await apply(cloud, path)).rec.changes.map(formatChange);
  expect(made).toEqual(plan);
  expect((await apply(cloud, path)).rec.changes.map(formatChange)).toEqual([]);
  return made;
}

const members = (role: string) =>
  cloud.vmss.vms
    .filter((vm) => vm.name.startsWith(`kubebake-demo-${role}_`))
    .map((vm) => `${vm.vmSize} ${vm.provisioningState} ${vm.powerState}`);

const scaleSetSku = (role: string) =>
  cloud.vmss.scaleSets.get(
    `/subscriptions/${SUBSCRIPTION}/resourceGroups/${GROUP}/providers/Microsoft.Compute/virtualMachineScaleSets/kubebake-demo-${role}`.toLowerCase(),
  )!.resource.sku;

test("the masters' capacity lowered by hand is raised back; the minions' is brought within min..max", async () => {
  const sets = clientsOf(cloud).compute.virtualMachineScaleSets;
  const made = await drifted(async () => {
    await sets.beginUpdateAndWait(GROUP, "kubebake-demo-masters", { sku: { capacity: 2 } });
    await sets.beginUpdateAndWait(GROUP, "kubebake-demo-minions", { sku: { capacity: 0 } });
  });
  expect(made).toEqual([
    "~ update scale-set kubebake-demo-masters (3 × Standard_D2s_v5)",
    "~ update scale-set kubebake-demo-minions (1 × Standard_D4s_v5)",
  ]);
  expect(members("masters")).toEqual(Array(3).fill("Standard_D2s_v5 Succeeded running"));
  expect(members("minions")).toEqual(["Standard_D4s_v5 Succeeded running"]);
});

test("the minions' capacity changed within min..max is the autoscaler's: left as it is", async () => {
  await apply(cloud, path);
  await clientsOf(cloud).compute.virtualMachineScaleSets.beginUpdateAndWait(GROUP, "kubebake-demo-minions", {
    sku: { capacity: 4 },
  });
  expect((await apply(cloud, path)).rec.changes).toEqual([]);
  expect(scaleSetSku("minions")).toMatchObject({ capacity: 4 });
});

test("a scale set's VM size changed by hand is put back", async () => {
  const made = await drifted(async () => {
    await clientsOf(cloud).compute.virtualMachineScaleSets.beginUpdateAndWait(
      GROUP,
      "kubebake-demo-minions",
      {
        sku: { name: "Standard_D8s_v5" },
      },
    );
  });
  expect(made).toEqual(["~ update scale-set kubebake-demo-minions (2 × Standard_D4s_v5)"]);
  expect(scaleSetSku("minions")).toMatchObject({ name: "Standard_D4s_v5", capacity: 2 });
});

test("a deleted master is replaced: Flexible lowered the capacity, the apply raises it back", async () => {
  const made = await drifted(async () => {
    const [gone] = cloud.vmss.vms.filter((vm) => vm.name.startsWith("kubebake-demo-masters_"));
    await clientsOf(cloud).compute.virtualMachines.beginDeleteAndWait(GROUP, gone!.name);
    expect(scaleSetSku("masters")).toMatchObject({ capacity: 2 });
  });
  expect(made).toEqual(["~ update scale-set kubebake-demo-masters (3 × Standard_D2s_v5)"]);
  expect(members("masters")).toEqual(Array(3).fill("Standard_D2s_v5 Succeeded running"));
});

test("a secret's role assignment deleted by hand is made again", async () => {
  const made = await drifted(async () => {
    const minions = cloud.msi.all().find((i) => i.name === "kubebake-demo-minions")!;
    const grant = cloud.rbac
      .forPrincipal(minions.principalId)
      .find((a) => a.scope.endsWith(`/secrets/${secretName("ca.crt")}`))!;
    await clientsOf(cloud).authorization.roleAssignments.deleteById(grant.id);
  });
  expect(made).toEqual([
    `+ create role-assignment minions: keyVaultSecretsUser (secret ${secretName("ca.crt")})`,
  ]);
});

test("the zone's link to the network removed by hand is made again", async () => {
  const made = await drifted(async () => {
    await clientsOf(cloud).privateDns.virtualNetworkLinks.beginDeleteAndWait(
      GROUP,
      "demo.k8s",
      "kubebake-demo-nodes",
    );
  });
  expect(made).toEqual(["+ create zone-link demo.k8s/kubebake-demo-nodes (kubebake-demo)"]);
});

test("a function app setting changed by hand is put back", async () => {
  const app = discoveryFunctionAppName(SUBSCRIPTION, { name: "demo" });
  const web = () => clientsOf(cloud).web.webApps;
  let settings: Record<string, string> = {};
  const made = await drifted(async () => {
    settings = (await web().listApplicationSettings(GROUP, app)).properties!;
    await web().updateApplicationSettings(GROUP, app, {
      properties: { ...settings, AZURE_RESOURCE_GROUP: "elsewhere" },
    });
  });
  expect(made).toEqual([`~ update function-app ${app} (settings)`]);
  expect((await web().listApplicationSettings(GROUP, app)).properties).toEqual(settings);
});
