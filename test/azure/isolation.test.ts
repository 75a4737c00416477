/**
 * Clusters on Azure never touch what is not theirs: two clusters in one subscription live side by side,
 * applying and destroying one leaves the other's resources exactly as they were; a resource holding one of
 * a cluster's names but another owner is refused (exit 8) and left unchanged; two clusters in one operator
 * resource group each keep their own id tag, and destroying one leaves the group, its other tags and the
 * other cluster alone.
 */
import { ExitCode, KubebakeError } from "../../src/errors";
import { CLUSTER_TAG, OWNER_TAG } from "../../src/launch/azure/desired";
import { ownerLabel } from "../../src/launch/azure/discovery-desired";
import { clusterIdTag } from "../../src/launch/azure/group";
import { formatChange } from "../../src/launch/changes";
import { type AzureCloud } from "../fakes/azure/cloud";
import {
  accountOf,
  apply,
  azureClusterYaml,
  clientsOf,
  destroy,
  SUBSCRIPTION,
  useAzureCloud,
  writeSpec,
} from "./fixture";

const specOf = (name: string, resourceGroup?: string) =>
  azureClusterYaml({ name, ...(resourceGroup ? { resourceGroup } : {}) });
const ACCOUNTS = [
  ...["demo", "other"].map((name) => accountOf(name)),
  ...["demo", "other"].map((name) => accountOf(name, "platform")),
];

const azure = useAzureCloud(ACCOUNTS);
let cloud: AzureCloud;
beforeEach(() => {
  cloud = azure.cloud();
});

type Tags = Record<string, string> | undefined;

/** Every resource the fake's models hold, with its owner (a role assignment's: its principal's). */
function everything(cloud: AzureCloud): { id: string; owner?: string; value: unknown }[] {
  const tagged = (id: string, tags: Tags, value: unknown) => ({ id, owner: tags?.[OWNER_TAG], value });
  const { network } = cloud;
  const identities = cloud.msi.all();
  const ownerOfPrincipal = (principalId: string) =>
    identities.find((i) => i.principalId === principalId)?.tags?.[OWNER_TAG];
  const labelled = (labels: unknown) =>
    (Array.isArray(labels) ? labels.map(String) : [])
      .find((label) => label.startsWith(ownerLabel("")))
      ?.slice(ownerLabel("").length);
  return [
    ...cloud.groups.all().map((g) => ({
      id: `/subscriptions/${g.subscriptionId}/resourceGroups/${g.name}`,
      owner: g.tags?.[OWNER_TAG],
      value: g,
    })),
    ...[
      network.virtualNetworks,
      network.securityGroups,
      network.applicationSecurityGroups,
      network.publicIpAddresses,
      network.natGateways,
    ].flatMap((map) => [...map.values()].map((r) => tagged(r.id, r.tags, r))),
    ...identities.map((i) => tagged(i.id, i.tags, i)),
    ...cloud.rbac.all().map((a) => ({ id: a.id, owner: ownerOfPrincipal(a.principalId), value: a })),
    ...[...cloud.dns.zones.values()].map((z) => tagged(z.id, z.tags, z)),
    ...[...cloud.vmss.scaleSets.values()].map((s) =>
      tagged(String(s.resource.id), s.resource.tags as Tags, s),
    ),
    ...cloud.vmss.vms.map((vm) => tagged(vm.id, vm.tags, vm)),
    ...[...cloud.keyVault.vaults.values()].map((v) =>
      tagged(String(v.resource.id), v.resource.tags as Tags, { ...v, plane: undefined }),
    ),
    ...[...cloud.web.sites.values()].map((s) => tagged(s.id, s.resource.tags as Tags, s)),
    ...[...cloud.web.plans.values()].map((p) => tagged(String(p.resource.id), p.resource.tags as Tags, p)),
    ...[...cloud.storage.accounts.values()].map((a) =>
      tagged(String(a.resource.id), a.resource.tags as Tags, a),
    ),
    ...[...cloud.eventGrid.topics.values()].map((t) => tagged(String(t.id), t.tags as Tags, t)),
    ...[...cloud.eventGrid.subscriptions.values()].map((s) => ({
      id: String(s.id),
      owner: labelled((s.properties as { labels?: unknown } | undefined)?.labels),
      value: s,
    })),
  ];
}

