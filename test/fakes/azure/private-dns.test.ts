import { NetworkManagementClient } from "@azure/arm-network";
import { PrivateDnsManagementClient, type RecordSet } from "@azure/arm-privatedns";
import { ArmFake } from "./arm-fake";
import { installNetwork, NETWORK_SPECS, NetworkState } from "./network";
import {
  installPrivateDns,
  PRIVATE_DNS_API_VERSION,
  PRIVATE_DNS_SPECS,
  PrivateDnsState,
} from "./private-dns";
import { ResourceGroupsState } from "./resource-groups";
import { clientOptions, credential, failure } from "./sdk";

const SUB = "00000000-0000-0000-0000-0000000000aa";
const RG = `/subscriptions/${SUB}/resourceGroups/rg`;
const ZONE = "kb.internal";
const VNET_ID = `${RG}/providers/Microsoft.Network/virtualNetworks/kb-vnet`;

let fake: ArmFake;
let groups: ResourceGroupsState;
let dns: PrivateDnsState;
let client: PrivateDnsManagementClient;

beforeEach(async () => {
  fake = await ArmFake.start([...PRIVATE_DNS_SPECS, ...NETWORK_SPECS]);
  groups = new ResourceGroupsState();
  groups.add(SUB, "rg", "westeurope");
  const network = installNetwork(fake, new NetworkState({ groups }));
  dns = installPrivateDns(fake, new PrivateDnsState({ groups, network }));
  client = new PrivateDnsManagementClient(credential, SUB, clientOptions(fake, PRIVATE_DNS_API_VERSION));
  const networks = new NetworkManagementClient(credential, SUB, clientOptions(fake));
  await networks.virtualNetworks.beginCreateOrUpdateAndWait("rg", "kb-vnet", {
    location: "westeurope",
    addressSpace: { addressPrefixes: ["10.0.0.0/16"] },
  });
});
afterEach(async () => {
  await fake.stop();
});

const zone = (name = ZONE, options = {}) =>
  client.privateZones.beginCreateOrUpdateAndWait(
    "rg",
    name,
    { location: "global" },
    { ...options, updateIntervalInMs: 0 },
  );
const link = (name: string, zoneName = ZONE, registrationEnabled = false, vnet = VNET_ID) =>
  client.virtualNetworkLinks.beginCreateOrUpdateAndWait(
    "rg",
    zoneName,
    name,
    { location: "global", virtualNetwork: { id: vnet }, registrationEnabled },
    { updateIntervalInMs: 0 },
  );
const aSet = (ips: string[]): RecordSet => ({
  ttl: 30,
  aRecords: ips.map((ipv4Address) => ({ ipv4Address })),
});
const ips = (set: RecordSet) => set.aRecords?.map((r) => r.ipv4Address!).sort();

test("a zone lives in 'global', comes with its SOA record set, and is listed", async () => {
  const created = await zone();
  expect(created).toMatchObject({
    id: `${RG}/providers/Microsoft.Network/privateDnsZones/${ZONE}`,
    name: ZONE,
    type: "Microsoft.Network/privateDnsZones",
    location: "global",
    numberOfRecordSets: 1,
    numberOfVirtualNetworkLinks: 0,
    provisioningState: "Succeeded",
  });
  expect(created.etag).toMatch(/^[0-9a-f-]{36}$/);
  const soa = await client.recordSets.get("rg", ZONE, "SOA", "@");
  expect(soa).toMatchObject({ fqdn: `${ZONE}.`, soaRecord: { host: "azureprivatedns.net", minimumTtl: 10 } });
  const names: string[] = [];
  for await (const z of client.privateZones.listByResourceGroup("rg")) names.push(z.name!);
  for await (const z of client.privateZones.list()) names.push(z.name!);
  expect(names).toEqual([ZONE, ZONE]);
  expect(fake.log.find((l) => l.operationId === "PrivateZones_CreateOrUpdate")?.status).toBe(202);
  expect(fake.violations).toEqual([]);
});

