/**
 * The DNS-discovery Lambda. Every invocation (an Auto Scaling event or the one-minute schedule) runs the
 * same reconciliation from truth; the event is only logged. Configuration comes from the environment
 * that `kubebake dns deploy` sets.
 */
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { Route53Client } from "@aws-sdk/client-route-53";
import { awsDiscoveryPorts, type DiscoveryClients } from "../../src/discover/aws";
import { discoveryConfigFromEnv } from "../../src/discover/config";
import { reconcile } from "../../src/discover/reconcile";

interface TriggerEvent {
  id?: string;
  source?: string;
  "detail-type"?: string;
  detail?: { AutoScalingGroupName?: string; EC2InstanceId?: string; StatusCode?: string };
}

const log = (entry: Record<string, unknown>) =>
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + "\n");

/** A handler bound to clients (tests pass clients pointed at an emulator). */
export function createHandler(clients: () => DiscoveryClients, env: NodeJS.ProcessEnv = process.env) {
  let cached: DiscoveryClients | undefined;
  return async (event: TriggerEvent) => {
    const config = discoveryConfigFromEnv(env);
    log({
      level: "info",
      msg: "invoked",
      cluster: config.cluster,
      trigger: {
        id: event?.id,
        source: event?.source,
        detailType: event?.["detail-type"],
        group: event?.detail?.AutoScalingGroupName,
        instance: event?.detail?.EC2InstanceId,
      },
    });
    cached ??= clients();
    const started = Date.now();
    const result = await reconcile(awsDiscoveryPorts(cached), { ...config, log });
    const summary = {
      cluster: config.cluster,
      masters: result.desired.masters.length,
      minions: result.desired.minions.length,
      writes: result.writes.length,
      conflicts: result.conflicts,
      throttles: result.throttles,
      ms: Date.now() - started,
    };
    log({ level: "info", msg: "reconciled", ...summary });
    return summary;
  };
}

export const handler = createHandler(() => {
  // The runtime's SDK retries throttled reads itself; writes are retried by the reconciler.
  return { autoScaling: new AutoScalingClient({}), ec2: new EC2Client({}), route53: new Route53Client({}) };
});
