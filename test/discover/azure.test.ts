/**
 * The discovery reconciler on Azure: the members of two Flexible scale sets and their NICs for the truth,
 * a Private DNS zone whose record sets swap by ETag, all served by the fake ARM that checks every request
 * and every answer against Azure's descriptions. Both ways to call ARM (REST over fetch, the official
 * clients) drive the same ports.
 */
import type { VirtualMachineScaleSet } from "@azure/arm-compute";
import { InvocationContext, type EventGridEvent, type Timer } from "@azure/functions";
import { createAzureHandler } from "../../lambdas/dns-discovery-azure/handler";
import {
  azureDiscoveryPorts,
  azureMemberOf,
  azureZoneId,
  classifyAzureError,
  privateIpsOf,
  type AzureDiscoveryApi,
  type AzureRecordSet,
  type AzureVm,
} from "../../src/discover/azure";
import { restDiscoveryApi } from "../../src/discover/azure-rest";
import { sdkDiscoveryApi } from "../../src/discover/azure-sdk";
import { reconcile, ReconcileFailed } from "../../src/discover/reconcile";
import { azureClients, type AzureClients } from "../../src/launch/azure/clients";
import { startAzureCloud, type AzureCloud } from "../fakes/azure/cloud";
import { httpsFetch } from "../fakes/azure/https-fetch";
import { credential } from "../fakes/azure/sdk";
import { demoOptions } from "./model";

const SUB = "00000000-0000-4000-8000-000000000001";
const RG = "kubebake-demo";
const GROUP = `/subscriptions/${SUB}/resourceGroups/${RG}`;
const ZONE = "demo.k8s";
const ZONE_ID = azureZoneId(SUB, RG, ZONE);
const IMAGE = `${GROUP}/providers/Microsoft.Compute/images/kubebake-1`;
const SUBNET = `${GROUP}/providers/Microsoft.Network/virtualNetworks/kubebake-demo/subnets/nodes`;
const wait = { updateIntervalInMs: 0 };
const target = { subscription: SUB, resourceGroup: RG, cluster: "demo" };
const options = { ...demoOptions, zoneId: ZONE_ID, maxValues: 20, baseDelayMs: 1 };

test.each<[string, string, Partial<AzureVm>]>([
  ["built and running", "InService", { statuses: ["ProvisioningState/succeeded", "PowerState/running"] }],
  ["updated while it runs", "InService", { statuses: ["ProvisioningState/updating", "PowerState/running"] }],
  ["being created, no power state yet", "Pending", { statuses: ["ProvisioningState/creating"] }],
  ["being created, starting", "Pending", { statuses: ["ProvisioningState/creating", "PowerState/starting"] }],
  ["built, starting", "Pending", { statuses: ["ProvisioningState/succeeded", "PowerState/starting"] }],
  [
    "being deleted",
    "azure:deleting:running",
    { statuses: ["ProvisioningState/deleting", "PowerState/running"] },
  ],
  [
    "deallocated",
    "azure:succeeded:deallocated",
    { statuses: ["ProvisioningState/succeeded", "PowerState/deallocated"] },
  ],
  ["stopped", "azure:succeeded:stopped", { statuses: ["ProvisioningState/succeeded", "PowerState/stopped"] }],
  [
    "failed (with its error code)",
    "azure:failed:running",
    { statuses: ["ProvisioningState/failed/InternalError", "PowerState/running"] },
  ],
  ["without an instance view", "azure:succeeded:unknown", { provisioningState: "Succeeded", statuses: [] }],
])("a VM %s is, in the reconciler's words, %s", (_, lifecycleState, vm) => {
  expect(
    azureMemberOf({ id: `${GROUP}/providers/Microsoft.Compute/virtualMachines/M_1`, ...vm } as AzureVm),
  ).toEqual({
    instanceId: `${GROUP}/providers/Microsoft.Compute/virtualMachines/m_1`.toLowerCase(),
    lifecycleState,
    healthStatus: "Healthy",
  });
});

