/**
 * The DNS-discovery Lambda. Every invocation (an Auto Scaling event or the one-minute schedule) runs the
 * same reconciliation from truth; the event is only logged. Configuration comes from the environment
 * that `kubebake dns deploy` sets. The function runs with reserved concurrency 1 (one invocation at a
 * time; see docs/architecture.md), logs one JSON object per line, and fails the invocation — after a
 * logged reason — whenever a record was not confirmed, so that Lambda retries it.
 */
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { Route53Client } from "@aws-sdk/client-route-53";
import { awsDiscoveryPorts, type DiscoveryClients } from "../../src/discover/aws";
import { discoveryConfigFromEnv } from "../../src/discover/config";
import { reconcile, ReconcileFailed, reconcileSummary } from "../../src/discover/reconcile";

/** The part of Lambda's context object the handler uses. */
export interface InvocationContext {
  getRemainingTimeInMillis(): number;
}

/** Stop retrying this long before Lambda's timeout: one more SDK call and the logs must still fit. */
export const SAFETY_MARGIN_MS = 10_000;

type Log = (entry: Record<string, unknown>) => void;
const stdoutLog: Log = (entry) =>
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + "\n");

type Fields = Record<string, unknown>;
const object = (v: unknown): Fields | null => (v !== null && typeof v === "object" ? (v as Fields) : null);

/** What invoked us, for the log: EventBridge (Auto Scaling or the schedule), SNS, or an unknown shape. */
export function describeTrigger(event: unknown): Fields {
  const e = object(event);
  if (e === null) return { shape: "unknown", type: event === null ? "null" : typeof event };
  if (Array.isArray(e.Records)) {
    return {
      shape: "records",
      records: e.Records.map((record: unknown) => {
        const r = object(record);
        const sns = object(r?.Sns);
        if (sns)
          return { source: "aws.sns", topic: sns.TopicArn, subject: sns.Subject ?? null, id: sns.MessageId };
        return { source: r?.eventSource ?? r?.EventSource ?? "unknown" };
      }),
    };
  }
  if (typeof e.source === "string" || typeof e["detail-type"] === "string") {
    const detail = object(e.detail);
    return {
      shape: "eventbridge",
      id: e.id,
      source: e.source,
      detailType: e["detail-type"],
      resources: e.resources,
      ...(detail === null ? { detail: e.detail === undefined ? "missing" : null } : {}),
      ...(detail?.AutoScalingGroupName ? { group: detail.AutoScalingGroupName } : {}),
      ...(detail?.EC2InstanceId ? { instance: detail.EC2InstanceId } : {}),
      ...(detail?.StatusCode ? { status: detail.StatusCode } : {}),
      ...(detail?.LifecycleTransition ? { transition: detail.LifecycleTransition } : {}),
    };
  }
  return { shape: "unknown", keys: Object.keys(e).slice(0, 10) };
}

/** A handler bound to clients (tests pass clients pointed at an emulator). */
export function createHandler(
  clients: () => DiscoveryClients,
  env: NodeJS.ProcessEnv = process.env,
  log: Log = stdoutLog,
) {
  let cached: DiscoveryClients | undefined;
  return async (event: unknown, context?: InvocationContext) => {
    const started = Date.now();
    // Without a context (tests, the CLI) the bound is Lambda's own 60 s timeout.
    const remaining = context?.getRemainingTimeInMillis() ?? 60_000;
    const deadline = started + remaining - SAFETY_MARGIN_MS;
    log({ level: "info", msg: "invoked", trigger: describeTrigger(event), remainingMs: remaining });
    let config;
    try {
      config = discoveryConfigFromEnv(env);
    } catch (error) {
      log({ level: "error", msg: "bad configuration", error: (error as Error).message });
      throw error;
    }
    try {
      cached ??= clients();
      const result = await reconcile(awsDiscoveryPorts(cached), { ...config, deadline, log });
      const summary = reconcileSummary(config.cluster, result, started);
      log({ level: "info", msg: "reconciled", ...summary });
      return { ...summary, desired: result.desired, written: result.writes };
    } catch (error) {
      // ReconcileFailed has logged one line per record already; anything else is logged here, once.
      if (!(error instanceof ReconcileFailed)) {
        log({ level: "error", msg: "invocation failed", cluster: config.cluster, error: String(error) });
      }
      throw error;
    }
  };
}

export const handler = createHandler(() => {
  // One SDK attempt per call, none hanging: the reconciler retries reads and writes itself (network errors
  // included), under the invocation's deadline.
  const settings = { maxAttempts: 1, requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000 } };
  return {
    autoScaling: new AutoScalingClient(settings),
    ec2: new EC2Client(settings),
    route53: new Route53Client(settings),
  };
});
