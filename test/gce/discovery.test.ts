/**
 * Discovery on GCE as deployed: apply (and `dns deploy`) make the Cloud Function from the bundle, its
 * schedule, its two Eventarc triggers and exactly the permissions it needs; the bundle that was uploaded,
 * run with the environment that was deployed, makes the zone's records equal to the groups' instances.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { ChangeRecorder, formatChange } from "../../src/launch/changes";
import { deployGceDiscovery } from "../../src/launch/gce/deploy-discovery";
import { resolveGceInputs } from "../../src/launch/gce/inputs";
import { resolveGceSpec } from "../../src/launch/gce/defaults";
import { loadCloudSpec } from "../../src/cluster/load";
import { silentProgress } from "../../src/util/progress";
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { repoRoot } from "../helpers";
import { testAuth } from "../publish/gce/helpers";
import { apply, clientsOf, destroy, gceClusterYaml, PROJECT, REGION, startCloud, writeSpec } from "./fixture";

let cloud: GoogleCloud;
beforeEach(async () => {
  cloud = await startCloud();
});
afterEach(async () => {
  expect(cloud.fake.invalid).toEqual([]);
  await cloud.stop();
});

const at = `projects/${PROJECT}/locations/${REGION}`;
const dnsAccount = `kb-demo-dns@${PROJECT}.iam.gserviceaccount.com`;

async function dnsDeploy(path: string) {
  const clients = clientsOf(cloud);
  const inputs = await resolveGceInputs(clients, resolveGceSpec(loadCloudSpec(path, "gce"), path), path);
  const rec = new ChangeRecorder(false, silentProgress);
  await deployGceDiscovery({ clients, inputs, rec, pollMs: 1, sleep: async () => {} });
  return rec.changes.map(formatChange);
}

/** The deployed function's bundle, loaded as the runtime would (index.js of the uploaded zip). */
function deployedHandler(name: string) {
  const files = unzipSync(new Uint8Array(cloud.functions.source(name)!));
  expect(Object.keys(files).sort()).toEqual(["index.js", "package.json"]);
  expect(JSON.parse(Buffer.from(files["package.json"]!).toString()).main).toBe("index.js");
  const dir = join(repoRoot, "dist", ".bundle-check-gce");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "index.js"), files["index.js"]!);
  try {
    return require(join(dir, "index.js")) as {
      discover: unknown;
      createGceHandler: (deps: object) => (req: object, res: object) => Promise<void>;
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function response() {
  const answer: { status?: number; body?: unknown } = {};
  const res = {
    status(code: number) {
      answer.status = code;
      return res;
    },
    json(body: unknown) {
      answer.body = body;
    },
  };
  return { res, answer };
}

test("apply deploys the function, its schedule and triggers; the deployed bundle publishes the groups", async () => {
  const path = writeSpec(gceClusterYaml());
  await apply(cloud, path);
  const name = `${at}/functions/kubebake-demo-dns`;
  const fn = cloud.functions.functions.get(name)!;
  expect(fn.state).toBe("ACTIVE");
  const config = fn.config as {
    serviceConfig: Record<string, unknown>;
    buildConfig: Record<string, unknown>;
  };
  expect(config.buildConfig).toMatchObject({ runtime: "nodejs22", entryPoint: "discover" });
  expect(config.serviceConfig).toMatchObject({
    serviceAccountEmail: dnsAccount,
    maxInstanceCount: 1,
    maxInstanceRequestConcurrency: 1,
    ingressSettings: "ALLOW_INTERNAL_ONLY",
  });

  const job = cloud.scheduler.jobs.get(`${at}/jobs/kubebake-demo-dns`)!.config as {
    schedule: string;
    httpTarget: { uri: string; oidcToken: { serviceAccountEmail: string; audience: string } };
  };
  expect(job.schedule).toBe("* * * * *");
  expect(job.httpTarget.oidcToken).toEqual({ serviceAccountEmail: dnsAccount, audience: job.httpTarget.uri });
  expect(job.httpTarget.uri).toMatch(/^https:\/\/kubebake-demo-dns-/);
  const triggers = [...cloud.eventarc.triggers.values()].map(
    (t) => t.config as { eventFilters: { value: string }[] },
  );
  expect(triggers.map((t) => t.eventFilters.map((f) => f.value).sort())).toEqual(
    expect.arrayContaining([
      ["compute.googleapis.com", "google.cloud.audit.log.v1.written", "v1.compute.instances.insert"],
      ["compute.googleapis.com", "google.cloud.audit.log.v1.written", "v1.compute.instances.delete"],
    ]),
  );

  // The uploaded bundle, run with the deployed environment against the cloud, reconciles the records.
  const loaded = deployedHandler(name);
  expect(typeof loaded.discover).toBe("function");
  const env = config.serviceConfig.environmentVariables as Record<string, string>;
  const log: object[] = [];
  const handler = loaded.createGceHandler({
    computeUrl: cloud.url,
    dnsUrl: cloud.url,
    headers: async () => new Headers(await testAuth.getRequestHeaders()),
    env,
    log: (entry: object) => log.push(entry),
  });
  const { res, answer } = response();
  await handler({ headers: { "ce-type": "google.cloud.audit.log.v1.written" }, body: {} }, res);
  expect(answer.status).toBe(200);
  const ips = (role: string) =>
    [...cloud.resources.instances.values()]
      .filter((vm) => vm.name.startsWith(`kubebake-demo-${role}-`))
      .map((vm) => vm.networkIP)
      .sort();
  expect(cloud.dns.values("kubebake-demo", "masters.demo.k8s.")).toEqual(ips("masters"));
  expect(cloud.dns.values("kubebake-demo", "minions.demo.k8s.")).toEqual(ips("minions"));
  expect(cloud.dns.values("kubebake-demo", "etcd.demo.k8s.")).toEqual(ips("masters"));
  expect(log).toContainEqual(
    expect.objectContaining({ msg: "invoked", trigger: expect.objectContaining({ shape: "cloudevent" }) }),
  );

  // Missing configuration: a 500 (the trigger retries), with the reason logged.
  const bad = loaded.createGceHandler({
    computeUrl: cloud.url,
    dnsUrl: cloud.url,
    headers: async () => new Headers(),
    env: {},
    log: () => {},
  });
  const broken = response();
  await bad({ headers: {} }, broken.res);
  expect(broken.answer.status).toBe(500);

  expect(await dnsDeploy(path)).toEqual([]);
  await destroy(cloud);
  expect([...cloud.functions.functions.keys()]).toEqual([]);
  expect([...cloud.scheduler.jobs.keys()]).toEqual([]);
  expect([...cloud.eventarc.triggers.keys()]).toEqual([]);
  expect([...cloud.iam.accounts.keys()]).toEqual([]);
  const left = cloud.projectIam.policy(PROJECT).read(3).bindings ?? [];
  expect(JSON.stringify(left)).not.toMatch(/kubebake|kb-demo/);
});

test("the discovery account may read the groups, write its zone and invoke its function; minions get no project role", async () => {
  await apply(cloud, writeSpec(gceClusterYaml()));
  const bindings = cloud.projectIam.policy(PROJECT).read(3).bindings ?? [];
  const of = (member: string) =>
    bindings
      .filter((b) => b.members.includes(`serviceAccount:${member}`))
      .map((b) => b.role)
      .sort();
  expect(of(dnsAccount)).toEqual([
    `projects/${PROJECT}/roles/kubebake_demo_discovery`,
    "roles/eventarc.eventReceiver",
    "roles/run.invoker",
  ]);
  const invoker = bindings.find((b) => b.role === "roles/run.invoker")!;
  expect(invoker.condition?.expression).toBe(`resource.name == "${at}/services/kubebake-demo-dns"`);
  expect(of(`kb-demo-minions@${PROJECT}.iam.gserviceaccount.com`)).toEqual([]);
  expect(of(`kb-demo-masters@${PROJECT}.iam.gserviceaccount.com`)).toEqual([
    `projects/${PROJECT}/roles/kubebake_demo_masters`,
  ]);
  const zone = cloud.dns.policies.get("kubebake-demo")!.read(3).bindings ?? [];
  expect(zone).toEqual([
    expect.objectContaining({
      role: `projects/${PROJECT}/roles/kubebake_demo_records`,
      members: [`serviceAccount:${dnsAccount}`],
    }),
  ]);
  const records = cloud.iam.roles.get(`projects/${PROJECT}/roles/kubebake_demo_records`) as unknown as {
    includedPermissions: string[];
  };
  expect(records.includedPermissions.every((p) => p.startsWith("dns."))).toBe(true);
});

test("dns deploy: needs an applied cluster (exit 8), converges drift, and uploads a new bundle only when it changed", async () => {
  const path = writeSpec(gceClusterYaml());
  await expect(dnsDeploy(path)).rejects.toThrow(/run 'kubebake cluster apply' first/);
  await apply(cloud, path);
  const deployments = cloud.functions.deployments;
  // Someone pauses the schedule and edits a trigger: deploy puts both back, and does not redeploy code.
  const clients = clientsOf(cloud);
  await clients.scheduler.pauseJob({ name: `${at}/jobs/kubebake-demo-dns` });
  const changes = await dnsDeploy(path);
  expect(changes).toEqual(["~ update scheduler-job kubebake-demo-dns (* * * * *)"]);
  expect(cloud.scheduler.jobs.get(`${at}/jobs/kubebake-demo-dns`)!.state).toBe("ENABLED");
  expect(cloud.functions.deployments).toBe(deployments);
  // A function whose source label says another bundle: the bundle is uploaded and deployed again.
  const fn = cloud.functions.functions.get(`${at}/functions/kubebake-demo-dns`)!;
  (fn.config as { labels: Record<string, string> }).labels["kubebake-source"] = "0".repeat(63);
  expect(await dnsDeploy(path)).toEqual([
    expect.stringMatching(/^~ update cloud-function kubebake-demo-dns \(source [0-9a-f]{12}\)$/),
  ]);
  expect(cloud.functions.deployments).toBe(deployments + 1);
  expect(await dnsDeploy(path)).toEqual([]);
});
