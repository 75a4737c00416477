/**
 * The discovery reconciler on GCE: the official Compute and Cloud DNS clients against the fake that checks
 * every request against Google's discovery documents, Cloud DNS modelled strictly (test/fakes/gcp/dns.ts).
 */
import {
  classifyGoogleError,
  gceDiscoveryPorts,
  memberOf,
  type ManagedInstance,
} from "../../src/discover/gce";
import { reconcile } from "../../src/discover/reconcile";
import { restDiscoveryCompute } from "../../src/discover/gce-rest";
import { installDns, type DnsState } from "../fakes/gcp/dns";
import { googleError, GoogleApiFake } from "../fakes/gcp/fake";
import { headersOf } from "../../src/publish/gce/auth";
import { testAuth } from "../publish/gce/helpers";
import { demoOptions, ETCD, MASTERS, MINIONS } from "./model";

const project = "p1";
const region = "europe-west1";
const ZONE = "kubebake-demo";

test.each<[string, ManagedInstance, string, string]>([
  ["running, nothing to do", { instanceStatus: "RUNNING", currentAction: "NONE" }, "InService", "Healthy"],
  ["being created", { instanceStatus: "PROVISIONING", currentAction: "CREATING" }, "Pending", "Healthy"],
  [
    "verified after creation",
    { instanceStatus: "RUNNING", currentAction: "VERIFYING" },
    "Pending",
    "Healthy",
  ],
  ["staging", { instanceStatus: "STAGING", currentAction: "NONE" }, "Pending", "Healthy"],
  [
    "being deleted",
    { instanceStatus: "RUNNING", currentAction: "DELETING" },
    "gce:DELETING:RUNNING",
    "Healthy",
  ],
  [
    "being recreated",
    { instanceStatus: "STOPPING", currentAction: "RECREATING" },
    "gce:RECREATING:STOPPING",
    "Healthy",
  ],
  ["stopped", { instanceStatus: "TERMINATED", currentAction: "NONE" }, "gce:NONE:TERMINATED", "Healthy"],
  [
    "failing its health check",
    {
      instanceStatus: "RUNNING",
      currentAction: "NONE",
      instanceHealth: [{ detailedHealthState: "UNHEALTHY" }],
    },
    "InService",
    "Unhealthy",
  ],
  [
    "healthy by its check",
    {
      instanceStatus: "RUNNING",
      currentAction: "NONE",
      instanceHealth: [{ detailedHealthState: "HEALTHY" }],
    },
    "InService",
    "Healthy",
  ],
])("a managed instance %s is, in the reconciler's words, %s", (_, instance, lifecycleState, healthStatus) => {
  expect(memberOf({ id: "42", ...instance })).toEqual({ instanceId: "42", lifecycleState, healthStatus });
});

test.each<[string, number, string]>([
  ["Cloud DNS 412 (a stale deletion)", 412, "RecordConflict"],
  ["Cloud DNS 409 (an addition that exists)", 409, "RecordConflict"],
  ["Cloud DNS 429", 429, "Transient"],
  ["Cloud DNS 503", 503, "Transient"],
  ["Cloud DNS 400", 400, "Rejected"],
  ["Cloud DNS 403", 403, "Error"],
  ["Compute's UNAVAILABLE (gRPC 14 for HTTP 503)", 14, "Transient"],
  ["Compute's RESOURCE_EXHAUSTED (gRPC 8 for HTTP 429)", 8, "Transient"],
  ["Compute's PERMISSION_DENIED (gRPC 7)", 7, "Error"],
])("%s is, to the reconciler, %s", (_, code, kind) => {
  const error = Object.assign(new Error("answer"), { code });
  expect((classifyGoogleError(error) as Error).name).toBe(kind);
});

interface Vm {
  id: string;
  name: string;
  ip: string;
  cluster: string;
  zone: string;
  status: string;
  action: string;
  group?: "masters" | "minions";
}

