import { startGoogleCloud, type GoogleCloud } from "./cloud";
import { restClient } from "./rest";

/** Cloud DNS managed zones of the Google Cloud fake, driven over REST as a client drives GCP. */
describe("the Cloud DNS fake's managed zones", () => {
  let cloud: GoogleCloud;
  const call = restClient(() => cloud.url);
  const Z = "/dns/v1/projects/p1/managedZones";
  const NETWORK = "https://www.googleapis.com/compute/v1/projects/p1/global/networks/kubebake";
  const zone = {
    name: "demo",
    dnsName: "demo.k8s.internal.",
    description: "kubebake demo",
    visibility: "private",
    privateVisibilityConfig: { networks: [{ networkUrl: NETWORK }] },
    labels: { cluster: "demo" },
  };
  const change = (body: unknown) => call("POST", `${Z}/demo/changes`, body);
  const a = { name: "api.demo.k8s.internal.", type: "A", ttl: 30, rrdatas: ["10.0.0.2"] };

  /** A Compute write, waited for as clients do; the DONE operation. */
  const compute = async (method: string, path: string, body?: unknown) => {
    const operation = (await call(method, `/compute/v1/projects/p1/${path}`, body)).json;
    return (await call("POST", `/compute/v1/projects/p1/global/operations/${operation.name}/wait`)).json;
  };

  beforeEach(async () => {
    cloud = await startGoogleCloud();
    await compute("POST", "global/networks", { name: "kubebake", autoCreateSubnetworks: false });
  });
  afterEach(async () => {
    await cloud.stop();
    expect(cloud.fake.invalid).toEqual([]);
  });
  /** The refusals a test expects, taken out: what is left at the end must be nothing. */
  const refusals = () => cloud.fake.invalid.splice(0).map((i) => i.problems.join());

  it("needs a description, a DNS name ending in '.', and for a private zone a network that exists", async () => {
    const undescribed: Partial<typeof zone> = { ...zone };
    delete undescribed.description;
    const missing = await call("POST", Z, undescribed);
    expect([missing.status, missing.json.error.message]).toEqual([400, expect.stringMatching(/description/)]);
    expect((await call("POST", Z, { ...zone, dnsName: "demo.k8s.internal" })).status).toBe(400);
    expect((await call("POST", Z, { ...zone, privateVisibilityConfig: { networks: [] } })).status).toBe(400);
    const elsewhere = { networks: [{ networkUrl: NETWORK.replace("kubebake", "other") }] };
    expect((await call("POST", Z, { ...zone, privateVisibilityConfig: elsewhere })).status).toBe(400);
    expect(refusals()).toHaveLength(4);
    expect(cloud.dns.managedZones.size).toBe(0);
  });

  it("creates a zone with its SOA and NS record sets; get, list by dnsName, 409 on a duplicate", async () => {
    const created = await call("POST", Z, zone);
    expect(created.json).toMatchObject({ kind: "dns#managedZone", name: "demo", visibility: "private" });
    expect(created.json.privateVisibilityConfig.networks[0].networkUrl).toBe(NETWORK);
    const sets = (await call("GET", `${Z}/demo/rrsets`)).json.rrsets;
    expect(sets.map((s: any) => `${s.name} ${s.type}`)).toEqual([
      "demo.k8s.internal. SOA",
      "demo.k8s.internal. NS",
    ]);
    expect((await call("GET", `${Z}/demo`)).json.id).toBe(created.json.id);
    expect((await call("GET", `${Z}?dnsName=demo.k8s.internal.`)).json.managedZones).toHaveLength(1);
    expect((await call("GET", `${Z}?dnsName=other.`)).json.managedZones).toEqual([]);
    expect((await call("POST", Z, zone)).status).toBe(409);
  });

  it("answers 404 for a zone it has not made, for the zone and its records", async () => {
    expect((await call("GET", `${Z}/nope`)).status).toBe(404);
    expect((await call("GET", `${Z}/nope/rrsets`)).status).toBe(404);
    expect((await call("POST", `${Z}/nope/changes`, { additions: [a] })).status).toBe(404);
  });

  it("refuses to delete a zone while it holds an A record; deletes it once empty", async () => {
    await call("POST", Z, zone);
    expect((await change({ additions: [a] })).status).toBe(200);
    const refused = await call("DELETE", `${Z}/demo`);
    expect([refused.status, refused.json.error.errors[0].reason]).toEqual([400, "containerNotEmpty"]);
    expect(refusals()).toHaveLength(1);
    expect((await change({ deletions: [a] })).status).toBe(200);
    expect((await call("DELETE", `${Z}/demo`)).status).toBe(204);
    expect((await call("GET", `${Z}/demo`)).status).toBe(404);
  });

  it("refuses a record outside the zone's DNS name", async () => {
    await call("POST", Z, zone);
    expect((await change({ additions: [{ ...a, name: "api.elsewhere." }] })).status).toBe(400);
    expect(refusals()).toHaveLength(1);
  });

  it("patches labels and networks, answering a done operation", async () => {
    await call("POST", Z, zone);
    const patched = await call("PATCH", `${Z}/demo`, { labels: { cluster: "prod" } });
    expect(patched.json).toMatchObject({
      kind: "dns#operation",
      status: "done",
      zoneContext: { oldValue: { labels: { cluster: "demo" } }, newValue: { labels: { cluster: "prod" } } },
    });
    expect((await call("PATCH", `${Z}/demo`, { dnsName: "other." })).status).toBe(400);
    expect((await call("PATCH", `${Z}/demo`, { privateVisibilityConfig: { networks: [] } })).status).toBe(
      400,
    );
    expect(refusals()).toHaveLength(2);
    expect(cloud.dns.managedZones.get("demo")?.labels).toEqual({ cluster: "prod" });
  });

  it("keeps the Compute network a private zone uses from being deleted", async () => {
    await call("POST", Z, zone);
    const refused = await compute("DELETE", "global/networks/kubebake");
    expect(refused.error.errors[0]).toMatchObject({
      code: "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
      message: expect.stringMatching(/used by 'projects\/p1\/managedZones\/demo'/),
    });
    await call("DELETE", `${Z}/demo`);
    expect((await compute("DELETE", "global/networks/kubebake")).error).toBeUndefined();
    expect(cloud.resources.networks.size).toBe(0);
  });

  it("answers injected 429s with Retry-After: 0, then serves the change", async () => {
    await call("POST", Z, zone);
    cloud.fake.failNext("dns.changes.create", 429, 2);
    const answers = [await change({ additions: [a] }), await change({ additions: [a] })];
    expect(answers.map((r) => [r.status, r.headers.get("retry-after")])).toEqual([
      [429, "0"],
      [429, "0"],
    ]);
    expect(answers[0].json.error.errors[0].reason).toBe("rateLimitExceeded");
    expect((await change({ additions: [a] })).status).toBe(200);
    expect(cloud.dns.values("demo", a.name)).toEqual(["10.0.0.2"]);
  });
});
