/**
 * Discovery on GCE, deployed: the discovery core as a Cloud Function (2nd gen, one instance serving one
 * request at a time, so writers stay serialized), run every minute by Cloud Scheduler and by Eventarc when
 * Compute creates or deletes an instance (audit-log events; the function reconciles from truth, so which
 * instance does not matter). It acts as the cluster's `dns` service account, which may read the groups and
 * instances, write records in the cluster's zone only, and invoke this function only.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { discoveryEnvironment } from "../../discover/config";
import { packageRoot } from "../../util/package-root";
import { isPlanned } from "../changes";
import { ifFound, isStatus, type GceClients } from "./clients";
import { finished, waitFor, type GceBaseContext, type GceContext, type LongRunning } from "./context";
import { ExitCode, KubebakeError } from "../../errors";
import { readClusterId } from "./owner";
import { zonePath } from "./zone";
import {
  customRoleId,
  describedAs,
  DISCOVERY_ENTRY_POINT,
  DISCOVERY_EVENTS,
  DISCOVERY_READS,
  DISCOVERY_RUNTIME,
  discoveryFunctionId,
  discoveryJobId,
  discoveryTriggerId,
  labelsFor,
  managedZoneName,
  OWNER_LABEL,
  RECORD_PERMISSIONS,
  serviceAccountEmail,
  SOURCE_LABEL,
  type GceInputs,
} from "./desired";
import { gceDiscoveryConfig } from "./discovery";
import {
  ensureBinding,
  ensureCustomRole,
  ensureServiceAccount,
  memberOf,
  projectPolicyHolder,
  zonePolicyHolder,
} from "./identity";
import { foreign } from "./owner";

export const gceDiscoveryBundle = () => join(packageRoot(), "dist", "lambdas", "dns-discovery-gce.zip");

/** The schedule (events are best-effort: a missed one is caught within a minute). */
export const DISCOVERY_SCHEDULE = "* * * * *";

interface CloudFunction {
  name: string;
  state?: string;
  labels?: Record<string, string>;
  buildConfig?: { runtime?: string; entryPoint?: string };
  serviceConfig?: Record<string, unknown> & { uri?: string; environmentVariables?: Record<string, string> };
}

const location = (clients: GceClients) => `projects/${clients.project}/locations/${clients.region}`;

/** What the function runs with: the reconciler's settings and where it runs. */
export function functionServiceConfig(inputs: GceInputs, project: string) {
  return {
    serviceAccountEmail: serviceAccountEmail(project, inputs.spec.name, "dns"),
    // One instance, one request at a time: the schedule, an event and `dns sync` never write at once.
    maxInstanceCount: 1,
    maxInstanceRequestConcurrency: 1,
    timeoutSeconds: 60,
    availableMemory: "256Mi",
    // Reached only from Google (Scheduler, Eventarc) and the project's networks, never the internet.
    ingressSettings: "ALLOW_INTERNAL_ONLY",
    environmentVariables: {
      ...discoveryEnvironment(gceDiscoveryConfig(inputs)),
      GCE_PROJECT: project,
      GCE_REGION: inputs.spec.region,
    },
    allTrafficOnLatestRevision: true,
  };
}

/** The service settings kubebake sets (GCP answers more: the revision, the uri…). */
const SERVICE_KEYS = [
  "serviceAccountEmail",
  "maxInstanceCount",
  "maxInstanceRequestConcurrency",
  "timeoutSeconds",
  "availableMemory",
  "ingressSettings",
  "environmentVariables",
] as const;

/** The fields kubebake sets, as GCP answers them, to tell whether the function must change. */
const configShape = (fn: Pick<CloudFunction, "buildConfig" | "serviceConfig">) => ({
  runtime: fn.buildConfig?.runtime,
  entryPoint: fn.buildConfig?.entryPoint,
  service: SERVICE_KEYS.map((key) => (fn.serviceConfig as Record<string, unknown> | undefined)?.[key]),
});

/**
 * `kubebake dns deploy`: only the discovery parts of an applied cluster (its id and zone must exist),
 * converged; nothing is deleted.
 */
