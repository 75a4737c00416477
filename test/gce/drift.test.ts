/**
 * What someone changed by hand in a GCE cluster is put back by the next apply, which its plan shows first;
 * afterwards another apply changes nothing.
 */
import { formatChange } from "../../src/launch/changes";
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { apply, clientsOf, gceClusterYaml, PROJECT, REGION, startCloud, writeSpec } from "./fixture";

let cloud: GoogleCloud;
beforeEach(async () => {
  cloud = await startCloud();
});
afterEach(async () => {
  expect(cloud.fake.invalid).toEqual([]);
  await cloud.stop();
});

const path = writeSpec(gceClusterYaml());

async function drifted(change: () => Promise<void>): Promise<string[]> {
  await apply(cloud, path);
  await change();
  const plan = (await apply(cloud, path, true)).rec.changes.map(formatChange);
  const made = (await apply(cloud, path)).rec.changes.map(formatChange);
  expect(made).toEqual(plan);
  expect((await apply(cloud, path)).rec.changes).toEqual([]);
  return made;
}

test("a firewall rule opened wider is narrowed again", async () => {
  const clients = clientsOf(cloud);
  const made = await drifted(async () => {
    const [op] = await clients.firewalls.patch({
      project: PROJECT,
      firewall: "kubebake-demo-api-operators",
      firewallResource: { name: "kubebake-demo-api-operators", sourceRanges: ["0.0.0.0/0"] },
    });
    await clients.globalOperations.wait({
      project: PROJECT,
      operation: (op.latestResponse as { name: string }).name,
    });
  });
  expect(made).toEqual(["~ update firewall-rule kubebake-demo-api-operators (tcp 6443)"]);
  expect(cloud.resources.firewalls.get("kubebake-demo-api-operators")!.sourceRanges).toEqual([
    "203.0.113.0/24",
  ]);
});

test("a member added to a secret's policy is removed; a deleted rule is made again", async () => {
  const clients = clientsOf(cloud);
  const made = await drifted(async () => {
    const resource = `projects/${PROJECT}/secrets/kubebake-demo-ca-key`;
    const [policy] = await clients.secrets.getIamPolicy({ resource });
    const minions = `serviceAccount:kb-demo-minions@${PROJECT}.iam.gserviceaccount.com`;
    await clients.secrets.setIamPolicy({
      resource,
      policy: {
        etag: policy.etag,
        bindings: [
          ...(policy.bindings ?? []),
          { role: "roles/secretmanager.secretAccessor", members: [minions] },
        ],
      },
    });
    const [op] = await clients.firewalls.delete({ project: PROJECT, firewall: "kubebake-demo-etcd" });
    await clients.globalOperations.wait({
      project: PROJECT,
      operation: (op.latestResponse as { name: string }).name,
    });
  });
  expect(made).toEqual([
    "+ create firewall-rule kubebake-demo-etcd (tcp 2379-2380)",
    "~ update secret-policy kubebake-demo-ca-key (secretAccessor: 1)",
  ]);
});

test("a deleted group is created again, and a permission added to the masters' role is taken away", async () => {
  const clients = clientsOf(cloud);
  const made = await drifted(async () => {
    const [op] = await clients.groups.delete({
      project: PROJECT,
      region: REGION,
      instanceGroupManager: "kubebake-demo-minions",
    });
    await clients.regionOperations.wait({
      project: PROJECT,
      region: REGION,
      operation: (op.latestResponse as { name: string }).name,
    });
    const role = `v1/projects/${PROJECT}/roles/kubebake_demo_masters`;
    const found = await clients.rest<{ etag: string; includedPermissions: string[] }>("iam", "GET", role);
    await clients.rest("iam", "PATCH", `${role}?updateMask=includedPermissions`, {
      etag: found.etag,
      includedPermissions: [...found.includedPermissions, "compute.instances.delete"],
    });
  });
  expect(made).toEqual([
    "~ update custom-role kubebake_demo_masters (includedPermissions)",
    "+ create instance-group kubebake-demo-minions (2 × e2-standard-4)",
  ]);
});

test("a function running another bundle is deployed again, and its schedule is left as it is", async () => {
  const made = await drifted(async () => {
    const fn = cloud.functions.functions.get(
      `projects/${PROJECT}/locations/${REGION}/functions/kubebake-demo-dns`,
    )!;
    (fn.config as { labels: Record<string, string> }).labels["kubebake-source"] = "f".repeat(63);
  });
  expect(made).toEqual([
    expect.stringMatching(/^~ update cloud-function kubebake-demo-dns \(source [0-9a-f]{12}\)$/),
  ]);
});
