/**
 * The Azure launch's clients (src/launch/azure/clients.ts) send exactly the api-versions of the descriptions
 * kubebake follows: each asks the fake Azure, which refuses any other, for something that is not there.
 */
import { azureClients } from "../../src/launch/azure/clients";
import { startAzureCloud, type AzureCloud } from "../fakes/azure/cloud";
import { credential } from "../fakes/azure/sdk";
import { SUBSCRIPTION } from "./fixture";

let cloud: AzureCloud;
beforeAll(async () => {
  cloud = await startAzureCloud();
});
afterAll(() => cloud.stop());

test("every client's call passes the descriptions' checks (a 404, no violation)", async () => {
  const clients = azureClients(credential, SUBSCRIPTION, { resourceManager: cloud.endpoint, ca: cloud.ca });
  const status = (call: Promise<unknown>) =>
    call.then(
      () => 200,
      (error: { statusCode?: number }) => error.statusCode,
    );
  const rg = "kubebake-demo";
  expect(await status(clients.resources.resourceGroups.get(rg))).toBe(404);
  await clients.resources.resourceGroups.createOrUpdate(rg, { location: "westeurope" });
  const answers = {
    network: await status(clients.network.virtualNetworks.get(rg, "kubebake-demo")),
    msi: await status(clients.msi.userAssignedIdentities.get(rg, "kubebake-demo-masters")),
    privateDns: await status(clients.privateDns.privateZones.get(rg, "demo.k8s")),
    compute: await status(clients.compute.virtualMachineScaleSets.get(rg, "kubebake-demo-masters")),
    keyVault: await status(clients.keyVault.vaults.get(rg, "kb-demo-0123abcd")),
    web: await status(clients.web.webApps.get(rg, "kubebake-demo-dns")),
    storage: await status(clients.storage.storageAccounts.getProperties(rg, "kbdemo0123abcd")),
    eventGrid: await status(clients.eventGrid.systemTopics.get(rg, "kubebake-demo")),
    authorization: await status(
      clients.authorization.roleAssignments.get(
        `/subscriptions/${SUBSCRIPTION}/resourceGroups/${rg}`,
        "00000000-0000-4000-8000-00000000000a",
      ),
    ),
  };
  expect(answers).toEqual({
    network: 404,
    msi: 404,
    privateDns: 404,
    compute: 404,
    keyVault: 404,
    web: 404,
    storage: 404,
    eventGrid: 404,
    authorization: 404,
  });
  expect(cloud.fake.violations).toEqual([]);
  expect(clients.calls).toContain("network.virtualNetworks.get");
});