export async function deployGceDiscovery(base: GceBaseContext): Promise<void> {
  const { clients, inputs } = base;
  const clusterId = await readClusterId(clients, inputs.spec.name);
  const zone = managedZoneName(inputs.spec.name);
  const found = clusterId
    ? await ifFound(() =>
        clients.rest<{ labels?: Record<string, string> }>("dns", "GET", zonePath(clients.project, zone)),
      )
    : undefined;
  if (!clusterId || found?.labels?.[OWNER_LABEL] !== clusterId)
    throw new KubebakeError(
      `cluster ${inputs.spec.name}: expected its private zone ${zone} in project ${clients.project}; run 'kubebake cluster apply' first`,
      ExitCode.unsafeState,
    );
  await ensureGceDiscovery({ ...base, clusterId }, zone);
}

export async function ensureGceDiscovery(ctx: GceContext, zone: string): Promise<void> {
  const { clients, inputs } = ctx;
  const cluster = inputs.spec.name;
  const member = memberOf(clients, cluster, "dns");
  await ensureServiceAccount(ctx, "dns");
  const reads = await ensureCustomRole(
    ctx,
    customRoleId(cluster, "discovery"),
    DISCOVERY_READS,
    "discovery's reads",
  );
  const records = await ensureCustomRole(
    ctx,
    customRoleId(cluster, "records"),
    RECORD_PERMISSIONS,
    "discovery's records",
  );
  const project = projectPolicyHolder(clients);
  await ensureBinding(ctx, project, { role: reads, member, exclusive: true });
  await ensureBinding(ctx, zonePolicyHolder(clients, zone), { role: records, member, exclusive: true });
  // Eventarc delivers as the account, which must be an event receiver, and may invoke this function only.
  await ensureBinding(ctx, project, { role: "roles/eventarc.eventReceiver", member });
  await ensureBinding(ctx, project, {
    role: "roles/run.invoker",
    member,
    condition: {
      title: `kubebake ${cluster} discovery`,
      description: "the cluster's discovery function only",
      expression: `resource.name == "${location(clients)}/services/${discoveryFunctionId(cluster)}"`,
    },
  });
  const uri = await ensureFunction(ctx);
  await ensureJob(ctx, uri);
  for (const kind of Object.keys(DISCOVERY_EVENTS) as (keyof typeof DISCOVERY_EVENTS)[])
    await ensureTrigger(ctx, kind);
}

async function ensureFunction(ctx: GceContext): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const id = discoveryFunctionId(inputs.spec.name);
  const name = `${location(clients)}/functions/${id}`;
  const zip = readFileSync(gceDiscoveryBundle());
  const digest = createHash("sha256").update(zip).digest("hex").slice(0, 63);
  const labels = { ...labelsFor(inputs.spec, "dns", clusterId), [SOURCE_LABEL]: digest };
  const read = async () =>
    (await ifFound(() => clients.functions.getFunction({ name })))?.[0] as CloudFunction | undefined;
  let found = isPlanned(clusterId) ? undefined : await read();
  if (found && found.labels?.[OWNER_LABEL] !== clusterId)
    throw foreign("cloud function", id, found.labels?.[OWNER_LABEL]);
  // A deployment still under way (an earlier apply stopped waiting for it) is awaited, not raced.
  if (found?.state === "DEPLOYING" || found?.state === "DELETING")
    await waitFor(ctx, `the deployment of ${id} under way`, 15 * 60_000, async () => {
      found = await read();
      return found?.state !== "DEPLOYING" && found?.state !== "DELETING";
    });
  const serviceConfig = functionServiceConfig(inputs, clients.project);
  const buildConfig = { runtime: DISCOVERY_RUNTIME, entryPoint: DISCOVERY_ENTRY_POINT };
  // A function whose last deployment failed is deployed again, source and all.
  const newSource =
    found?.labels?.[SOURCE_LABEL] !== digest || (found !== undefined && found.state !== "ACTIVE");
  const reconfigured =
    found &&
    !isDeepStrictEqual(
      configShape(found),
      configShape({ buildConfig, serviceConfig: serviceConfig as never }),
    );
  if (found && !newSource && !reconfigured && isDeepStrictEqual({ ...found.labels }, labels))
    return uriOf(found, id);
  const detail = [newSource ? `source ${digest.slice(0, 12)}` : "", reconfigured ? "configuration" : ""]
    .filter(Boolean)
    .join(", ");
  const made = await rec.make(
    { action: found ? "update" : "create", kind: "cloud-function", name: id, detail: detail || "labels" },
    async () => {
      const fn = {
        name,
        description: describedAs(inputs.spec, clusterId, "DNS discovery"),
        labels,
        environment: "GEN_2" as const,
        buildConfig: { ...buildConfig } as Record<string, unknown>,
        serviceConfig: serviceConfig as Record<string, unknown>,
      };
      if (newSource) {
        const [upload] = await clients.functions.generateUploadUrl({
          parent: location(clients),
          environment: "GEN_2",
        });
        // A signed URL: no credentials of ours go with the bytes.
        const put = await fetch(upload.uploadUrl!, {
          method: "PUT",
          headers: { "content-type": "application/zip" },
          body: zip,
        });
        if (!put.ok) throw new Error(`uploading the discovery function's source: HTTP ${put.status}`);
        fn.buildConfig.source = { storageSource: upload.storageSource };
      }
      const paths = [
        "labels",
        "description",
        "service_config",
        "build_config.runtime",
        "build_config.entry_point",
      ];
      if (newSource) paths.push("build_config.source");
      if (found) {
        const [operation] = await clients.functions.updateFunction({ function: fn, updateMask: { paths } });
        return settled(
          ctx,
          operation,
          (op) => clients.functions.checkUpdateFunctionProgress(op),
          `deploying ${id}`,
        );
      }
      const [operation] = await clients.functions.createFunction({
        parent: location(clients),
        functionId: id,
        function: fn,
      });
      return settled(
        ctx,
        operation,
        (op) => clients.functions.checkCreateFunctionProgress(op),
        `deploying ${id}`,
      );
    },
    // A plan keeps the function's URL (an update keeps it); a new one's is known once deployed.
    found ?? ({ name, serviceConfig: { uri: `https://${id}.(planned)` } } as CloudFunction),
  );
  return uriOf(made as CloudFunction, id);
}