test.each<[string, string, object]>([
  ["412 (a stale If-Match)", "RecordConflict", { status: 412 }],
  ["409", "RecordConflict", { statusCode: 409 }],
  ["429", "Transient", { status: 429 }],
  ["503", "Transient", { statusCode: 503 }],
  ["a reset connection", "Transient", { code: "ECONNRESET" }],
  ["the official clients' network failure", "Transient", { code: "REQUEST_SEND_ERROR" }],
  ["400", "Rejected", { statusCode: 400 }],
  ["403", "Error", { status: 403 }],
])("ARM's %s is, to the reconciler, %s", (_, kind, fields) => {
  expect((classifyAzureError(Object.assign(new Error("answer"), fields)) as Error).name).toBe(kind);
});

test("each VM's address is its primary NIC's primary IPv4 configuration's, whatever the case of its id", () => {
  const vm = (name: string) => `${GROUP}/providers/Microsoft.Compute/virtualMachines/${name}`;
  const ips = privateIpsOf([
    { virtualMachineId: vm("A"), primary: false, ipConfigurations: [{ privateIPAddress: "10.0.0.1" }] },
    {
      virtualMachineId: vm("A"),
      primary: true,
      ipConfigurations: [
        { primary: false, privateIPAddress: "10.0.0.3" },
        { primary: true, privateIPAddress: "10.0.0.2" },
      ],
    },
    {
      virtualMachineId: vm("b"),
      ipConfigurations: [{ privateIPAddress: "fd00::1", privateIPAddressVersion: "IPv6" }],
    },
    { ipConfigurations: [{ privateIPAddress: "10.0.0.9" }] },
    { virtualMachineId: vm("c"), ipConfigurations: [{ primary: true, privateIPAddress: "10.0.0.4" }] },
  ]);
  expect([...ips]).toEqual([
    [vm("a").toLowerCase(), "10.0.0.2"],
    [vm("c").toLowerCase(), "10.0.0.4"],
  ]);
});

test("records in the core's form: lowercase FQDNs, the ETag as version; auto-registered sets are someone else's", async () => {
  const sets: AzureRecordSet[] = [
    { name: "@", type: "SOA", etag: "e0", ttl: 3600, ipv4Addresses: [] },
    { name: "Masters", type: "A", etag: "e1", ttl: 30, ipv4Addresses: ["10.0.1.4"] },
    {
      name: "etcd",
      type: "A",
      etag: "e2",
      ttl: 10,
      fqdn: "etcd.demo.k8s.",
      ipv4Addresses: ["10.0.1.9"],
      isAutoRegistered: true,
    },
  ];
  const api = { listRecordSets: async () => sets } as unknown as AzureDiscoveryApi;
  expect(await azureDiscoveryPorts(api, target).readRecords(ZONE_ID)).toEqual([
    { name: "demo.k8s.", type: "SOA", ttl: 3600, values: [], version: "e0" },
    { name: "masters.demo.k8s.", type: "A", ttl: 30, values: ["10.0.1.4"], version: "e1" },
    {
      name: "etcd.demo.k8s.",
      type: "A",
      ttl: 10,
      values: ["10.0.1.9"],
      version: "e2",
      setIdentifier: "autoRegistered",
    },
  ]);
});

function scaleSet(capacity: number, role: string): VirtualMachineScaleSet {
  return {
    location: "westeurope",
    tags: { KubernetesCluster: "demo", Role: role },
    sku: { name: "Standard_D2s_v5", capacity },
    orchestrationMode: "Flexible",
    platformFaultDomainCount: 1,
    virtualMachineProfile: {
      storageProfile: { imageReference: { id: IMAGE } },
      osProfile: {
        computerNamePrefix: `demo-${role}-`,
        adminUsername: "kubebake",
        linuxConfiguration: {
          disablePasswordAuthentication: true,
          ssh: { publicKeys: [{ path: "/home/kubebake/.ssh/authorized_keys", keyData: "ssh-ed25519 AAAA" }] },
        },
      },
      networkProfile: {
        networkApiVersion: "2020-11-01",
        networkInterfaceConfigurations: [
          { name: "nic", primary: true, ipConfigurations: [{ name: "ip", subnet: { id: SUBNET } }] },
        ],
      },
    },
  };
}

