import { startGoogleCloud, type GoogleCloud } from "./cloud";
import { restClient } from "./rest";

/** Eventarc of the Google Cloud fake, driven over REST as a client drives GCP. */
describe("the Eventarc fake", () => {
  let cloud: GoogleCloud;
  let account: string;
  const call = restClient(() => cloud.url);
  const PARENT = "projects/p1/locations/us-central1";
  const T = `/v1/${PARENT}/triggers`;
  const NAME = `${PARENT}/triggers/on-delete`;
  const auditLog = (more: Record<string, unknown> = {}) => ({
    eventFilters: [
      { attribute: "type", value: "google.cloud.audit.log.v1.written" },
      { attribute: "serviceName", value: "compute.googleapis.com" },
      { attribute: "methodName", value: "v1.compute.instances.delete" },
    ],
    serviceAccount: account,
    destination: { cloudRun: { service: "reaper", region: "us-central1", path: "/events" } },
    labels: { cluster: "demo" },
    ...more,
  });
  const create = (body: unknown, id = "on-delete", query = "") =>
    call("POST", `${T}?triggerId=${id}${query}`, body);
  const poll = async (op: { name: string }) => {
    const seen: boolean[] = [];
    for (;;) {
      const answer = (await call("GET", `/v1/${op.name}`)).json;
      seen.push(answer.done);
      if (answer.done || seen.length > 5) return { seen, answer };
    }
  };
  const refusals = () => cloud.fake.invalid.splice(0).map((i) => i.problems.join());

  beforeEach(async () => {
    cloud = await startGoogleCloud();
    account = cloud.iam.addAccount("p1", "kubebake-events").email;
    // The trigger's destination: the Cloud Run service of a deployed function.
    const upload = (await call("POST", `/v2/${PARENT}/functions:generateUploadUrl`, {})).json;
    const zip = Buffer.from("PK\x03\x04 index.js", "latin1");
    await fetch(upload.uploadUrl, {
      method: "PUT",
      headers: { "content-type": "application/zip" },
      body: zip,
    });
    await call("POST", `/v2/${PARENT}/functions?functionId=reaper`, {
      buildConfig: {
        runtime: "nodejs22",
        entryPoint: "reap",
        source: { storageSource: upload.storageSource },
      },
    });
    cloud.functions.operations.settle();
  });
  afterEach(async () => {
    await cloud.stop();
    expect(cloud.fake.invalid).toEqual([]);
  });

  it("creates an audit log trigger when the operation is done", async () => {
    const op = (await create(auditLog())).json;
    expect(op).toMatchObject({ done: false, metadata: { target: NAME, verb: "create" } });
    expect((await call("GET", `/v1/${NAME}`)).status).toBe(404);
    expect((await create(auditLog())).status).toBe(409);
    // The look at the trigger was time passing (the creation goes on without its caller): done now.
    const { seen, answer } = await poll(op);
    expect(seen).toEqual([true]);
    const { "@type": type, ...trigger } = answer.response;
    expect(type).toBe("type.googleapis.com/google.cloud.eventarc.v1.Trigger");
    expect(trigger).toEqual({
      ...auditLog(),
      name: NAME,
      uid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      createTime: expect.any(String),
      updateTime: expect.any(String),
      etag: expect.any(String),
      eventDataContentType: "application/json",
      transport: {
        pubsub: {
          topic: expect.stringMatching(/^projects\/p1\/topics\/eventarc-us-central1-on-delete-\d{3}$/),
          subscription: expect.stringMatching(
            /^projects\/p1\/subscriptions\/eventarc-us-central1-on-delete-sub-\d{3}$/,
          ),
        },
      },
    });
    expect((await call("GET", `/v1/${NAME}`)).json).toEqual(trigger);
    expect((await call("GET", T)).json.triggers).toEqual([trigger]);
    const again = await create(auditLog());
    expect([again.status, again.json.error.status]).toEqual([409, "ALREADY_EXISTS"]);
  });

  it("refuses what GCP refuses: an audit log trigger without methodName, no type, a cloudFunction…", async () => {
    const [type, serviceName] = auditLog().eventFilters;
    const bad: [unknown, RegExp][] = [
      [auditLog({ eventFilters: [type, serviceName] }), /need a "methodName"/],
      [auditLog({ eventFilters: [serviceName] }), /"type" attribute/],
      [auditLog({ eventFilters: [type, serviceName, serviceName] }), /given twice/],
      [auditLog({ eventFilters: [{ ...type, operator: "regex" }] }), /operator/],
      [auditLog({ destination: { cloudFunction: `${PARENT}/functions/reaper` } }), /output only/],
      [
        auditLog({ destination: { cloudRun: { service: "ghost", region: "us-central1" } } }),
        /ghost .*does not exist/,
      ],
      [auditLog({ serviceAccount: "ghost@p1.iam.gserviceaccount.com" }), /Service account ghost/],
      [auditLog({ labels: { Bad: "x" } }), /label key/],
    ];
    for (const [body, why] of bad) {
      const refused = await create(body);
      expect([refused.status, refused.json.error.message]).toEqual([400, expect.stringMatching(why)]);
    }
    expect((await create(auditLog(), "Bad_Id")).status).toBe(400);
    expect((await call("POST", T, auditLog())).status).toBe(400);
    expect(refusals()).toHaveLength(bad.length + 2);
    // validateOnly: the operation is done at once and nothing is made.
    const preview = (await create(auditLog(), "on-delete", "&validateOnly=true")).json;
    expect([preview.done, preview.response.name]).toEqual([true, NAME]);
    expect(cloud.eventarc.triggers.size + cloud.eventarc.creating.size).toBe(0);
  });

  it("patches under an update mask, or the fields sent; allowMissing creates", async () => {
    await poll((await create(auditLog())).json);
    const before = (await call("GET", `/v1/${NAME}`)).json;
    const path = {
      destination: { cloudRun: { service: "reaper", region: "us-central1", path: "/v2/events" } },
    };
    const op = await call("PATCH", `/v1/${NAME}?updateMask=destination.cloudRun.path`, {
      ...path,
      labels: {},
    });
    expect((await call("GET", `/v1/${NAME}`)).json.destination.cloudRun.path).toBe("/events"); // not done yet
    const after = (await poll(op.json)).answer.response;
    expect([after.destination.cloudRun.path, after.labels, after.uid]).toEqual([
      "/v2/events",
      { cluster: "demo" },
      before.uid,
    ]);
    expect(after.etag).not.toBe(before.etag);
    await poll((await call("PATCH", `/v1/${NAME}`, { labels: { cluster: "prod" } })).json);
    expect((await call("GET", `/v1/${NAME}`)).json).toMatchObject({
      labels: { cluster: "prod" },
      serviceAccount: account,
    });
    expect((await call("PATCH", `/v1/${PARENT}/triggers/other`, auditLog())).status).toBe(404);
    const upsert = await call("PATCH", `/v1/${PARENT}/triggers/other?allowMissing=true`, auditLog());
    expect((await poll(upsert.json)).answer.response.name).toBe(`${PARENT}/triggers/other`);
    const wrong = await call("PATCH", `/v1/${NAME}?updateMask=uid`, {});
    expect(wrong.status).toBe(400);
    expect(refusals()).toHaveLength(1);
  });

  it("deletes when the operation is done; a stale etag is 409; allowMissing forgives a missing one", async () => {
    await poll((await create(auditLog())).json);
    const stale = await call("DELETE", `/v1/${NAME}?etag=nope`);
    expect([stale.status, stale.json.error.status]).toEqual([409, "ABORTED"]);
    const { etag } = (await call("GET", `/v1/${NAME}`)).json;
    const op = (await call("DELETE", `/v1/${NAME}?etag=${encodeURIComponent(etag)}`)).json;
    expect((await call("GET", `/v1/${NAME}`)).status).toBe(200);
    expect((await poll(op)).answer.response.name).toBe(NAME);
    expect((await call("GET", `/v1/${NAME}`)).status).toBe(404);
    expect((await call("DELETE", `/v1/${NAME}`)).status).toBe(404);
    expect((await call("DELETE", `/v1/${NAME}?allowMissing=true`)).json.done).toBe(true);
    expect((await call("GET", T)).json).toEqual({});
  });
});