/**
 * Polls an official client's long-running operation (its `check…Progress`) every pollMs until done; its
 * error is thrown, its result returned.
 */
async function settled<R>(
  ctx: Pick<GceContext, "pollMs" | "sleep">,
  started: {
    name?: string | null;
    done?: boolean | null;
    result?: R;
    error?: { message?: string | null } | null;
  },
  check: (name: string) => Promise<{ done?: boolean | null; result?: unknown; error?: unknown }>,
  what: string,
): Promise<R> {
  let operation: { done?: boolean | null; result?: unknown; error?: unknown } = started;
  while (!operation.done) {
    await ctx.sleep(ctx.pollMs);
    operation = await check(started.name!);
  }
  const error = operation.error as { message?: string } | undefined;
  if (error) throw new Error(`${what}: ${error.message ?? String(error)}`);
  return operation.result as R;
}

/** The function's URL, which the schedule calls; a deployed function without one is GCP's failure. */
function uriOf(fn: CloudFunction | undefined, id: string): string {
  const uri = fn?.serviceConfig?.uri;
  if (!uri)
    throw new Error(
      `the cloud function ${id} has no URL after its deployment (state ${fn?.state ?? "unknown"})`,
    );
  return uri;
}

/** The one-minute schedule: a POST to the function with an identity token of the discovery account. */
async function ensureJob(ctx: GceContext, uri: string): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const id = discoveryJobId(inputs.spec.name);
  const name = `${location(clients)}/jobs/${id}`;
  const email = serviceAccountEmail(clients.project, inputs.spec.name, "dns");
  const body = Buffer.from(JSON.stringify({ source: "kubebake.schedule" }));
  const want = {
    name,
    description: describedAs(inputs.spec, clusterId, "runs DNS discovery every minute"),
    schedule: DISCOVERY_SCHEDULE,
    timeZone: "Etc/UTC",
    attemptDeadline: { seconds: 60 },
    httpTarget: {
      uri,
      httpMethod: "POST" as const,
      headers: { "Content-Type": "application/json" },
      body,
      oidcToken: { serviceAccountEmail: email, audience: uri },
    },
  };
  type Job = {
    description?: string | null;
    schedule?: string | null;
    timeZone?: string | null;
    state?: unknown;
    attemptDeadline?: { seconds?: unknown } | null;
    httpTarget?: {
      uri?: string | null;
      httpMethod?: unknown;
      body?: Uint8Array | string | null;
      oidcToken?: { serviceAccountEmail?: string | null; audience?: string | null } | null;
    } | null;
  };
  const found = isPlanned(clusterId)
    ? undefined
    : ((await ifFound(() => clients.scheduler.getJob({ name })))?.[0] as Job | undefined);
  if (found && !found.description?.includes(`owner ${clusterId}:`))
    throw foreign("scheduler job", id, undefined);
  const shape = (job: Job) => ({
    schedule: job.schedule,
    timeZone: job.timeZone,
    deadline: Number(job.attemptDeadline?.seconds ?? 0),
    uri: job.httpTarget?.uri,
    method: String(job.httpTarget?.httpMethod),
    audience: job.httpTarget?.oidcToken?.audience,
    account: job.httpTarget?.oidcToken?.serviceAccountEmail,
    body: Buffer.from(job.httpTarget?.body ?? "").toString("base64"),
  });
  if (found && isDeepStrictEqual(shape(found), shape(want)) && found.state !== "PAUSED") return;
  await rec.make(
    { action: found ? "update" : "create", kind: "scheduler-job", name: id, detail: DISCOVERY_SCHEDULE },
    async () => {
      if (found)
        await clients.scheduler.updateJob({
          job: want,
          updateMask: { paths: ["schedule", "time_zone", "attempt_deadline", "http_target", "description"] },
        });
      else await clients.scheduler.createJob({ parent: location(clients), job: want });
      if (found?.state === "PAUSED") await clients.scheduler.resumeJob({ name });
    },
    undefined,
  );
}