describe("gce ports with the reconciler", () => {
  let fake: GoogleApiFake;
  let dns: DnsState;
  let vms: Vm[];
  const missingGroups = new Set<string>();
  const groupOf = (role: string) => `kubebake-demo-${role}`;

  function clients() {
    const headers = () => headersOf(testAuth);
    return { ...restDiscoveryCompute(fake.url, headers), dns: { baseUrl: fake.url, headers } };
  }

  beforeEach(async () => {
    fake = new GoogleApiFake(["compute.v1", "dns.v1"]);
    dns = installDns(fake);
    const asInstance = (vm: Vm) => ({
      kind: "compute#instance",
      id: vm.id,
      name: vm.name,
      status: vm.status,
      labels: { kubernetescluster: vm.cluster },
      networkInterfaces: [{ name: "nic0", networkIP: vm.ip }],
    });
    fake.on("compute.regionInstanceGroupManagers.get", (request) => {
      const role = ["masters", "minions"].find((r) => groupOf(r) === request.params.instanceGroupManager);
      if (
        !role ||
        request.params.region !== region ||
        missingGroups.has(request.params.instanceGroupManager!)
      )
        return googleError(404, "not found");
      return { json: { kind: "compute#instanceGroupManager", name: request.params.instanceGroupManager } };
    });
    fake.on("compute.regionInstanceGroupManagers.listManagedInstances", (request) => {
      const members = vms.filter(
        (vm) => vm.group && groupOf(vm.group) === request.params.instanceGroupManager,
      );
      return {
        json: {
          managedInstances: members.map((vm) => ({
            id: vm.id,
            instance: `https://www.googleapis.com/compute/v1/projects/${project}/zones/${vm.zone}/instances/${vm.name}`,
            instanceStatus: vm.status,
            currentAction: vm.action,
          })),
        },
      };
    });
    fake.on("compute.instances.aggregatedList", (request) => {
      const label = /^labels\.kubernetescluster = "([^"]+)"$/.exec(request.query.get("filter") ?? "");
      if (!label) return googleError(400, `filter ${request.query.get("filter")} is not modelled`);
      const items: Record<string, { instances: unknown[] }> = {};
      for (const vm of vms.filter((v) => v.cluster === label[1]))
        (items[`zones/${vm.zone}`] ??= { instances: [] }).instances.push(asInstance(vm));
      return { json: { kind: "compute#instanceAggregatedList", id: "x", items } };
    });
    await fake.start();
    vms = [
      {
        id: "101",
        name: "demo-masters-a",
        ip: "10.0.1.1",
        cluster: "demo",
        zone: `${region}-b`,
        status: "RUNNING",
        action: "NONE",
        group: "masters",
      },
      {
        id: "102",
        name: "demo-masters-b",
        ip: "10.0.1.2",
        cluster: "demo",
        zone: `${region}-c`,
        status: "RUNNING",
        action: "NONE",
        group: "masters",
      },
      // A replacement master on its way up: an etcd peer, not yet an API server to send clients to.
      {
        id: "103",
        name: "demo-masters-c",
        ip: "10.0.1.3",
        cluster: "demo",
        zone: `${region}-d`,
        status: "PROVISIONING",
        action: "CREATING",
        group: "masters",
      },
      {
        id: "201",
        name: "demo-minions-a",
        ip: "10.0.2.1",
        cluster: "demo",
        zone: `${region}-b`,
        status: "RUNNING",
        action: "NONE",
        group: "minions",
      },
      {
        id: "202",
        name: "demo-minions-b",
        ip: "10.0.2.2",
        cluster: "demo",
        zone: `${region}-c`,
        status: "RUNNING",
        action: "NONE",
        group: "minions",
      },
      // Scaled in: being deleted.
      {
        id: "203",
        name: "demo-minions-c",
        ip: "10.0.2.3",
        cluster: "demo",
        zone: `${region}-d`,
        status: "RUNNING",
        action: "DELETING",
        group: "minions",
      },
      // Another region's cluster of the same name, and another cluster here: neither is this one's.
      {
        id: "901",
        name: "demo-masters-x",
        ip: "10.9.0.1",
        cluster: "demo",
        zone: "us-east1-b",
        status: "RUNNING",
        action: "NONE",
      },
      {
        id: "902",
        name: "other-masters-a",
        ip: "10.8.0.1",
        cluster: "other",
        zone: `${region}-b`,
        status: "RUNNING",
        action: "NONE",
      },
    ];
    // Before: a stale masters record, and someone else's TXT record in the zone.
    dns.put(ZONE, { name: MASTERS, type: "A", ttl: 30, rrdatas: ["10.0.1.9"] });
    dns.put(ZONE, { name: "notes.demo.k8s.", type: "TXT", ttl: 300, rrdatas: ['"owner=ops"'] });
  });
  afterEach(async () => {
    missingGroups.clear();
    await fake.stop();
  });

  const options = { ...demoOptions, zoneId: ZONE, baseDelayMs: 1 };

  test("the records become the groups' truth; a second pass writes nothing; every request is one Google takes", async () => {
    // Pages of one record set: the listing's every page is turned.
    const ports = gceDiscoveryPorts(clients(), { project, region }, 1);
    const first = await reconcile(ports, options);
    expect(first.desired).toEqual({
      masters: ["10.0.1.1", "10.0.1.2"],
      minions: ["10.0.2.1", "10.0.2.2"],
      etcd: ["10.0.1.1", "10.0.1.2", "10.0.1.3"],
    });
    expect([dns.values(ZONE, MASTERS), dns.values(ZONE, MINIONS), dns.values(ZONE, ETCD)]).toEqual([
      ["10.0.1.1", "10.0.1.2"],
      ["10.0.2.1", "10.0.2.2"],
      ["10.0.1.1", "10.0.1.2", "10.0.1.3"],
    ]);
    // The TXT record beside ours is untouched.
    expect(dns.zone(ZONE).find((s) => s.type === "TXT")?.rrdatas).toEqual(['"owner=ops"']);
    const again = await reconcile(ports, options);
    expect(again.writes).toEqual([]);
    expect(fake.invalid).toEqual([]);
  });

  test("a concurrent writer's change is never deleted unseen: the stale deletion fails (412) and the next pass converges", async () => {
    const ports = gceDiscoveryPorts(clients(), { project, region });
    let raced = false;
    dns.beforeChange = (zone) => {
      if (raced) return;
      raced = true;
      dns.put(zone, { name: MASTERS, type: "A", ttl: 30, rrdatas: ["10.0.1.7"] });
    };
    const result = await reconcile(ports, options);
    expect(result.conflicts).toBeGreaterThanOrEqual(1);
    expect(dns.values(ZONE, MASTERS)).toEqual(["10.0.1.1", "10.0.1.2"]);
    expect(fake.invalid).toEqual([]);
  });

  test("a group that does not exist (yet) is no group: its record is deleted, the other kept to the truth", async () => {
    const ports = gceDiscoveryPorts(clients(), { project, region });
    vms = vms.filter((vm) => vm.group !== "minions");
    dns.put(ZONE, { name: MINIONS, type: "A", ttl: 30, rrdatas: ["10.0.2.1"] });
    missingGroups.add("kubebake-demo-minions");
    await reconcile(ports, options);
    expect([dns.values(ZONE, MASTERS), dns.values(ZONE, MINIONS)]).toEqual([
      ["10.0.1.1", "10.0.1.2"],
      undefined,
    ]);
    expect(fake.invalid).toEqual([]);
  });

  test("a change Cloud DNS refuses for good (400) fails the pass, naming why; nothing is retried forever", async () => {
    const ports = gceDiscoveryPorts(clients(), { project, region });
    dns.failChanges.push(400, 400, 400, 400, 400, 400, 400, 400, 400, 400);
    await expect(reconcile(ports, options)).rejects.toThrow(/injected failure 400/);
    expect(dns.failChanges.length).toBeGreaterThan(0);
  });

  test("a routing-policy set at one of our names is someone else's: the pass fails naming it, and writes nothing there", async () => {
    const ports = gceDiscoveryPorts(clients(), { project, region });
    dns.put(ZONE, { name: ETCD, type: "A", ttl: 30, rrdatas: [], routingPolicy: { wrr: { items: [] } } });
    await expect(reconcile(ports, options)).rejects.toThrow(/etcd\.demo\.k8s\./);
    expect(dns.zone(ZONE).find((s) => s.name === ETCD)?.routingPolicy).toEqual({ wrr: { items: [] } });
  });

  test("an answer that is not Google's JSON (a proxy's 502 page) is a transient failure, tried again", async () => {
    const ports = gceDiscoveryPorts(clients(), { project, region });
    let answered = 0;
    fake.on("dns.changes.create", () => {
      answered++;
      return { status: 502, body: Buffer.from("<html>bad gateway</html>") };
    });
    await expect(reconcile(ports, { ...options, maxAttempts: 2 })).rejects.toThrow(
      /Cloud DNS 502: <html>bad gateway/,
    );
    // Each record's change was sent twice (maxAttempts): the failure counted as transient, not as final.
    expect(answered).toBe(6);
  });

  test("throttling (429) and a server error (503) are tried again after a back-off", async () => {
    const ports = gceDiscoveryPorts(clients(), { project, region });
    dns.failChanges.push(429, 503);
    const result = await reconcile(ports, options);
    expect(result.throttles).toBeGreaterThanOrEqual(2);
    expect(dns.values(ZONE, ETCD)).toEqual(["10.0.1.1", "10.0.1.2", "10.0.1.3"]);
  });
});
