import { startGoogleCloud, type GoogleCloud } from "./cloud";
import { restClient } from "./rest";

/** IAM and project policies of the Google Cloud fake, driven over REST as a client drives GCP. */
describe("the IAM fake", () => {
  let cloud: GoogleCloud;
  const call = restClient(() => cloud.url);
  const SA = "/v1/projects/p1/serviceAccounts";
  const ROLES = "/v1/projects/p1/roles";
  const getPolicy = (version?: number) =>
    call(
      "POST",
      "/v3/projects/p1:getIamPolicy",
      version === undefined ? {} : { options: { requestedPolicyVersion: version } },
    );
  const setPolicy = (policy: unknown) => call("POST", "/v3/projects/p1:setIamPolicy", { policy });
  const createAccount = (accountId: string) =>
    call("POST", SA, { accountId, serviceAccount: { displayName: "Test" } });

  beforeEach(async () => {
    cloud = await startGoogleCloud();
  });
  afterEach(async () => {
    await cloud.stop();
    expect(cloud.fake.invalid).toEqual([]);
  });
  /** The refusals a test expects, taken out: what is left at the end must be nothing. */
  const refusals = () => cloud.fake.invalid.splice(0).map((i) => i.problems.join());

  describe("service accounts", () => {
    it("creates one with GCP's email and numeric uniqueId, gets it by email, uniqueId or projects/-", async () => {
      const created = await createAccount("kubebake-nodes");
      expect(created.status).toBe(200);
      expect(created.json).toMatchObject({
        email: "kubebake-nodes@p1.iam.gserviceaccount.com",
        name: "projects/p1/serviceAccounts/kubebake-nodes@p1.iam.gserviceaccount.com",
        projectId: "p1",
        displayName: "Test",
      });
      expect(created.json.uniqueId).toMatch(/^\d{21}$/);
      for (const key of [created.json.email, created.json.uniqueId]) {
        const got = await call("GET", `/v1/projects/-/serviceAccounts/${key}`);
        expect([got.status, got.json.email]).toEqual([200, created.json.email]);
      }
      expect(cloud.iam.exists(created.json.email)).toBe(true);
    });

    it("refuses a duplicate (409 ALREADY_EXISTS) and a bad accountId (400)", async () => {
      await createAccount("kubebake-nodes");
      const again = await createAccount("kubebake-nodes");
      expect([again.status, again.json.error.status]).toEqual([409, "ALREADY_EXISTS"]);
      for (const id of ["short", "Upper-case1", "ends-with-dash-", "1starts-with-digit"])
        expect((await createAccount(id)).status).toBe(400);
      expect(refusals()).toHaveLength(4);
    });

    it("deletes one: then it is 404, and a new one of that id is another account", async () => {
      const first = (await createAccount("kubebake-nodes")).json;
      expect((await call("DELETE", `${SA}/${first.email}`)).status).toBe(200);
      const gone = await call("GET", `${SA}/${first.email}`);
      expect([gone.status, gone.json.error.status]).toEqual([404, "NOT_FOUND"]);
      expect((await call("DELETE", `${SA}/${first.email}`)).status).toBe(404);
      const second = (await createAccount("kubebake-nodes")).json;
      expect(second.uniqueId).not.toBe(first.uniqueId);
    });

    it("lists them by page, answering {} for an empty project", async () => {
      expect((await call("GET", SA)).json).toEqual({});
      for (const id of ["account-a1", "account-b2", "account-c3"]) await createAccount(id);
      const first = await call("GET", `${SA}?pageSize=2`);
      expect(first.json.accounts).toHaveLength(2);
      const second = await call("GET", `${SA}?pageSize=2&pageToken=${first.json.nextPageToken}`);
      expect([second.json.accounts.length, second.json.nextPageToken]).toEqual([1, undefined]);
    });
  });

  describe("custom roles", () => {
    const role = { title: "Node", includedPermissions: ["compute.instances.get"], stage: "GA" };
    const createRole = (roleId: string) => call("POST", ROLES, { roleId, role });

    it("soft-deletes: deleted for 7 days, undeletable; the id is not reusable until purged", async () => {
      expect((await createRole("kubebake.node")).json).toMatchObject({
        name: "projects/p1/roles/kubebake.node",
        stage: "GA",
        includedPermissions: ["compute.instances.get"],
      });
      const deleted = await call("DELETE", `${ROLES}/kubebake.node`);
      expect(deleted.json.deleted).toBe(true);
      expect((await call("GET", `${ROLES}/kubebake.node`)).json.deleted).toBe(true);
      expect((await call("GET", ROLES)).json).toEqual({});
      expect((await call("GET", `${ROLES}?showDeleted=true`)).json.roles).toHaveLength(1);
      const reuse = await createRole("kubebake.node");
      expect([reuse.status, reuse.json.error.status]).toEqual([400, "FAILED_PRECONDITION"]);
      expect(refusals()).toEqual([expect.stringMatching(/marked for deletion/)]);

      const undeleted = await call("POST", `${ROLES}/kubebake.node:undelete`, {});
      expect([undeleted.status, undeleted.json.deleted]).toEqual([200, undefined]);
      expect((await call("GET", ROLES)).json.roles).toHaveLength(1);
    });

    it("purges a role deleted over 7 days ago (404, no undelete), frees its id after 37", async () => {
      await createRole("kubebake.node");
      await call("DELETE", `${ROLES}/kubebake.node`);
      const start = Date.now();
      cloud.iam.now = () => start + 8 * 86_400_000;
      expect((await call("GET", `${ROLES}/kubebake.node`)).status).toBe(404);
      expect((await call("POST", `${ROLES}/kubebake.node:undelete`, {})).status).toBe(404);
      expect((await createRole("kubebake.node")).status).toBe(400);
      refusals();
      cloud.iam.now = () => start + 38 * 86_400_000;
      expect((await createRole("kubebake.node")).status).toBe(200);
    });

    it("patches with an etag: a stale one answers 409 ABORTED", async () => {
      const { etag } = (await createRole("kubebake.node")).json;
      const patched = await call("PATCH", `${ROLES}/kubebake.node?updateMask=title`, { title: "New", etag });
      expect([patched.status, patched.json.title]).toEqual([200, "New"]);
      const stale = await call("PATCH", `${ROLES}/kubebake.node?updateMask=title`, { title: "Old", etag });
      expect([stale.status, stale.json.error.status]).toEqual([409, "ABORTED"]);
    });
  });

  describe("project policy (Resource Manager v3)", () => {
    it("loses the race with a stale etag: the second writer of two readers gets 409 ABORTED", async () => {
      const email = (await createAccount("kubebake-nodes")).json.email;
      const [a, b] = [(await getPolicy()).json, (await getPolicy()).json];
      const grant = (policy: any, role: string) => ({
        ...policy,
        bindings: [...policy.bindings, { role, members: [`serviceAccount:${email}`] }],
      });
      const first = await setPolicy(grant(a, "roles/logging.logWriter"));
      expect(first.status).toBe(200);
      expect(first.json.etag).not.toBe(a.etag);
      const second = await setPolicy(grant(b, "roles/monitoring.metricWriter"));
      expect([second.status, second.json.error.status]).toEqual([409, "ABORTED"]);
      // The winner's grant and the owner binding nobody touched both survive.
      expect((await getPolicy()).json.bindings).toEqual([
        { role: "roles/owner", members: ["user:owner@example.com"] },
        { role: "roles/logging.logWriter", members: [`serviceAccount:${email}`] },
      ]);
    });

    it("needs version 3 for a condition, and downgrades conditions for a version 1 reader", async () => {
      const email = (await createAccount("kubebake-nodes")).json.email;
      const { etag, bindings } = (await getPolicy()).json;
      const conditional = {
        role: "roles/secretmanager.secretAccessor",
        members: [`serviceAccount:${email}`],
        condition: { title: "prefix", expression: 'resource.name.startsWith("projects/p1/secrets/k")' },
      };
      const v1 = await setPolicy({ etag, bindings: [...bindings, conditional] });
      expect([v1.status, v1.json.error.message]).toEqual([400, expect.stringMatching(/version 3/)]);
      const v3 = await setPolicy({ version: 3, etag, bindings: [...bindings, conditional] });
      expect([v3.status, v3.json.version]).toEqual([200, 3]);
      expect((await getPolicy(3)).json.bindings).toContainEqual(conditional);
      const old = (await getPolicy(1)).json;
      expect(old.version).toBe(1);
      expect(old.bindings[1].role).toMatch(/^roles\/secretmanager\.secretAccessor_withcond_[0-9a-f]+$/);
      expect(old.bindings[1].condition).toBeUndefined();
      // Writing the downgraded policy back would lose the condition: refused.
      expect((await setPolicy(old)).status).toBe(400);
      expect(refusals()).toHaveLength(2);
    });

    it("refuses a member of this project's accounts that does not exist, and an unknown custom role", async () => {
      const { etag, bindings } = (await getPolicy()).json;
      const missing = await setPolicy({
        etag,
        bindings: [
          ...bindings,
          { role: "roles/viewer", members: ["serviceAccount:nobody@p1.iam.gserviceaccount.com"] },
        ],
      });
      expect([missing.status, missing.json.error.message]).toEqual([
        400,
        "Service account nobody@p1.iam.gserviceaccount.com does not exist.",
      ]);
      const role = await setPolicy({
        etag,
        bindings: [{ role: "projects/p1/roles/nope", members: bindings[0].members }],
      });
      expect(role.status).toBe(400);
      expect(refusals()).toHaveLength(2);
      expect((await getPolicy()).json.etag).toBe(etag);
    });

    it("shows a deleted account's memberships as deleted: members (project and secret policies)", async () => {
      const account = (await createAccount("kubebake-nodes")).json;
      const member = `serviceAccount:${account.email}`;
      const { etag, bindings } = (await getPolicy()).json;
      await setPolicy({ etag, bindings: [...bindings, { role: "roles/viewer", members: [member] }] });
      await call("POST", "/v1/projects/p1/secrets?secretId=token", { replication: { automatic: {} } });
      await call("POST", "/v1/projects/p1/secrets/token:setIamPolicy", {
        policy: { bindings: [{ role: "roles/secretmanager.secretAccessor", members: [member] }] },
      });
      await call("DELETE", `${SA}/${account.email}`);
      const deleted = `deleted:serviceAccount:${account.email}?uid=${account.uniqueId}`;
      expect((await getPolicy()).json.bindings[1]).toEqual({ role: "roles/viewer", members: [deleted] });
      const secret = await call("GET", "/v1/projects/p1/secrets/token:getIamPolicy");
      expect(secret.json.bindings[0].members).toEqual([deleted]);
      // A read-modify-write keeps the deleted: member; the new account of that email is not bound.
      const now = (await getPolicy()).json;
      expect((await setPolicy(now)).status).toBe(200);
      await createAccount("kubebake-nodes");
      expect(cloud.projectIam.policy("p1").holders("roles/viewer")).toEqual([deleted]);
    });

    it("keeps members a role had once it is deleted, but grants it to no one new", async () => {
      const email = (await createAccount("kubebake-nodes")).json.email;
      await call("POST", ROLES, { roleId: "node", role: { includedPermissions: ["compute.instances.get"] } });
      const before = (await getPolicy()).json;
      const granted = await setPolicy({
        ...before,
        bindings: [
          ...before.bindings,
          { role: "projects/p1/roles/node", members: [`serviceAccount:${email}`] },
        ],
      });
      expect(granted.status).toBe(200);
      await call("DELETE", `${ROLES}/node`);
      const now = (await getPolicy()).json;
      expect((await setPolicy(now)).status).toBe(200);
      const more = (await getPolicy()).json;
      more.bindings[1].members.push("user:new@example.com");
      expect((await setPolicy(more)).status).toBe(400);
      expect(refusals()).toEqual([expect.stringMatching(/deleted: it cannot be granted/)]);
    });

    it("answers 403 for a project it does not know, as GCP does", async () => {
      expect((await call("POST", "/v3/projects/other:getIamPolicy", {})).status).toBe(403);
    });
  });

  it("answers an injected 429 with Retry-After: 0, then serves the retry", async () => {
    cloud.fake.failNext("iam.projects.serviceAccounts.create", 429);
    const throttled = await createAccount("kubebake-nodes");
    expect([throttled.status, throttled.headers.get("retry-after"), throttled.json.error.status]).toEqual([
      429,
      "0",
      "RESOURCE_EXHAUSTED",
    ]);
    expect(cloud.iam.accounts.size).toBe(0);
    expect((await createAccount("kubebake-nodes")).status).toBe(200);
  });
});