/** An Eventarc trigger on Compute's audit log entries of one method, delivered to the function's service. */
async function ensureTrigger(ctx: GceContext, kind: keyof typeof DISCOVERY_EVENTS): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const cluster = inputs.spec.name;
  const id = discoveryTriggerId(cluster, kind);
  const name = `${location(clients)}/triggers/${id}`;
  const want = {
    eventFilters: [
      { attribute: "type", value: "google.cloud.audit.log.v1.written" },
      { attribute: "serviceName", value: "compute.googleapis.com" },
      { attribute: "methodName", value: DISCOVERY_EVENTS[kind] },
    ],
    serviceAccount: serviceAccountEmail(clients.project, cluster, "dns"),
    destination: { cloudRun: { service: discoveryFunctionId(cluster), region: inputs.spec.region } },
    labels: labelsFor(inputs.spec, `dns-${kind}`, clusterId),
  };
  type Trigger = Partial<typeof want>;
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.rest<Trigger>("eventarc", "GET", `v1/${name}`));
  if (found && found.labels?.[OWNER_LABEL] !== clusterId)
    throw foreign("eventarc trigger", id, found.labels?.[OWNER_LABEL]);
  const shape = (t: Trigger) => ({
    filters: [...(t.eventFilters ?? [])].map((f) => `${f.attribute}=${f.value}`).sort(),
    serviceAccount: t.serviceAccount,
    service: t.destination?.cloudRun?.service,
    region: t.destination?.cloudRun?.region,
    labels: t.labels,
  });
  if (found && isDeepStrictEqual(shape(found), shape(want))) return;
  const again = await rec.make(
    {
      action: found ? "update" : "create",
      kind: "eventarc-trigger",
      name: id,
      detail: DISCOVERY_EVENTS[kind],
    },
    async () => {
      if (found) {
        const mask = "eventFilters,serviceAccount,destination,labels";
        await finished(
          ctx,
          await clients.rest<LongRunning>("eventarc", "PATCH", `v1/${name}?updateMask=${mask}`, want),
          id,
        );
        return false;
      }
      try {
        const started = await clients.rest<LongRunning>(
          "eventarc",
          "POST",
          `v1/${location(clients)}/triggers?triggerId=${id}`,
          want,
        );
        await finished(ctx, started, `the trigger ${id}`);
        return false;
      } catch (error) {
        if (!isStatus(error, 409)) throw error;
        // An earlier apply's create still under way (its answer lost): awaited, then compared like any other.
        await waitFor(ctx, `the creation of ${id} under way`, 10 * 60_000, async () =>
          Boolean(await ifFound(() => clients.rest("eventarc", "GET", `v1/${name}`))),
        );
        return true;
      }
    },
    false,
  );
  if (again) await ensureTrigger(ctx, kind);
}
