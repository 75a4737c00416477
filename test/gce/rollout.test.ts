/**
 * A new image on GCE: apply makes new templates, points the groups at them and replaces the instances
 * itself, masters one at a time (one etcd voter), minions by batchPercent; the old templates go once no
 * group uses them, and a second apply changes nothing.
 */
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { addImage, apply, gceClusterYaml, startCloud, writeSpec } from "./fixture";

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