test("zone refusals: a region other than global, a one-label name, ETag preconditions", async () => {
  expect(
    await failure(client.privateZones.beginCreateOrUpdateAndWait("rg", ZONE, { location: "westeurope" })),
  ).toMatchObject({ status: 400, code: "LocationNotAvailableForResourceType" });
  expect(await failure(zone("internal"))).toMatchObject({ status: 400 });
  const first = await zone();
  expect(await failure(zone(ZONE, { ifNoneMatch: "*" }))).toMatchObject({
    status: 412,
    code: "PreconditionFailed",
  });
  expect(await failure(zone(ZONE, { ifMatch: "stale" }))).toMatchObject({ status: 412 });
  const second = await zone(ZONE, { ifMatch: first.etag });
  expect(second.etag).not.toBe(first.etag);
  expect(
    await failure(client.privateZones.beginDeleteAndWait("rg", ZONE, { ifMatch: first.etag })),
  ).toMatchObject({
    status: 412,
  });
  expect(fake.violations).toEqual([]);
});

test("links: to an existing network, once per network and namespace, one registering zone per network", async () => {
  await zone();
  await zone("sub.kb.internal");
  await zone("other.example");
  expect(await failure(link("ghost", ZONE, false, `${VNET_ID}-missing`))).toMatchObject({ status: 400 });
  const created = await link("kb-link", ZONE, true);
  expect(created).toMatchObject({
    id: `${RG}/providers/Microsoft.Network/privateDnsZones/${ZONE}/virtualNetworkLinks/kb-link`,
    virtualNetwork: { id: VNET_ID },
    registrationEnabled: true,
    virtualNetworkLinkState: "Completed",
    provisioningState: "Succeeded",
  });
  expect(await failure(link("again", ZONE))).toMatchObject({
    status: 400,
    message: expect.stringContaining("overlapping namespaces"),
  });
  expect(await failure(link("nested", "sub.kb.internal"))).toMatchObject({ status: 400 });
  expect(await failure(link("reg", "other.example", true))).toMatchObject({
    status: 409,
    code: "Conflict",
    message: expect.stringContaining("auto-registration enabled"),
  });
  await link("plain", "other.example");
  expect((await client.privateZones.get("rg", ZONE)).numberOfVirtualNetworkLinksWithRegistration).toBe(1);
  expect(fake.violations).toEqual([]);
});

test("a zone with links cannot be deleted; without them it goes with its record sets", async () => {
  await zone();
  await link("kb-link");
  await client.recordSets.createOrUpdate("rg", ZONE, "A", "api", aSet(["10.0.0.4"]));
  expect(await failure(client.privateZones.beginDeleteAndWait("rg", ZONE))).toMatchObject({
    status: 409,
    code: "CannotDeleteResource",
    message: expect.stringContaining(
      `'Microsoft.Network/privateDnsZones/${ZONE}/virtualNetworkLinks/kb-link'`,
    ),
  });
  await client.virtualNetworkLinks.beginDeleteAndWait("rg", ZONE, "kb-link", { updateIntervalInMs: 0 });
  await client.privateZones.beginDeleteAndWait("rg", ZONE, { updateIntervalInMs: 0 });
  expect(dns.zones.size).toBe(0);
  expect(await failure(client.recordSets.get("rg", ZONE, "A", "api"))).toMatchObject({ status: 404 });
  expect(fake.violations).toEqual([]);
});

