/** DiscoveryPorts on AWS: Auto Scaling and EC2 for the truth, Route 53 for the records. */
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  ChangeResourceRecordSetsCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
  type RRType,
} from "@aws-sdk/client-route-53";
import { normaliseName } from "./names";
import {
  RecordConflict,
  Rejected,
  Transient,
  type ClusterGroup,
  type DiscoveryPorts,
  type RecordChange,
  type RecordSet,
} from "./reconcile";

export interface DiscoveryClients {
  autoScaling: AutoScalingClient;
  ec2: EC2Client;
  route53: Route53Client;
}

const THROTTLED = new Set([
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "TooManyRequestsException",
  "PriorRequestNotComplete",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "SlowDown",
]);
/** Node's network errors, by name or by code (a plain Error's code may be anything, or missing). */
const NETWORK = new Set<string | undefined>([
  "TimeoutError",
  "RequestTimeout",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
]);
/** Route 53's InvalidChangeBatch messages for a record that is not what the batch expected: a lost race. */
const LOST_RACE =
  /but it was not found|values provided do not match the current values|but it already exists/i;

/**
 * An SDK error as the reconciler's kinds: Transient (throttling, 5xx, network: retry after a back-off),
 * RecordConflict (a lost compare-and-swap), Rejected (InvalidChangeBatch or InvalidInput for any other
 * reason: a limit, a CNAME or routing-policy set at the name); anything else as it was (AccessDenied…).
 */
export function classifyAwsError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const meta = error as Error & { $metadata?: { httpStatusCode?: number }; $fault?: string; code?: string };
  const status = meta.$metadata?.httpStatusCode ?? 0;
  if (
    THROTTLED.has(error.name) ||
    NETWORK.has(error.name) ||
    NETWORK.has(meta.code) ||
    status >= 500 ||
    status === 429 ||
    meta.$fault === "server"
  ) {
    return new Transient(`${error.name}: ${error.message}`, { cause: error });
  }
  if (error.name === "InvalidChangeBatch" || error.name === "InvalidInput") {
    return LOST_RACE.test(error.message)
      ? new RecordConflict(error.message, { cause: error })
      : new Rejected(`${error.name}: ${error.message}`, { cause: error });
  }
  return error;
}

async function call<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw classifyAwsError(error);
  }
}

/** Page sizes of the three listings: the APIs' maxima (tests pass small ones to turn every page). */
export const PAGE_SIZES = { groups: 100, instances: 1000, records: 300 };

export function awsDiscoveryPorts(clients: DiscoveryClients, pages = PAGE_SIZES): DiscoveryPorts {
  return {
    async groups(cluster) {
      const groups: ClusterGroup[] = [];
      let NextToken: string | undefined;
      do {
        const page = await call(() =>
          clients.autoScaling.send(
            new DescribeAutoScalingGroupsCommand({
              Filters: [{ Name: "tag:KubernetesCluster", Values: [cluster] }],
              MaxRecords: pages.groups,
              NextToken,
            }),
          ),
        );
        for (const group of page.AutoScalingGroups ?? []) {
          groups.push({
            name: group.AutoScalingGroupName ?? "",
            role: group.Tags?.find((t) => t.Key === "Role")?.Value,
            members: (group.Instances ?? []).map((i) => ({
              instanceId: i.InstanceId ?? "",
              lifecycleState: i.LifecycleState ?? "",
              healthStatus: i.HealthStatus ?? "",
            })),
          });
        }
        NextToken = page.NextToken;
      } while (NextToken);
      return groups;
    },

    async privateIps(cluster) {
      const ips = new Map<string, string>();
      let NextToken: string | undefined;
      do {
        const page = await call(() =>
          clients.ec2.send(
            new DescribeInstancesCommand({
              Filters: [
                { Name: "tag:KubernetesCluster", Values: [cluster] },
                // A booting instance has its private IP already: a master that Auto Scaling holds in
                // Pending:Wait (and announces then) may still be pending in EC2, and belongs in `etcd.`.
                // The role records are unaffected: an InService member is never pending in EC2.
                { Name: "instance-state-name", Values: ["pending", "running"] },
              ],
              MaxResults: pages.instances,
              NextToken,
            }),
          ),
        );
        for (const instance of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
          if (instance.InstanceId && instance.PrivateIpAddress)
            ips.set(instance.InstanceId, instance.PrivateIpAddress);
        }
        NextToken = page.NextToken;
      } while (NextToken);
      return ips;
    },

    async readRecords(zoneId) {
      const records: RecordSet[] = [];
      let start: { StartRecordName?: string; StartRecordType?: RRType; StartRecordIdentifier?: string } = {};
      for (;;) {
        const page = await call(() =>
          clients.route53.send(
            new ListResourceRecordSetsCommand({ HostedZoneId: zoneId, MaxItems: pages.records, ...start }),
          ),
        );
        for (const set of page.ResourceRecordSets ?? []) {
          // Every type: a CNAME, alias or weighted set at one of our names must be seen to be refused.
          records.push({
            name: normaliseName(set.Name ?? ""),
            type: set.Type ?? "",
            ttl: set.TTL ?? 0,
            values: (set.ResourceRecords ?? []).map((r) => r.Value ?? ""),
            ...(set.AliasTarget ? { alias: true } : {}),
            ...(set.SetIdentifier !== undefined ? { setIdentifier: set.SetIdentifier } : {}),
          });
        }
        if (!page.IsTruncated) return records;
        start = {
          StartRecordName: page.NextRecordName,
          StartRecordType: page.NextRecordType,
          StartRecordIdentifier: page.NextRecordIdentifier,
        };
      }
    },

    async changeRecords(zoneId, changes: RecordChange[]) {
      await call(() =>
        clients.route53.send(
          new ChangeResourceRecordSetsCommand({
            HostedZoneId: zoneId,
            ChangeBatch: {
              Comment: "kubebake dns discovery",
              Changes: changes.map(({ action, record }) => ({
                Action: action,
                ResourceRecordSet: {
                  Name: record.name,
                  Type: record.type as RRType,
                  TTL: record.ttl,
                  ResourceRecords: record.values.map((Value) => ({ Value })),
                },
              })),
            },
          }),
        ),
      );
    },

    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
  };
}