describe("against the fake ARM", () => {
  let cloud: AzureCloud;
  let clients: AzureClients;

  /**
   * The cluster's group: two running masters and a third being created (an etcd peer, not yet an API
   * server), three minions of which one is being deleted; a stale masters record and someone's TXT record.
   */
  beforeEach(async () => {
    cloud = await startAzureCloud();
    clients = azureClients(credential, SUB, { resourceManager: cloud.endpoint, ca: cloud.ca });
    await clients.resources.resourceGroups.createOrUpdate(RG, { location: "westeurope" });
    await clients.network.virtualNetworks.beginCreateOrUpdateAndWait(
      RG,
      "kubebake-demo",
      {
        location: "westeurope",
        addressSpace: { addressPrefixes: ["10.0.0.0/16"] },
        subnets: [{ name: "nodes", addressPrefix: "10.0.1.0/24" }],
      },
      wait,
    );
    cloud.images.put({
      id: IMAGE,
      name: "kubebake-1",
      type: "Microsoft.Compute/images",
      location: "westeurope",
    });
    await clients.privateDns.privateZones.beginCreateOrUpdateAndWait(RG, ZONE, { location: "global" }, wait);
    const sets = clients.compute.virtualMachineScaleSets;
    await sets.beginCreateOrUpdateAndWait(RG, "kubebake-demo-masters", scaleSet(2, "masters"), wait);
    await sets.beginCreateOrUpdateAndWait(RG, "kubebake-demo-minions", scaleSet(3, "minions"), wait);
    await sets.beginUpdate(RG, "kubebake-demo-masters", { sku: { capacity: 3 } }, wait);
    await clients.compute.virtualMachines.beginDelete(RG, minions()[2]!.name, wait);
    await putRecord("A", "masters", { aRecords: [{ ipv4Address: "10.0.1.99" }] });
    await putRecord("TXT", "notes", { txtRecords: [{ value: ["owner=ops"] }] });
  });
  afterEach(async () => {
    expect(cloud.fake.violations).toEqual([]);
    await cloud.stop();
  });

  const minions = () => cloud.vmss.vms.filter((vm) => vm.scaleSetId.endsWith("-minions"));
  const putRecord = (type: "A" | "TXT", name: string, body: object) =>
    clients.privateDns.recordSets.createOrUpdate(RG, ZONE, type, name, { ttl: 30, ...body });
  const values = (name: string, type = "A") => {
    const set = cloud.dns.recordSet(ZONE_ID, type, name);
    if (!set) return undefined;
    return ((set.properties.aRecords ?? []) as { ipv4Address: string }[]).map((r) => r.ipv4Address);
  };
  const TRUTH = {
    masters: ["10.0.1.4", "10.0.1.5"],
    minions: ["10.0.1.6", "10.0.1.7"],
    etcd: ["10.0.1.4", "10.0.1.5", "10.0.1.9"],
  };

  /** Each way to call ARM, and whether it retries throttling itself (the official clients' pipeline does). */
  const apis: [string, () => AzureDiscoveryApi, boolean][] = [
    [
      "REST over fetch",
      () =>
        restDiscoveryApi({
          subscription: SUB,
          baseUrl: cloud.endpoint,
          headers: async () => new Headers({ authorization: "Bearer t" }),
          fetch: httpsFetch(cloud.ca),
        }),
      false,
    ],
    ["the official clients", () => sdkDiscoveryApi(clients), true],
  ];

  describe.each(apis)("azure ports over %s", (_, makeApi, retriesItself) => {
    test("the records become the scale sets' truth; a second pass writes nothing; other records stay", async () => {
      const ports = azureDiscoveryPorts(makeApi(), target);
      const first = await reconcile(ports, options);
      expect(first.desired).toEqual(TRUTH);
      expect([values("masters"), values("minions"), values("etcd")]).toEqual([
        TRUTH.masters,
        TRUTH.minions,
        TRUTH.etcd,
      ]);
      expect(cloud.dns.recordSet(ZONE_ID, "A", "etcd")?.properties.ttl).toBe(30);
      expect(cloud.dns.recordSet(ZONE_ID, "TXT", "notes")?.properties.txtRecords).toEqual([
        { value: ["owner=ops"] },
      ]);
      const again = await reconcile(ports, options);
      expect(again.writes).toEqual([]);
    });

    test("another writer between our read and our write: the stale ETag is refused (412), the next pass converges", async () => {
      const api = makeApi();
      const raced = new Set<string>();
      // Replaces (masters) or creates (etcd) the record just before our conditional PUT.
      const racing: AzureDiscoveryApi = {
        ...api,
        async putRecordSet(zone, name, record, condition) {
          if (!raced.has(name)) {
            raced.add(name);
            await putRecord("A", name, { aRecords: [{ ipv4Address: "10.0.1.77" }] });
          }
          return api.putRecordSet(zone, name, record, condition);
        },
      };
      const result = await reconcile(azureDiscoveryPorts(racing, target), options);
      expect(result.conflicts).toBe(3);
      expect([values("masters"), values("minions"), values("etcd")]).toEqual([
        TRUTH.masters,
        TRUTH.minions,
        TRUTH.etcd,
      ]);
    });

    test("a scale set that is gone has no members: its record is deleted (If-Match), and a changed one is re-read first", async () => {
      await putRecord("A", "minions", { aRecords: [{ ipv4Address: "10.0.1.7" }] });
      await clients.compute.virtualMachineScaleSets.beginDeleteAndWait(RG, "kubebake-demo-minions", wait);
      const api = makeApi();
      let raced = false;
      const racing: AzureDiscoveryApi = {
        ...api,
        async deleteRecordSet(zone, name, condition) {
          if (!raced) {
            raced = true;
            await putRecord("A", name, { aRecords: [{ ipv4Address: "10.0.1.66" }] });
          }
          return api.deleteRecordSet(zone, name, condition);
        },
      };
      const result = await reconcile(azureDiscoveryPorts(racing, target), options);
      expect(result.conflicts).toBe(1);
      expect(result.writes.find((w) => w.name === "minions.demo.k8s.")).toEqual({
        name: "minions.demo.k8s.",
        from: ["10.0.1.66"],
        to: null,
      });
      expect([values("masters"), values("minions")]).toEqual([TRUTH.masters, undefined]);
    });

    test("a record of another type at one of our names is someone else's: that record fails, naming it; the others converge", async () => {
      await putRecord("TXT", "etcd", { txtRecords: [{ value: ["kept"] }] });
      const failed = await reconcile(azureDiscoveryPorts(makeApi(), target), options).catch(
        (e: unknown) => e,
      );
      expect(failed).toBeInstanceOf(ReconcileFailed);
      expect((failed as ReconcileFailed).failures.map((f) => f.record)).toEqual(["etcd.demo.k8s."]);
      expect((failed as Error).message).toMatch(/a TXT record exists at etcd\.demo\.k8s\./);
      expect(values("etcd")).toBeUndefined();
      expect(cloud.dns.recordSet(ZONE_ID, "TXT", "etcd")?.properties.txtRecords).toEqual([
        { value: ["kept"] },
      ]);
      expect([values("masters"), values("minions")]).toEqual([TRUTH.masters, TRUTH.minions]);
    });

    test("throttling (429) is tried again after a back-off", async () => {
      cloud.fake.throttle("RecordSets_CreateOrUpdate", 2, 0);
      const result = await reconcile(azureDiscoveryPorts(makeApi(), target), options);
      const throttled = cloud.fake.log.filter((l) => l.status === 429);
      expect(throttled.map((l) => l.operationId)).toEqual([
        "RecordSets_CreateOrUpdate",
        "RecordSets_CreateOrUpdate",
      ]);
      expect(result.throttles).toBe(retriesItself ? 0 : 2);
      expect(values("etcd")).toEqual(TRUTH.etcd);
    });
  });

  test("a zone of another subscription, or not a private zone's id, fails every record before anything is written", async () => {
    const ports = azureDiscoveryPorts(sdkDiscoveryApi(clients), target);
    await expect(reconcile(ports, { ...options, zoneId: azureZoneId("other", RG, ZONE) })).rejects.toThrow(
      /not in the subscription/,
    );
    await expect(reconcile(ports, { ...options, zoneId: "Z0123456789" })).rejects.toThrow(
      /not the resource id of an Azure private DNS zone/,
    );
    expect(values("masters")).toEqual(["10.0.1.99"]);
  });

  describe("the function's handler over REST", () => {
    const env = {
      CLUSTER_NAME: "demo",
      DISCOVERY_DOMAIN: "k8s",
      HOSTED_ZONE_ID: ZONE_ID,
      RECORD_TTL: "30",
      EMPTY_GROUP_POLICY: "delete",
      AZURE_SUBSCRIPTION_ID: SUB,
      AZURE_RESOURCE_GROUP: RG,
      AZURE_CLIENT_ID: "00000000-0000-4000-8000-0000000000c1",
    };
    const handlerWith = (overrides: Record<string, string | undefined> = {}) =>
      createAzureHandler({
        armUrl: cloud.endpoint,
        headers: async () => new Headers({ authorization: "Bearer t" }),
        fetch: httpsFetch(cloud.ca),
        env: { ...env, ...overrides },
      });
    /** An invocation context whose log lines (JSON, one per entry) the test reads. */
    function context() {
      const lines: { level: string; entry: Record<string, unknown> }[] = [];
      const invocation = new InvocationContext({
        functionName: "test",
        logHandler: (level, ...args) => lines.push({ level, entry: JSON.parse(String(args[0])) }),
      });
      return { invocation, lines };
    }
    const timer = { isPastDue: false } as Timer;
    const event = {
      id: "e1",
      eventType: "Microsoft.Resources.ResourceDeleteSuccess",
      subject: `${GROUP}/providers/Microsoft.Compute/virtualMachines/x`,
    } as EventGridEvent;

    test("the timer and an Event Grid event each reconcile all three records from the truth, logging one summary", async () => {
      const handler = handlerWith();
      const first = context();
      await handler.timer(timer, first.invocation);
      expect([values("masters"), values("minions"), values("etcd")]).toEqual([
        TRUTH.masters,
        TRUTH.minions,
        TRUTH.etcd,
      ]);
      expect(first.lines[0]).toEqual({
        level: "information",
        entry: expect.objectContaining({ msg: "invoked", trigger: { shape: "timer", pastDue: false } }),
      });
      expect(first.lines.at(-1)?.entry).toMatchObject({
        msg: "reconciled",
        cluster: "demo",
        masters: 2,
        minions: 2,
        etcd: 3,
        writes: 3,
      });

      // A master is deleted: the event makes the function look again, at everything.
      const [master] = cloud.vmss.vms.filter((vm) => vm.scaleSetId.endsWith("-masters"));
      await clients.compute.virtualMachines.beginDeleteAndWait(RG, master!.name, wait);
      const second = context();
      await handler.eventGrid(event, second.invocation);
      expect([values("masters"), values("etcd")]).toEqual([["10.0.1.5"], ["10.0.1.5", "10.0.1.9"]]);
      expect(second.lines[0]?.entry.trigger).toEqual({
        shape: "eventGrid",
        type: "Microsoft.Resources.ResourceDeleteSuccess",
        subject: event.subject,
        id: "e1",
      });
      expect(second.lines.at(-1)?.entry).toMatchObject({ msg: "reconciled", writes: 2 });
    });

    test("a record that cannot be reconciled makes the invocation throw (the trigger retries), after its error line", async () => {
      await putRecord("TXT", "etcd", { txtRecords: [{ value: ["kept"] }] });
      const { invocation, lines } = context();
      await expect(handlerWith().timer(timer, invocation)).rejects.toBeInstanceOf(ReconcileFailed);
      const errors = lines.filter((l) => l.level === "error").map((l) => l.entry);
      expect(errors).toEqual([
        expect.objectContaining({ msg: "record not reconciled", record: "etcd.demo.k8s." }),
      ]);
      expect(values("masters")).toEqual(TRUTH.masters);
    });

    test.each<[string, Record<string, string | undefined>, RegExp]>([
      ["no resource group", { AZURE_RESOURCE_GROUP: undefined }, /AZURE_RESOURCE_GROUP/],
      ["a Route 53 zone id", { HOSTED_ZONE_ID: "Z0123" }, /not the resource id of an Azure private DNS zone/],
      [
        "another cluster's zone",
        { HOSTED_ZONE_ID: azureZoneId(SUB, RG, "other.k8s") },
        /not the cluster's demo\.k8s/,
      ],
    ])("a bad configuration (%s) is logged and thrown before any call", async (_, overrides, message) => {
      const { invocation, lines } = context();
      await expect(handlerWith(overrides).eventGrid(event, invocation)).rejects.toThrow(message);
      expect(lines.map((l) => [l.level, l.entry.msg])).toEqual([
        ["information", "invoked"],
        ["error", "bad configuration"],
      ]);
      expect(values("masters")).toEqual(["10.0.1.99"]);
    });
  });
});
