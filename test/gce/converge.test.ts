/**
 * A GCE cluster end to end against the fake Google Cloud: plan, apply, a second apply that changes
 * nothing, and a destroy that leaves nothing of the cluster. Every request is checked against Google's
 * discovery documents (fake.invalid stays empty).
 */
import { formatChange } from "../../src/launch/changes";
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { apply, destroy, gceClusterYaml, startCloud, writeSpec } from "./fixture";

let cloud: GoogleCloud;
beforeEach(async () => {
  cloud = await startCloud();
});
afterEach(async () => {
  expect(cloud.fake.invalid).toEqual([]);
  await cloud.stop();
});

test("plan lists what apply makes; a second apply and plan change nothing; destroy leaves nothing", async () => {
  const path = writeSpec(gceClusterYaml());
  const plan = await apply(cloud, path, true);
  const made = await apply(cloud, path);
  expect(made.rec.changes.map(formatChange)).toEqual(plan.rec.changes.map(formatChange));
  expect(plan.rec.changes.map((c) => `${c.action} ${c.kind}`)).toEqual(
    expect.arrayContaining([
      "create network",
      "create subnetwork",
      "create dns-zone",
      "create instance-group",
    ]),
  );
  expect(
    cloud.fake.log.filter((entry) => entry.httpMethod !== "GET" && entry.status < 300).length,
  ).toBeGreaterThan(0);

  const again = await apply(cloud, path);
  expect(again.rec.changes.map(formatChange)).toEqual([]);
  expect((await apply(cloud, path, true)).rec.changes).toEqual([]);

  const groups = [...cloud.resources.groups.keys()];
  expect(groups.sort()).toEqual(
    ["kubebake-demo-masters", "kubebake-demo-minions"].map((g) => expect.stringContaining(g)),
  );

  const gone = await destroy(cloud);
  expect(gone.changes.length).toBeGreaterThan(10);
  expect(cloud.resources.remaining("kubebake-demo")).toEqual([]);
  expect([...cloud.dns.managedZones.keys()]).toEqual([]);
  expect([...cloud.secrets.secrets.keys()]).toEqual([]);
  expect([...cloud.iam.accounts.keys()]).toEqual([]);
  expect((await destroy(cloud)).changes).toEqual([]);
});

test("throttling (429) and a moment's unavailability (503) are waited out, whichever client meets them", async () => {
  const path = writeSpec(gceClusterYaml());
  cloud.fake.failNext("iam.projects.serviceAccounts.create", 429, 2);
  cloud.fake.failNext("secretmanager.projects.secrets.create", 503, 1);
  cloud.fake.failNext("compute.networks.insert", 429, 1);
  cloud.fake.failNext("cloudfunctions.projects.locations.functions.create", 429, 1);
  await apply(cloud, path);
  const statuses = (methodId: string) =>
    cloud.fake.log.filter((e) => e.methodId === methodId).map((e) => e.status);
  expect(statuses("iam.projects.serviceAccounts.create").slice(0, 3)).toEqual([429, 429, 200]);
  expect(statuses("secretmanager.projects.secrets.create").slice(0, 2)).toEqual([503, 200]);
  expect(statuses("compute.networks.insert")).toEqual([429, 200]);
  expect(statuses("cloudfunctions.projects.locations.functions.create")).toEqual([429, 200]);
  expect((await apply(cloud, path)).rec.changes).toEqual([]);
});
