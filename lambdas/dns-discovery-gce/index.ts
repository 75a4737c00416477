/**
 * The DNS-discovery Cloud Function (2nd gen, HTTP): the same reconciliation from truth as the Lambda, run
 * by Cloud Scheduler every minute and by Eventarc when Compute creates or deletes an instance. Whatever
 * fired it, it reconciles all three records. `kubebake dns deploy` sets its environment and runs it with
 * at most one instance handling one request (writers stay serialized). It answers 500 when a record was
 * not confirmed, so that its trigger retries; one JSON object per log line (Cloud Logging reads
 * `severity`).
 */
import { discoveryConfigFromEnv } from "../../src/discover/config";
import { gceDiscoveryPorts } from "../../src/discover/gce";
import { restDiscoveryCompute } from "../../src/discover/gce-rest";
import { reconcile, ReconcileFailed, reconcileSummary } from "../../src/discover/reconcile";

/** The function's timeout (dns deploy sets 60 s) less time for one more call and the logs. */
export const BUDGET_MS = 50_000;

type Log = (entry: Record<string, unknown>) => void;
const stdoutLog: Log = (entry) =>
  process.stdout.write(
    JSON.stringify({
      severity: entry.level === "error" ? "ERROR" : "INFO",
      time: new Date().toISOString(),
      ...entry,
    }) + "\n",
  );

/** The parts of the Functions Framework's request and response (Express's) the handler uses. */
export interface HttpRequest {
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
}
export interface HttpResponse {
  status(code: number): HttpResponse;
  json(body: unknown): void;
}

export interface GceHandlerDeps {
  /** https://compute.googleapis.com and https://dns.googleapis.com, or one fake's URL. */
  computeUrl: string;
  dnsUrl: string;
  /** Request headers with the function's access token. */
  headers(): Promise<Headers>;
  env?: NodeJS.ProcessEnv;
  log?: Log;
}

/** What fired the function, for the log: Eventarc sends CloudEvents headers; the schedule its own body. */
function describeTrigger(request: HttpRequest): Record<string, unknown> {
  const header = (name: string) => {
    const value = request.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  if (header("ce-type"))
    return {
      shape: "cloudevent",
      type: header("ce-type"),
      subject: header("ce-subject") ?? null,
      id: header("ce-id"),
    };
  const body = request.body as { source?: unknown } | undefined;
  return { shape: "http", source: typeof body?.source === "string" ? body.source : "unknown" };
}

export function createGceHandler(deps: GceHandlerDeps) {
  const env = deps.env ?? process.env;
  const log = deps.log ?? stdoutLog;
  return async (request: HttpRequest, response: HttpResponse): Promise<void> => {
    const started = Date.now();
    log({ level: "info", msg: "invoked", trigger: describeTrigger(request) });
    let config;
    let target;
    try {
      config = discoveryConfigFromEnv(env);
      const project = env.GCE_PROJECT;
      const region = env.GCE_REGION;
      if (!project || !region)
        throw new Error("environment variables GCE_PROJECT and GCE_REGION must be set");
      target = { project, region };
    } catch (error) {
      log({ level: "error", msg: "bad configuration", error: (error as Error).message });
      response.status(500).json({ error: "bad configuration" });
      return;
    }
    const ports = gceDiscoveryPorts(
      {
        ...restDiscoveryCompute(deps.computeUrl, deps.headers),
        dns: { baseUrl: deps.dnsUrl, headers: deps.headers },
      },
      target,
    );
    try {
      const result = await reconcile(ports, { ...config, deadline: started + BUDGET_MS, log });
      const summary = reconcileSummary(config.cluster, result, started);
      log({ level: "info", msg: "reconciled", ...summary });
      response.status(200).json({ ...summary, desired: result.desired, written: result.writes });
    } catch (error) {
      // ReconcileFailed has logged one line per record already; anything else is logged here, once.
      if (!(error instanceof ReconcileFailed))
        log({ level: "error", msg: "invocation failed", cluster: config.cluster, error: String(error) });
      response.status(500).json({ error: String((error as Error).message ?? error) });
    }
  };
}

/** The function's own access token, from the metadata server of the instance it runs on. */
async function metadataHeaders(): Promise<Headers> {
  const answer = await fetch(
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
    { headers: { "Metadata-Flavor": "Google" } },
  );
  if (!answer.ok) throw new Error(`the metadata server gave no token (${answer.status})`);
  const { access_token: token } = (await answer.json()) as { access_token: string };
  return new Headers({ authorization: `Bearer ${token}` });
}

/** The entry point `kubebake dns deploy` names. */
export const discover = createGceHandler({
  computeUrl: "https://compute.googleapis.com",
  dnsUrl: "https://dns.googleapis.com",
  headers: metadataHeaders,
});
