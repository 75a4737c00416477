/**
 * A new image on GCE: apply makes new templates, points the groups at them and replaces the instances
 * itself, masters one at a time (one etcd voter), minions by batchPercent; the old templates go once no
 * group uses them, and a second apply changes nothing.
 */
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { addImage, apply, gceClusterYaml, mastersPassTheGate, startCloud, writeSpec } from "./fixture";

let cloud: GoogleCloud;
beforeEach(async () => {
  cloud = await startCloud();
  addImage(cloud, "kubebake-2");
});
afterEach(async () => {
  expect(cloud.fake.invalid).toEqual([]);
  await cloud.stop();
});

const groupsOf = (size: number, batchPercent: number) =>
  gceClusterYaml({
    groups: {
      masters: { count: 3, machineType: "e2-standard-2" },
      minions: { min: 1, max: 10, desired: size, machineType: "e2-standard-4" },
    },
    rollout: { batchPercent, timeoutSeconds: 60 },
  });

const templatesOf = (role: string) =>
  [...cloud.resources.templates.keys()].filter((name) => name.startsWith(`kubebake-demo-${role}-`));

test("masters are replaced one by one, minions a batch at a time, and old templates retire", async () => {
  const first = writeSpec(groupsOf(4, 50));
  await apply(cloud, first);
  const before = { masters: templatesOf("masters"), minions: templatesOf("minions") };
  const masters = [...cloud.resources.instances.keys()].filter((n) => n.startsWith("kubebake-demo-masters"));
  expect(masters).toHaveLength(3);

  const next = writeSpec({ ...groupsOf(4, 50), image: { name: "kubebake-2" } });
  const plan = await apply(cloud, next, true);
  expect(plan.rec.changes.filter((c) => c.kind === "instances").map((c) => c.detail)).toEqual([
    "3 on the new template, 1 at a time",
    "4 on the new template, 2 at a time",
  ]);
  const made = await apply(cloud, next);
  const replaced = made.rec.changes.filter((c) => c.kind === "instances");
  expect(replaced.map((c) => [c.name, c.detail!.split(", ").length])).toEqual([
    ["kubebake-demo-masters", 1],
    ["kubebake-demo-masters", 1],
    ["kubebake-demo-masters", 1],
    ["kubebake-demo-minions", 2],
    ["kubebake-demo-minions", 2],
  ]);
  // Every master was replaced, none twice; every instance now runs from the new image.
  const replacedMasters = cloud.resources.replaced.filter((r) => r.group.endsWith("kubebake-demo-masters"));
  expect(new Set(replacedMasters.map((r) => r.instance)).size).toBe(3);
  for (const vm of cloud.resources.instances.values()) expect(JSON.stringify(vm)).toContain("kubebake-2");
  expect(templatesOf("masters")).not.toEqual(before.masters);
  expect(templatesOf("masters")).toHaveLength(1);
  expect(templatesOf("minions")).toHaveLength(1);
  expect((await apply(cloud, next)).rec.changes).toEqual([]);
});

test("a replaced master that never passes the launch gate stops the rollout before the next master", async () => {
  const first = writeSpec(groupsOf(2, 50));
  await apply(cloud, first);
  // The new masters boot but never vote (their etcd cannot join, say): no guest attribute.
  cloud.resources.onBoot = undefined;
  const next = writeSpec({
    ...groupsOf(2, 50),
    image: { name: "kubebake-2" },
    rollout: { timeoutSeconds: 1 },
  });
  const failed = await apply(cloud, next).catch((error: Error) => error);
  expect(String(failed)).toMatch(
    /timed out after 1 s waiting for kubebake-demo-masters to run its replaced instances and pass the launch gate \(kubebake\/launch-ready\)/,
  );
  const replacedMasters = cloud.resources.replaced.filter((r) => r.group.endsWith("kubebake-demo-masters"));
  expect(replacedMasters).toHaveLength(1);
  expect(cloud.resources.replaced.filter((r) => r.group.endsWith("kubebake-demo-minions"))).toEqual([]);
  // Once the master passes (it votes now), a rerun goes on where the rollout stopped.
  for (const vm of cloud.resources.instances.values()) mastersPassTheGate(vm);
  cloud.resources.onBoot = mastersPassTheGate;
  await apply(cloud, next);
  expect(cloud.resources.replaced.filter((r) => r.group.endsWith("kubebake-demo-masters"))).toHaveLength(3);
  expect((await apply(cloud, next)).rec.changes).toEqual([]);
}, 60_000);

test("a size change resizes the group without replacing anyone", async () => {
  await apply(cloud, writeSpec(groupsOf(2, 25)));
  const made = await apply(cloud, writeSpec(groupsOf(5, 25)));
  expect(made.rec.changes.map((c) => `${c.action} ${c.kind} ${c.name} ${c.detail}`)).toEqual([
    "update instance-group kubebake-demo-minions size 2 → 5",
  ]);
  expect(
    [...cloud.resources.instances.keys()].filter((n) => n.startsWith("kubebake-demo-minions")),
  ).toHaveLength(5);
  expect(cloud.resources.replaced).toEqual([]);
});
