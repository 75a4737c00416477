import { startGoogleCloud, type GoogleCloud } from "./cloud";
import { restClient } from "./rest";

/** Cloud Functions v2 of the Google Cloud fake, driven over REST as a client drives GCP. */
describe("the Cloud Functions fake", () => {
  let cloud: GoogleCloud;
  let account: string;
  const call = restClient(() => cloud.url);
  const L = "/v2/projects/p1/locations/us-central1";
  const NAME = "projects/p1/locations/us-central1/functions/reaper";
  // The fake only looks at the zip's magic number, so a local file header and some bytes will do.
  const zip = (text: string) => Buffer.concat([Buffer.from("PK\x03\x04", "latin1"), Buffer.from(text)]);
  const put = (
    url: string,
    body: Buffer,
    headers: Record<string, string> = { "content-type": "application/zip" },
  ) => fetch(url, { method: "PUT", headers, body });
  const uploadUrl = async () =>
    (await call("POST", `${L}/functions:generateUploadUrl`, { environment: "GEN_2" })).json;
  const uploaded = async (text: string) => {
    const { uploadUrl: url, storageSource } = await uploadUrl();
    expect((await put(url, zip(text))).status).toBe(200);
    return storageSource;
  };
  const spec = (storageSource: unknown, runtime = "nodejs22") => ({
    buildConfig: { runtime, entryPoint: "reap", source: { storageSource } },
    serviceConfig: {
      serviceAccountEmail: account,
      maxInstanceCount: 1,
      minInstanceCount: 0,
      availableMemory: "256Mi",
      timeoutSeconds: 300,
      ingressSettings: "ALLOW_INTERNAL_ONLY",
      environmentVariables: { CLUSTER: "demo" },
      allTrafficOnLatestRevision: true,
    },
    labels: { cluster: "demo" },
    environment: "GEN_2",
  });
  const create = (body: unknown, id = "reaper") => call("POST", `${L}/functions?functionId=${id}`, body);
  /** Polls an operation until done; answers the polls' `done` values and the last answer. */
  const poll = async (op: { name: string }) => {
    const seen: boolean[] = [];
    for (;;) {
      const answer = (await call("GET", `/v2/${op.name}`)).json;
      seen.push(answer.done);
      if (answer.done || seen.length > 5) return { seen, answer };
    }
  };
  const refusals = () => cloud.fake.invalid.splice(0).map((i) => i.problems.join());

  beforeEach(async () => {
    cloud = await startGoogleCloud();
    account = cloud.iam.addAccount("p1", "kubebake-reaper").email;
  });
  afterEach(async () => {
    await cloud.stop();
    expect(cloud.fake.invalid).toEqual([]);
  });

  it("uploads a zip, creates a function, and serves it once the operation is polled done", async () => {
    const source = await uploaded("v1");
    expect(source).toEqual({
      bucket: "gcf-v2-uploads-100000000001-us-central1",
      object: expect.stringMatching(/^[0-9a-f-]{36}\.zip$/),
    });
    const op = (await create(spec(source))).json;
    expect(op).toMatchObject({
      name: expect.stringMatching(/^projects\/p1\/locations\/us-central1\/operations\/operation-/),
      done: false,
      metadata: { target: NAME, verb: "create", operationType: "CREATE_FUNCTION" },
    });
    expect((await call("GET", `/v2/${NAME}`)).json.state).toBe("DEPLOYING");
    // The look at the function was time passing (the deployment goes on without its caller): done now.
    const { seen, answer } = await poll(op);
    expect(seen).toEqual([true]);
    expect(answer.response).toMatchObject({
      name: NAME,
      state: "ACTIVE",
      environment: "GEN_2",
      url: expect.stringMatching(/^https:\/\/reaper-[a-z0-9]{10}-uc\.a\.run\.app$/),
      serviceConfig: {
        service: "projects/p1/locations/us-central1/services/reaper",
        serviceAccountEmail: account,
      },
      buildConfig: {
        build: expect.stringMatching(/^projects\/100000000001\/locations\/us-central1\/builds\//),
      },
    });
    const { "@type": type, ...fn } = answer.response;
    expect(type).toBe("type.googleapis.com/google.cloud.functions.v2.Function");
    expect((await call("GET", `/v2/${NAME}`)).json).toEqual(fn);
    expect(fn.serviceConfig.uri).toBe(fn.url);
    expect(typeof fn.updateTime).toBe("string");
    expect(cloud.functions.source(NAME)).toEqual(zip("v1"));
    expect(cloud.functions.deployments).toBe(1);
    expect((await call("GET", `${L}/functions`)).json.functions.map((f: any) => f.name)).toEqual([NAME]);
  });

  it("takes one PUT of a zip with content-type application/zip on an upload URL, without credentials", async () => {
    const { uploadUrl: url } = await uploadUrl();
    expect((await put(url, zip("x"), {})).status).toBe(400);
    expect((await put(url, zip("x"), { "content-type": "application/octet-stream" })).status).toBe(400);
    expect((await put(url, Buffer.from("not a zip"))).status).toBe(400);
    const bearer = { "content-type": "application/zip", authorization: "Bearer t" };
    expect((await put(url, zip("x"), bearer)).status).toBe(400);
    expect((await put(url, zip("x"))).status).toBe(200);
    expect((await put(url, zip("y"))).status).toBe(400);
    expect(refusals()).toHaveLength(5);
  });

  it("ends the operation in error when the source was never uploaded, leaving a FAILED function", async () => {
    const { storageSource } = await uploadUrl(); // a URL minted but never PUT
    const { answer } = await poll((await create(spec(storageSource))).json);
    expect(answer).toMatchObject({
      done: true,
      error: { code: 3, message: expect.stringMatching(/not found/) },
    });
    expect(answer.response).toBeUndefined();
    const fn = (await call("GET", `/v2/${NAME}`)).json;
    expect([fn.state, fn.url, fn.stateMessages[0].severity]).toEqual(["FAILED", undefined, "ERROR"]);
    // The build's other checks: a supported runtime, a service account that exists.
    const source = await uploaded("v1");
    const old = (await poll((await create(spec(source, "nodejs18"), "old")).json)).answer;
    expect(old.error.message).toMatch(/runtime "nodejs18"/);
    const ghost = {
      ...spec(source),
      serviceConfig: { serviceAccountEmail: "ghost@p1.iam.gserviceaccount.com" },
    };
    expect((await poll((await create(ghost, "ghost")).json)).answer.error.message).toMatch(/ghost@p1/);
    expect(cloud.functions.deployments).toBe(0);
  });

  it("refuses a duplicate (409), a bad id, a change while an operation runs (409 ABORTED)", async () => {
    const source = await uploaded("v1");
    const op = (await create(spec(source))).json;
    const again = await create(spec(source));
    expect([again.status, again.json.error.status]).toEqual([409, "ALREADY_EXISTS"]);
    const busy = await call("DELETE", `/v2/${NAME}`);
    expect([busy.status, busy.json.error.status]).toEqual([409, "ABORTED"]);
    expect((await create(spec(source), "Reaper")).status).toBe(400);
    expect((await create({ buildConfig: { runtime: "nodejs22" } }, "nosource")).status).toBe(400);
    expect(refusals()).toHaveLength(2);
    await poll(op);
    expect((await create(spec(source))).status).toBe(409);
    expect((await call("GET", `/v2/${NAME}x`)).json.error.status).toBe("NOT_FOUND");
  });

  it("patches only the masked fields; a new source needs a new upload", async () => {
    await poll((await create(spec(await uploaded("v1")))).json);
    const memory = await call("PATCH", `/v2/${NAME}?updateMask=serviceConfig.availableMemory`, {
      serviceConfig: { availableMemory: "512Mi", maxInstanceCount: 9 },
      labels: { ignored: "yes" },
    });
    const patched = (await poll(memory.json)).answer.response;
    expect(patched.serviceConfig).toMatchObject({ availableMemory: "512Mi", maxInstanceCount: 1 });
    expect(patched.labels).toEqual({ cluster: "demo" });
    expect(cloud.functions.source(NAME)).toEqual(zip("v1"));
    // A source that was never PUT fails the update and keeps the serving revision.
    const { storageSource: missing } = await uploadUrl();
    const mask = "updateMask=buildConfig.source";
    const failed = await call("PATCH", `/v2/${NAME}?${mask}`, {
      buildConfig: { source: { storageSource: missing } },
    });
    expect((await poll(failed.json)).answer.error.code).toBe(3);
    expect((await call("GET", `/v2/${NAME}`)).json.state).toBe("ACTIVE");
    const source = await uploaded("v2");
    const op = await call("PATCH", `/v2/${NAME}?updateMask=build_config.source`, {
      buildConfig: { source: { storageSource: source } },
    });
    expect((await poll(op.json)).answer.response.buildConfig.source.storageSource).toEqual(source);
    expect(cloud.functions.source(NAME)).toEqual(zip("v2"));
    expect(cloud.functions.deployments).toBe(3);
    expect((await call("PATCH", `/v2/${NAME}?updateMask=serviceConfig.uri`, {})).status).toBe(400);
    expect(refusals()).toHaveLength(1);
  });

  it("deletes a function when the delete operation is done", async () => {
    await poll((await create(spec(await uploaded("v1")))).json);
    const op = (await call("DELETE", `/v2/${NAME}`)).json;
    expect(op.metadata.verb).toBe("delete");
    expect((await call("GET", `/v2/${NAME}`)).json.state).toBe("DELETING");
    const { answer } = await poll(op);
    expect(answer.response).toEqual({ "@type": "type.googleapis.com/google.protobuf.Empty" });
    expect((await call("GET", `/v2/${NAME}`)).status).toBe(404);
    expect((await call("GET", `${L}/functions`)).json).toEqual({});
  });

  it("keeps an IAM policy per function", async () => {
    await poll((await create(spec(await uploaded("v1")))).json);
    const policy = (await call("GET", `/v2/${NAME}:getIamPolicy`)).json;
    expect(policy).toEqual({ version: 1, etag: "ACAB" });
    const binding = { role: "roles/cloudfunctions.invoker", members: [`serviceAccount:${account}`] };
    const set = await call("POST", `/v2/${NAME}:setIamPolicy`, {
      policy: { ...policy, bindings: [binding] },
    });
    expect(set.status).toBe(200);
    expect((await call("GET", `/v2/${NAME}:getIamPolicy`)).json.bindings).toEqual([binding]);
    const stale = await call("POST", `/v2/${NAME}:setIamPolicy`, { policy: { ...policy, bindings: [] } });
    expect([stale.status, stale.json.error.status]).toEqual([409, "ABORTED"]);
    expect((await call("GET", `/v2/${NAME}x:getIamPolicy`)).status).toBe(404);
  });
});
