import { startGoogleCloud, type GoogleCloud } from "./cloud";
import { restClient } from "./rest";
import { crc32c } from "./secrets";

/** Secret Manager of the Google Cloud fake, driven over REST as a client drives GCP. */
describe("the Secret Manager fake", () => {
  let cloud: GoogleCloud;
  const call = restClient(() => cloud.url);
  const S = "/v1/projects/p1/secrets";
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  const create = (id: string, body: unknown = { replication: { automatic: {} } }) =>
    call("POST", `${S}?secretId=${id}`, body);
  const add = (id: string, text: string, dataCrc32c?: string) =>
    call("POST", `${S}/${id}:addVersion`, { payload: { data: b64(text), dataCrc32c } });
  const access = (id: string, version: string) => call("GET", `${S}/${id}/versions/${version}:access`);

  beforeEach(async () => {
    cloud = await startGoogleCloud();
  });
  afterEach(async () => {
    await cloud.stop();
    expect(cloud.fake.invalid).toEqual([]);
  });
  /** The refusals a test expects, taken out: what is left at the end must be nothing. */
  const refusals = () => cloud.fake.invalid.splice(0).map((i) => i.problems.join());

  it("computes CRC32C (Castagnoli)", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283);
  });

  it("creates a secret, named with the project number; a duplicate is 409, a missing replication 400", async () => {
    const created = await create("join-token", {
      replication: { automatic: {} },
      labels: { cluster: "demo" },
    });
    expect(created.json).toMatchObject({
      name: "projects/100000000001/secrets/join-token",
      replication: { automatic: {} },
      labels: { cluster: "demo" },
    });
    const again = await create("join-token");
    expect([again.status, again.json.error.status]).toEqual([409, "ALREADY_EXISTS"]);
    expect((await create("other", {})).status).toBe(400);
    expect((await create("bad", { replication: { automatic: {} }, labels: { Cluster: "x" } })).status).toBe(
      400,
    );
    expect((await create("bad.id")).status).toBe(400);
    expect(refusals()).toHaveLength(3);
    expect((await call("GET", "/v1/projects/100000000001/secrets/join-token")).status).toBe(200);
  });

  it("adds versions; latest is the newest; a destroyed version's access is 400 FAILED_PRECONDITION", async () => {
    await create("join-token");
    const first = await add("join-token", "one");
    expect(first.json).toMatchObject({
      name: "projects/100000000001/secrets/join-token/versions/1",
      state: "ENABLED",
    });
    await add("join-token", "two");
    const latest = await access("join-token", "latest");
    expect(latest.json).toEqual({
      name: "projects/100000000001/secrets/join-token/versions/2",
      payload: { data: b64("two"), dataCrc32c: String(crc32c(Buffer.from("two"))) },
    });
    const destroyed = await call("POST", `${S}/join-token/versions/1:destroy`, {});
    expect([destroyed.json.state, typeof destroyed.json.destroyTime]).toEqual(["DESTROYED", "string"]);
    expect(Buffer.from((await access("join-token", "latest")).json.payload.data, "base64").toString()).toBe(
      "two",
    );
    const gone = await access("join-token", "1");
    expect([gone.status, gone.json.error.status]).toEqual([400, "FAILED_PRECONDITION"]);
    expect((await access("join-token", "3")).status).toBe(404);
    // versions/latest is GCP's newest version whatever its state: no falling back to an older one.
    await call("POST", `${S}/join-token/versions/2:disable`, {});
    expect((await access("join-token", "latest")).json.error.message).toMatch(/versions\/2] is in DISABLED/);
    refusals();
    const versions = await call("GET", `${S}/join-token/versions`);
    expect(versions.json.versions.map((v: any) => v.state)).toEqual(["DISABLED", "DESTROYED"]);
  });

  it("checks a payload's dataCrc32c and size", async () => {
    await create("join-token");
    const wrong = await add("join-token", "secret", String(crc32c(Buffer.from("other"))));
    expect([wrong.status, wrong.json.error.message]).toEqual([
      400,
      expect.stringMatching(/Checksum mismatch/),
    ]);
    const right = await add("join-token", "secret", String(crc32c(Buffer.from("secret"))));
    expect([right.status, right.json.clientSpecifiedPayloadChecksum]).toEqual([200, true]);
    expect((await add("join-token", "x".repeat(64 * 1024 + 1))).status).toBe(400);
    expect(refusals()).toHaveLength(2);
    expect(cloud.secrets.value("p1", "join-token")).toBe("secret");
  });

  it("lists by label and name substring, by page", async () => {
    for (const [id, cluster] of [
      ["a-token", "demo"],
      ["b-token", "prod"],
      ["c-key", "demo"],
    ])
      await create(id, { replication: { automatic: {} }, labels: { cluster } });
    const names = async (query: string) =>
      ((await call("GET", `${S}?${query}`)).json.secrets ?? []).map((s: any) => s.name.split("/").pop());
    expect(await names(`filter=${encodeURIComponent("labels.cluster=demo")}`)).toEqual(["a-token", "c-key"]);
    expect(await names(`filter=${encodeURIComponent("name:token AND labels.cluster=demo")}`)).toEqual([
      "a-token",
    ]);
    const first = await call("GET", `${S}?pageSize=2`);
    const rest = await call("GET", `${S}?pageSize=2&pageToken=${first.json.nextPageToken}`);
    expect([first.json.secrets.length, rest.json.secrets.length, rest.json.totalSize]).toEqual([2, 1, 3]);
  });

  it("keeps one IAM policy per secret, with etags", async () => {
    const email = (
      await call("POST", "/v1/projects/p1/serviceAccounts", {
        accountId: "kubebake-nodes",
        serviceAccount: {},
      })
    ).json.email;
    await create("a");
    await create("b");
    const policy = (await call("GET", `${S}/a:getIamPolicy`)).json;
    expect(policy).toEqual({ version: 1, etag: "ACAB" });
    const binding = { role: "roles/secretmanager.secretAccessor", members: [`serviceAccount:${email}`] };
    const set = await call("POST", `${S}/a:setIamPolicy`, { policy: { ...policy, bindings: [binding] } });
    expect(set.status).toBe(200);
    expect((await call("GET", `${S}/a:getIamPolicy`)).json.bindings).toEqual([binding]);
    expect((await call("GET", `${S}/b:getIamPolicy`)).json.bindings).toBeUndefined();
    const stale = await call("POST", `${S}/a:setIamPolicy`, { policy: { ...policy, bindings: [] } });
    expect([stale.status, stale.json.error.status]).toEqual([409, "ABORTED"]);
    const unknown = await call("POST", `${S}/b:setIamPolicy`, {
      policy: { bindings: [{ ...binding, members: ["serviceAccount:ghost@p1.iam.gserviceaccount.com"] }] },
    });
    expect(unknown.status).toBe(400);
    expect(refusals()).toHaveLength(1);
  });

  it("deletes a secret with its versions; patches labels only under an updateMask", async () => {
    await create("join-token");
    await add("join-token", "one");
    const patched = await call("PATCH", `${S}/join-token?updateMask=labels`, {
      labels: { owner: "kubebake" },
    });
    expect(patched.json.labels).toEqual({ owner: "kubebake" });
    expect((await call("PATCH", `${S}/join-token`, { labels: {} })).status).toBe(400);
    refusals();
    expect((await call("DELETE", `${S}/join-token`)).status).toBe(200);
    expect((await access("join-token", "1")).status).toBe(404);
    expect((await create("join-token")).status).toBe(200);
    expect((await access("join-token", "latest")).status).toBe(404);
  });
});
