import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { startGoogleCloud, type GoogleCloud } from "./cloud";
import { restClient } from "./rest";
import { cronProblem } from "./scheduler";

/** Cloud Scheduler of the Google Cloud fake, driven over REST as a client drives GCP. */
describe("the Cloud Scheduler fake", () => {
  let cloud: GoogleCloud;
  let account: string;
  const call = restClient(() => cloud.url);
  const PARENT = "projects/p1/locations/us-central1";
  const J = `/v1/${PARENT}/jobs`;
  const job = (id: string, more: Record<string, unknown> = {}) => ({
    name: `${PARENT}/jobs/${id}`,
    description: "reaps idle clusters",
    schedule: "*/15 * * * *",
    timeZone: "Europe/Paris",
    httpTarget: {
      uri: "https://reaper-abc-uc.a.run.app/reap",
      httpMethod: "POST",
      headers: { "Content-Type": "application/json" },
      body: Buffer.from('{"cluster":"demo"}').toString("base64"),
      oidcToken: { serviceAccountEmail: account, audience: "https://reaper-abc-uc.a.run.app" },
    },
    retryConfig: { retryCount: 1 },
    attemptDeadline: "320s",
    ...more,
  });
  const refusals = () => cloud.fake.invalid.splice(0).map((i) => i.problems.join());

  beforeEach(async () => {
    cloud = await startGoogleCloud();
    account = cloud.iam.addAccount("p1", "kubebake-scheduler").email;
  });
  afterEach(async () => {
    await cloud.stop();
    expect(cloud.fake.invalid).toEqual([]);
  });

  it("validates unix cron schedules", () => {
    for (const ok of ["* * * * *", "0 */6 * * 1-5", "5,35 9-17/2 1 jan-mar SUN", "0 0 31 12 7"])
      expect([ok, cronProblem(ok)]).toEqual([ok, undefined]);
    for (const bad of ["every 5 minutes", "* * * *", "60 * * * *", "* 24 * * *", "5/15 * * * *", "* * 0 * *"])
      expect([bad, cronProblem(bad)]).toEqual([bad, expect.any(String)]);
  });

  it("creates a job with GCP's defaults; a duplicate is 409, a missing job 404", async () => {
    const created = await call("POST", J, job("reaper"));
    expect(created.json).toMatchObject({
      ...job("reaper"),
      state: "ENABLED",
      userUpdateTime: expect.any(String),
      retryConfig: { retryCount: 1, minBackoffDuration: "5s", maxDoublings: 5 },
    });
    const plain = await call("POST", J, {
      name: `${PARENT}/jobs/plain`,
      schedule: "0 3 * * *",
      httpTarget: { uri: "http://x.example/" },
    });
    expect(plain.json).toMatchObject({
      timeZone: "Etc/UTC",
      attemptDeadline: "180s",
      httpTarget: { httpMethod: "POST" },
    });
    const again = await call("POST", J, job("reaper"));
    expect([again.status, again.json.error.status]).toEqual([409, "ALREADY_EXISTS"]);
    const missing = await call("GET", `${J}/nope`);
    expect([missing.status, missing.json.error.status]).toEqual([404, "NOT_FOUND"]);
    expect((await call("GET", J)).json.jobs.map((j: any) => j.name.split("/").pop())).toEqual([
      "plain",
      "reaper",
    ]);
  });

  it("refuses bad schedules, targets, names and accounts (400)", async () => {
    const bad = [
      job("a", { schedule: "every 5 minutes" }),
      job("b", { schedule: "61 * * * *" }),
      job("c", { timeZone: "Mars/Olympus" }),
      job("d", { httpTarget: { uri: "ftp://x.example/" } }),
      job("e", { httpTarget: { uri: "https://x.example/", httpMethod: "GET", body: "eA==" } }),
      job("f", {
        httpTarget: {
          uri: "https://x.example/",
          oidcToken: { serviceAccountEmail: "ghost@p1.iam.gserviceaccount.com" },
        },
      }),
      job("g", { attemptDeadline: "5s" }),
      { ...job("h"), name: "projects/p1/locations/europe-west1/jobs/h" },
      { ...job("i"), name: undefined },
      job("bad.id"),
    ];
    for (const body of bad)
      expect([body.name, (await call("POST", J, body)).status]).toEqual([body.name, 400]);
    expect(refusals()).toHaveLength(bad.length);
    expect(cloud.scheduler.jobs.size).toBe(0);
  });

  it("patches the masked fields only; pauses, resumes, runs and deletes", async () => {
    await call("POST", J, job("reaper"));
    const patched = await call("PATCH", `${J}/reaper?updateMask=schedule,retry_config.retry_count`, {
      schedule: "0 * * * *",
      description: "ignored",
    });
    expect(patched.json).toMatchObject({ schedule: "0 * * * *", description: "reaps idle clusters" });
    expect(patched.json.retryConfig.retryCount).toBeUndefined();
    expect((await call("PATCH", `${J}/reaper?updateMask=schedule`, { schedule: "hourly" })).status).toBe(400);
    expect((await call("PATCH", `${J}/reaper?updateMask=name`, { name: `${PARENT}/jobs/x` })).status).toBe(
      400,
    );
    expect(refusals()).toHaveLength(2);
    expect((await call("POST", `${J}/reaper:pause`, {})).json.state).toBe("PAUSED");
    expect((await call("GET", `${J}/reaper`)).json.state).toBe("PAUSED");
    expect((await call("POST", `${J}/reaper:resume`, {})).json.state).toBe("ENABLED");
    expect((await call("POST", `${J}/reaper:run`, {})).json.lastAttemptTime).toEqual(expect.any(String));
    expect(cloud.scheduler.jobs.get(`${PARENT}/jobs/reaper`)!.attempts).toBe(1);
    expect((await call("DELETE", `${J}/reaper`)).json).toEqual({});
    expect((await call("DELETE", `${J}/reaper`)).status).toBe(404);
    expect((await call("GET", J)).json).toEqual({});
  });

  it("fires a job's HTTP request at its target", async () => {
    const seen: { method?: string; headers: IncomingHttpHeaders; body: string }[] = [];
    const target = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        seen.push({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString() });
        res.end("ok");
      });
    });
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    try {
      const uri = `http://127.0.0.1:${(target.address() as AddressInfo).port}/reap`;
      const body = job("reaper");
      await call("POST", J, { ...body, httpTarget: { ...body.httpTarget, uri } });
      expect(await cloud.scheduler.fire(`${PARENT}/jobs/reaper`)).toEqual({ status: 200, body: "ok" });
      expect(seen).toEqual([
        {
          method: "POST",
          body: '{"cluster":"demo"}',
          headers: expect.objectContaining({
            "content-type": "application/json",
            "x-cloudscheduler-jobname": "reaper",
            authorization: `Bearer fake-token-of-${account}`,
          }),
        },
      ]);
      expect((await call("GET", `${J}/reaper`)).json).toMatchObject({
        status: {},
        lastAttemptTime: expect.any(String),
      });
    } finally {
      await new Promise((resolve) => target.close(resolve));
    }
  });
});
