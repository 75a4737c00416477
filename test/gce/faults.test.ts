/**
 * A fault at every kind of step of a GCE apply, then a rerun: the rerun converges, a third run changes
 * nothing, and destroy leaves nothing. Faults: Google refuses the call (500); the call's effect happens but
 * its answer is lost (the connection drops); a Compute operation ends in error.
 */
import { formatChange } from "../../src/launch/changes";
import { googleError, type FakeResponse } from "../fakes/gcp/fake";
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { apply, destroy, gceClusterYaml, startCloud, writeSpec } from "./fixture";

const READS = /\.(get|list|aggregatedList|getIamPolicy|wait|listManagedInstances|access)$/;
const path = writeSpec(gceClusterYaml());

/** The mutating method ids of a full apply from nothing, with how often each is called. */
async function applySteps(): Promise<Map<string, number>> {
  const cloud = await startCloud();
  try {
    await apply(cloud, path);
    const counts = new Map<string, number>();
    for (const { methodId } of cloud.fake.log)
      if (methodId !== "?" && !methodId.startsWith("raw ") && !READS.test(methodId))
        counts.set(methodId, (counts.get(methodId) ?? 0) + 1);
    return counts;
  } finally {
    await cloud.stop();
  }
}

type Fault = "refused" | "answer lost" | "operation failed";

/** The fault on the `nth` call (1-based) of `methodId`. */
function inject(cloud: GoogleCloud, methodId: string, nth: number, fault: Fault): void {
  const handler = cloud.fake.handler(methodId)!;
  let calls = 0;
  cloud.fake.on(methodId, async (request): Promise<FakeResponse> => {
    if (++calls !== nth) return handler(request);
    if (fault === "refused") return googleError(500, "injected");
    if (fault === "operation failed")
      cloud.resources.failNextOperation(methodId, { code: "QUOTA_EXCEEDED", message: "injected" });
    const answer = await handler(request);
    return fault === "answer lost" ? { ...answer, dropAnswer: true } : answer;
  });
}

let steps: Map<string, number>;
beforeAll(async () => {
  steps = await applySteps();
});

test("an apply makes calls of every kind it has (the cases below cover them)", () => {
  expect([...steps.keys()]).toEqual(
    expect.arrayContaining([
      "secretmanager.projects.secrets.create",
      "secretmanager.projects.secrets.addVersion",
      "compute.networks.insert",
      "compute.subnetworks.insert",
      "iam.projects.serviceAccounts.create",
      "iam.projects.roles.create",
      "cloudresourcemanager.projects.setIamPolicy",
      "compute.firewalls.insert",
      "secretmanager.projects.secrets.setIamPolicy",
      "dns.managedZones.create",
      "compute.instanceTemplates.insert",
      "compute.regionInstanceGroupManagers.insert",
    ]),
  );
});

/**
 * Where a method's last call leaves another state than its first (the PKI: every secret made but the last
 * one's value; every policy set but the last), its last call too.
 */
const LAST_CALL_MATTERS = new Set([
  "secretmanager.projects.secrets.create",
  "secretmanager.projects.secrets.addVersion",
  "secretmanager.projects.secrets.setIamPolicy",
]);

/** Each method's first call (and the last, where it matters), with each fault. */
const cases = (): [string, number, Fault][] =>
  [...steps].flatMap(([id, count]) =>
    [...new Set([1, LAST_CALL_MATTERS.has(id) ? count : 1])].flatMap((nth): [string, number, Fault][] => [
      [id, nth, "refused"],
      [id, nth, id.startsWith("compute.") ? "operation failed" : "answer lost"],
    ]),
  );

test("every step's fault fails the apply, and a rerun converges", async () => {
  const seen: string[] = [];
  for (const [id, nth, fault] of cases()) {
    const methodId = `${id} #${nth}`;
    const cloud = await startCloud();
    try {
      inject(cloud, id, nth, fault);
      await expect(apply(cloud, path)).rejects.toThrow();
      await apply(cloud, path);
      const third = await apply(cloud, path);
      expect({ methodId, fault, changes: third.rec.changes.map(formatChange) }).toEqual({
        methodId,
        fault,
        changes: [],
      });
      await destroy(cloud);
      expect({ methodId, fault, left: cloud.resources.remaining("kubebake-demo") }).toEqual({
        methodId,
        fault,
        left: [],
      });
      expect({ methodId, fault, secrets: [...cloud.secrets.secrets.keys()] }).toEqual({
        methodId,
        fault,
        secrets: [],
      });
      // Only the injected fault may have been refused; every other request had Google's shape.
      expect({ methodId, fault, invalid: cloud.fake.invalid }).toEqual({ methodId, fault, invalid: [] });
      seen.push(`${methodId} ${fault}`);
    } finally {
      await cloud.stop();
    }
  }
  expect(seen.length).toBe(cases().length);
  expect(seen.length).toBe(steps.size * 2 + LAST_CALL_MATTERS.size * 2);
}, 600_000);
