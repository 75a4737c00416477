/** DiscoveryPorts on AWS: Auto Scaling and EC2 for the truth, Route 53 for the records. */
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  ChangeResourceRecordSetsCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
} from "@aws-sdk/client-route-53";
import { normaliseName } from "./names";
import {
  RecordConflict,
  Throttled,
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
  "PriorRequestNotComplete",
  "RequestLimitExceeded",
]);
// moto answers a DELETE whose values differ with InvalidInput where Route 53 says InvalidChangeBatch.
const CONFLICT = new Set(["InvalidChangeBatch", "InvalidInput"]);

export function awsDiscoveryPorts(clients: DiscoveryClients): DiscoveryPorts {
  return {
    async groups(cluster) {
      const groups: ClusterGroup[] = [];
      let NextToken: string | undefined;
      do {
        const page = await clients.autoScaling.send(
          new DescribeAutoScalingGroupsCommand({
            Filters: [{ Name: "tag:KubernetesCluster", Values: [cluster] }],
            MaxRecords: 100,
            NextToken,
          }),
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
        const page = await clients.ec2.send(
          new DescribeInstancesCommand({
            Filters: [
              { Name: "tag:KubernetesCluster", Values: [cluster] },
              { Name: "instance-state-name", Values: ["running"] },
            ],
            MaxResults: 1000,
            NextToken,
          }),
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
      let start: { StartRecordName?: string; StartRecordType?: "A"; StartRecordIdentifier?: string } = {};
      for (;;) {
        const page = await clients.route53.send(
          new ListResourceRecordSetsCommand({ HostedZoneId: zoneId, MaxItems: 300, ...start }),
        );
        for (const set of page.ResourceRecordSets ?? []) {
          if (set.Type !== "A" || set.AliasTarget || set.SetIdentifier) continue;
          records.push({
            name: normaliseName(set.Name ?? ""),
            type: "A",
            ttl: set.TTL ?? 0,
            values: (set.ResourceRecords ?? []).map((r) => r.Value ?? ""),
          });
        }
        if (!page.IsTruncated) return records;
        start = {
          StartRecordName: page.NextRecordName,
          StartRecordType: page.NextRecordType as "A",
          StartRecordIdentifier: page.NextRecordIdentifier,
        };
      }
    },

    async changeRecords(zoneId, changes: RecordChange[]) {
      try {
        await clients.route53.send(
          new ChangeResourceRecordSetsCommand({
            HostedZoneId: zoneId,
            ChangeBatch: {
              Comment: "kubebake dns discovery",
              Changes: changes.map(({ action, record }) => ({
                Action: action,
                ResourceRecordSet: {
                  Name: record.name,
                  Type: record.type,
                  TTL: record.ttl,
                  ResourceRecords: record.values.map((Value) => ({ Value })),
                },
              })),
            },
          }),
        );
      } catch (error) {
        const name = (error as Error).name;
        if (CONFLICT.has(name)) throw new RecordConflict((error as Error).message);
        if (THROTTLED.has(name)) throw new Throttled((error as Error).message);
        throw error;
      }
    },

    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}
