/**
 * Clusters on GCE never touch what is not theirs: a look-alike holding one of a new cluster's names stops
 * the first apply before anything is created; two clusters whose names share a prefix live side by side,
 * and destroying one leaves the other whole; a destroyed cluster's name can be used again at once (its
 * custom role, which GCP keeps deleted for weeks, is restored).
 */
import { ExitCode, KubebakeError } from "../../src/errors";
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { apply, clientsOf, destroy, gceClusterYaml, PROJECT, startCloud, writeSpec } from "./fixture";

let cloud: GoogleCloud;
beforeEach(async () => {
  cloud = await startCloud();
});
afterEach(async () => {
  expect(cloud.fake.invalid).toEqual([]);
  await cloud.stop();
});

test.each([
  ["network", "compute.networks.insert"],
  ["service account", "iam"],
  ["dns zone", "dns"],
  ["secret", "secretmanager"],
])("a look-alike %s stops the first apply before anything is created (exit 8)", async (kind) => {
  const clients = clientsOf(cloud);
  if (kind === "network") {
    const [op] = await clients.networks.insert({
      project: PROJECT,
      networkResource: { name: "kubebake-demo", autoCreateSubnetworks: false },
    });
    await clients.globalOperations.wait({
      project: PROJECT,
      operation: (op.latestResponse as { name: string }).name,
    });
  } else if (kind === "service account")
    await clients.rest("iam", "POST", `v1/projects/${PROJECT}/serviceAccounts`, {
      accountId: "kb-demo-minions",
    });
  else if (kind === "dns zone")
    await clients.rest("dns", "POST", `dns/v1/projects/${PROJECT}/managedZones`, {
      name: "kubebake-demo",
      dnsName: "elsewhere.example.",
      description: "someone's",
      visibility: "public",
    });
  else
    await clients.secrets.createSecret({
      parent: `projects/${PROJECT}`,
      secretId: "kubebake-demo-ca-key",
      secret: { replication: { automatic: {} } },
    });
  const writes = () =>
    cloud.fake.log.filter((e) => e.httpMethod !== "GET" && !/getIamPolicy|wait/.test(e.methodId));
  const before = writes().length;
  const refused = await apply(cloud, writeSpec(gceClusterYaml())).catch((error: unknown) => error);
  expect(refused).toBeInstanceOf(KubebakeError);
  expect((refused as KubebakeError).exitCode).toBe(ExitCode.unsafeState);
  expect((refused as Error).message).toMatch(/is not this cluster's/);
  expect(writes().length).toBe(before);
});

test("two clusters whose names share a prefix: destroying one leaves the other whole", async () => {
  await apply(cloud, writeSpec(gceClusterYaml()));
  await apply(cloud, writeSpec(gceClusterYaml({ name: "demo-x" })));
  const other = cloud.resources.remaining("kubebake-demo-x");
  const otherSecrets = [...cloud.secrets.secrets.keys()].filter((k) => k.includes("kubebake-demo-x-"));
  expect(other.length).toBeGreaterThan(5);
  await destroy(cloud, "demo");
  expect(cloud.resources.remaining("kubebake-demo")).toEqual(other);
  expect([...cloud.secrets.secrets.keys()].sort()).toEqual(otherSecrets.sort());
  expect((await apply(cloud, writeSpec(gceClusterYaml({ name: "demo-x" })))).rec.changes).toEqual([]);
});

test("a destroyed cluster's name is used again at once", async () => {
  const path = writeSpec(gceClusterYaml());
  await apply(cloud, path);
  await destroy(cloud);
  const again = await apply(cloud, path);
  expect(again.rec.changes.map((c) => `${c.action} ${c.kind} ${c.detail ?? ""}`)).toEqual(
    expect.arrayContaining(["update custom-role undelete", "update custom-role description"]),
  );
  expect((await apply(cloud, path)).rec.changes).toEqual([]);
});