test("A record sets: created, read, listed by type and all, refused when malformed, deleted", async () => {
  await zone();
  const created = await client.recordSets.createOrUpdate(
    "rg",
    ZONE,
    "A",
    "api",
    aSet(["10.0.0.4", "10.0.0.5"]),
  );
  expect(created).toMatchObject({
    id: `${RG}/providers/Microsoft.Network/privateDnsZones/${ZONE}/A/api`,
    type: "Microsoft.Network/privateDnsZones/A",
    ttl: 30,
    fqdn: `api.${ZONE}.`,
    isAutoRegistered: false,
  });
  await client.recordSets.createOrUpdate("rg", ZONE, "A", "etcd-0", aSet(["10.0.0.6"]));
  expect(ips(await client.recordSets.get("rg", ZONE, "A", "api"))).toEqual(["10.0.0.4", "10.0.0.5"]);
  const names = async (pages: AsyncIterable<RecordSet>) => {
    const found: string[] = [];
    for await (const set of pages) found.push(`${set.type!.split("/").pop()}/${set.name}`);
    return found.sort();
  };
  expect(await names(client.recordSets.listByType("rg", ZONE, "A"))).toEqual(["A/api", "A/etcd-0"]);
  expect(await names(client.recordSets.list("rg", ZONE))).toEqual(["A/api", "A/etcd-0", "SOA/@"]);
  expect(await names(client.recordSets.list("rg", ZONE, { recordsetnamesuffix: "0" }))).toEqual(["A/etcd-0"]);
  // …/ALL is RecordSets_List, not RecordSets_ListByType with a record type "ALL".
  expect(fake.log.filter((l) => l.path.endsWith("/ALL")).map((l) => l.operationId)).toEqual([
    "RecordSets_List",
    "RecordSets_List",
  ]);

  expect(
    await failure(client.recordSets.createOrUpdate("rg", ZONE, "A", "bad", aSet(["10.0.0.256"]))),
  ).toMatchObject({
    status: 400,
  });
  expect(
    await failure(
      client.recordSets.createOrUpdate("rg", ZONE, "A", "bad", { ttl: 30, cnameRecord: { cname: "x" } }),
    ),
  ).toMatchObject({ status: 400 });
  expect(await failure(client.recordSets.createOrUpdate("rg", ZONE, "SOA", "x", { ttl: 30 }))).toMatchObject({
    status: 400,
  });
  expect(await failure(client.recordSets.delete("rg", ZONE, "SOA", "@"))).toMatchObject({ status: 400 });
  expect(await failure(client.recordSets.delete("rg", ZONE, "A", "api", { ifMatch: "stale" }))).toMatchObject(
    {
      status: 412,
    },
  );
  await client.recordSets.delete("rg", ZONE, "A", "api", { ifMatch: created.etag });
  await client.recordSets.delete("rg", ZONE, "A", "api");
  expect(fake.log.filter((l) => l.method === "DELETE" && l.status < 300).map((l) => l.status)).toEqual([
    200, 204,
  ]);
  expect((await client.privateZones.get("rg", ZONE)).numberOfRecordSets).toBe(2);
  expect(fake.violations).toEqual([]);
});

test("compare-and-swap: of two writers that read the same ETag, the second gets 412 and retries", async () => {
  await zone();
  await client.recordSets.createOrUpdate("rg", ZONE, "A", "api", aSet(["10.0.0.4"]), { ifNoneMatch: "*" });
  // Creating it again with If-None-Match: * finds it there.
  expect(
    await failure(
      client.recordSets.createOrUpdate("rg", ZONE, "A", "api", aSet(["10.0.0.9"]), { ifNoneMatch: "*" }),
    ),
  ).toMatchObject({ status: 412, code: "PreconditionFailed" });

  const one = await client.recordSets.get("rg", ZONE, "A", "api");
  const two = await client.recordSets.get("rg", ZONE, "A", "api");
  expect(two.etag).toBe(one.etag);
  const add = (read: RecordSet, ip: string) =>
    client.recordSets.createOrUpdate("rg", ZONE, "A", "api", aSet([...ips(read)!, ip]), {
      ifMatch: read.etag,
    });

  const first = await add(one, "10.0.0.5");
  expect(first.etag).not.toBe(one.etag);
  expect(await failure(add(two, "10.0.0.6"))).toMatchObject({ status: 412, code: "PreconditionFailed" });
  // The loser re-reads and tries again: nothing the winner wrote is lost.
  await add(await client.recordSets.get("rg", ZONE, "A", "api"), "10.0.0.6");
  expect(ips(await client.recordSets.get("rg", ZONE, "A", "api"))).toEqual([
    "10.0.0.4",
    "10.0.0.5",
    "10.0.0.6",
  ]);
  expect(fake.violations).toEqual([]);
});

test("zones need their group and go with it", async () => {
  expect(
    await failure(client.privateZones.beginCreateOrUpdateAndWait("nogroup", ZONE, { location: "global" })),
  ).toMatchObject({ status: 404, code: "ResourceGroupNotFound" });
  await zone();
  groups.remove(SUB, "rg");
  expect(dns.zones.size).toBe(0);
  expect(fake.violations).toEqual([]);
});