/** A deep copy of everything a cluster owns, as its resources are now (Maps as their entries). */
function stateOf(cloud: AzureCloud, clusterId: string): unknown[] {
  const owned = everything(cloud)
    .filter((r) => r.owner === clusterId)
    .sort((a, b) => a.id.localeCompare(b.id));
  return JSON.parse(
    JSON.stringify(owned, (_key, value: unknown) => (value instanceof Map ? [...value.entries()] : value)),
  ) as unknown[];
}

const clusterIdOf = (cloud: AzureCloud, group: string, cluster: string) =>
  cloud.groups.get(SUBSCRIPTION, group)?.tags?.[clusterIdTag(cluster)];

/** The mutating requests ARM got so far (some reads are POSTs: lists, name checks). */
const writes = (cloud: AzureCloud) =>
  cloud.fake.log.filter(
    (e) => e.method !== "GET" && !/_(List\w*|CheckNameAvailability)$/.test(e.operationId ?? ""),
  );

test("two clusters in one subscription: applying and destroying one leaves the other's resources as they were", async () => {
  const other = writeSpec(specOf("other"));
  const demo = writeSpec(specOf("demo"));
  await apply(cloud, other);
  const otherId = clusterIdOf(cloud, "kubebake-other", "other")!;
  const before = stateOf(cloud, otherId);
  expect(before.length).toBeGreaterThan(25);

  await apply(cloud, demo);
  const demoId = clusterIdOf(cloud, "kubebake-demo", "demo")!;
  expect(demoId).not.toBe(otherId);
  expect(stateOf(cloud, demoId).length).toBe(before.length);
  expect(stateOf(cloud, otherId)).toEqual(before);

  await destroy(cloud, demo);
  expect(stateOf(cloud, demoId)).toEqual([]);
  expect(stateOf(cloud, otherId)).toEqual(before);
  expect((await apply(cloud, other)).rec.changes.map(formatChange)).toEqual([]);
});

/** Where each kind of the cluster's resources keeps its tags in the fake. */
const TAGS_OF: Record<string, (cloud: AzureCloud) => Tags> = {
  "application security group": (c) => c.network.applicationSecurityGroups.values().next().value?.tags,
  "managed identity": (c) => c.msi.all().find((i) => i.name === "kubebake-demo-minions")?.tags,
  "key vault": (c) => [...c.keyVault.vaults.values()][0]?.resource.tags as Tags,
  "private DNS zone": (c) => [...c.dns.zones.values()][0]?.tags,
  "storage account": (c) => [...c.storage.accounts.values()][0]?.resource.tags as Tags,
  "app service plan": (c) => [...c.web.plans.values()][0]?.resource.tags as Tags,
  "function app": (c) => [...c.web.sites.values()][0]?.resource.tags as Tags,
  "scale set": (c) =>
    [...c.vmss.scaleSets.values()].find((s) => String(s.resource.id).endsWith("-minions"))?.resource
      .tags as Tags,
};

test("a resource with one of the cluster's names and another owner is refused (exit 8) and left as it is", async () => {
  const path = writeSpec(specOf("demo"));
  await apply(cloud, path);
  const refusals: string[] = [];
  for (const [kind, tagsOf] of Object.entries(TAGS_OF)) {
    const tags = tagsOf(cloud)!;
    const ours = tags[OWNER_TAG]!;
    tags[OWNER_TAG] = "kb-someone-else";
    const lookAlike = JSON.stringify(everything(cloud).find((r) => r.owner === "kb-someone-else"));
    const writesBefore = writes(cloud).length;
    const refused = await apply(cloud, path).catch((error: unknown) => error);
    expect({ kind, exitCode: (refused as KubebakeError).exitCode }).toEqual({
      kind,
      exitCode: ExitCode.unsafeState,
    });
    expect(refused).toBeInstanceOf(KubebakeError);
    refusals.push((refused as Error).message);
    expect({ kind, writes: writes(cloud).slice(writesBefore) }).toEqual({ kind, writes: [] });
    expect(JSON.stringify(everything(cloud).find((r) => r.owner === "kb-someone-else"))).toBe(lookAlike);
    tags[OWNER_TAG] = ours;
  }
  expect(refusals).toEqual(
    Object.keys(TAGS_OF).map((kind) =>
      expect.stringMatching(
        new RegExp(`^${kind} \\S+ exists but is not this cluster's \\(its owner is kb-someone-else\\)`),
      ),
    ),
  );
  expect((await apply(cloud, path)).rec.changes).toEqual([]);
});

test("a resource group of the cluster's name that is not the cluster's stops the first apply before anything is made", async () => {
  await clientsOf(cloud).resources.resourceGroups.createOrUpdate("kubebake-demo", {
    location: "westeurope",
    tags: { owner: "someone" },
  });
  const writesBefore = writes(cloud).length;
  const refused = await apply(cloud, writeSpec(specOf("demo"))).catch((error: unknown) => error);
  expect(refused).toBeInstanceOf(KubebakeError);
  expect((refused as KubebakeError).exitCode).toBe(ExitCode.unsafeState);
  expect((refused as Error).message).toMatch(/resource group kubebake-demo exists but is not cluster demo's/);
  expect(writes(cloud).slice(writesBefore)).toEqual([]);
  expect(cloud.groups.get(SUBSCRIPTION, "kubebake-demo")!.tags).toEqual({ owner: "someone" });
});

test("two clusters in one operator group: each its own id tag; destroying one leaves the group and the other alone", async () => {
  await clientsOf(cloud).resources.resourceGroups.createOrUpdate("platform", {
    location: "westeurope",
    tags: { owner: "ops", costCenter: "42" },
  });
  const demo = writeSpec(specOf("demo", "platform"));
  const other = writeSpec(specOf("other", "platform"));
  await apply(cloud, demo);
  await apply(cloud, other);
  const demoId = clusterIdOf(cloud, "platform", "demo")!;
  const otherId = clusterIdOf(cloud, "platform", "other")!;
  expect(cloud.groups.get(SUBSCRIPTION, "platform")!.tags).toEqual({
    owner: "ops",
    costCenter: "42",
    [clusterIdTag("demo")]: demoId,
    [clusterIdTag("other")]: otherId,
  });
  expect(demoId).not.toBe(otherId);
  const before = stateOf(cloud, otherId);
  expect(before.length).toBeGreaterThan(25);
  expect((await apply(cloud, demo)).rec.changes).toEqual([]);

  // One system topic per source: demo made the group's, other's events come through it too.
  const topicId = `/subscriptions/${SUBSCRIPTION}/resourceGroups/platform/providers/Microsoft.EventGrid/systemTopics/kubebake-demo-events`;
  const topic = () => everything(cloud).find((r) => r.id === topicId);
  expect(topic()?.owner).toBe(demoId);

  await destroy(cloud, demo);
  expect(cloud.groups.get(SUBSCRIPTION, "platform")!.tags).toEqual({
    owner: "ops",
    costCenter: "42",
    [clusterIdTag("other")]: otherId,
  });
  expect(stateOf(cloud, demoId)).toEqual([]);
  // The topic other still uses is handed to it; everything else of other's is as it was.
  expect(topic()?.owner).toBe(otherId);
  expect((topic()?.value as { tags: Tags }).tags).not.toHaveProperty(CLUSTER_TAG);
  expect(stateOf(cloud, otherId).filter((r) => (r as { id: string }).id !== topicId)).toEqual(before);
  expect((await apply(cloud, other)).rec.changes.map(formatChange)).toEqual([]);

  await destroy(cloud, other);
  expect(cloud.groups.get(SUBSCRIPTION, "platform")!.tags).toEqual({ owner: "ops", costCenter: "42" });
  const inGroup = everything(cloud).filter((r) => r.id.toLowerCase().includes("/resourcegroups/platform/"));
  expect(inGroup.map((r) => r.id)).toEqual([]);
});
