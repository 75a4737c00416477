/** What the converge tests share: clients that fail at the Nth mutating call, and what exists afterwards. */
import {
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  DescribeInstancesCommand,
  DescribeInternetGatewaysCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
} from "@aws-sdk/client-ec2";
import {
  DescribeKeyCommand,
  ListAliasesCommand,
  ListKeysCommand,
  ListResourceTagsCommand,
} from "@aws-sdk/client-kms";
import { ListHostedZonesByNameCommand } from "@aws-sdk/client-route-53";
import { DeleteObjectCommand, ListBucketsCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { isMutating, type AwsClients } from "../../src/launch/aws/clients";
import type { Change } from "../../src/launch/changes";
import { keyAlias, snapshotBucketName } from "../../src/launch/aws/desired";
import { liveEndpoints } from "../../src/launch/aws/endpoints";
import { storedParameterNames } from "../../src/launch/aws/secrets";
import { clientsFor, clusterYaml, REGION } from "./fixture";

export class InjectedFailure extends Error {}

/** Calls whose answer is an id AWS chose (the next run finds the resource by its tags, never by the id). */
export const AWS_CHOSEN_ID =
  /^(ec2:Create(Vpc|Subnet|InternetGateway|RouteTable|SecurityGroup|LaunchTemplate|VpcEndpoint)|route53:CreateHostedZone|kms:CreateKey)$/;

/**
 * The steps worth failing at, 1-based. In a run of identical consecutive calls (one ssm:PutParameter per
 * PKI file) the same code fails at each; the states left differ only in how many of the run's writes
 * landed. The first, the second and the last of a run stand for the rest: none landed, some did, all but
 * one did. Every other step is kept.
 */
export function representativeSteps(calls: string[]): number[] {
  return calls
    .map((call, index) => ({ call, index }))
    .filter(({ call, index }) => {
      let start = index;
      while (start > 0 && calls[start - 1] === call) start--;
      let end = index;
      while (end < calls.length - 1 && calls[end + 1] === call) end++;
      return index - start < 2 || index === end;
    })
    .map(({ index }) => index + 1);
}

export const list = (changes: Change[]) => changes.map((c) => `${c.action} ${c.kind} ${c.name}`);

/**
 * Clients whose `failAt`-th mutating call fails (0: never): before it reaches AWS, or after AWS made the
 * change and the answer was lost (the harder case: the resource exists but the caller never saw its id).
 */
export function failingClients(endpoint: string, failAt: () => number, when: "before" | "after" = "before") {
  let mutating = 0;
  const fail = (call: string) => {
    if (isMutating(call) && ++mutating === failAt())
      throw new InjectedFailure(`injected failure ${when} ${call}`);
  };
  return when === "before" ? clientsFor(endpoint, fail) : clientsFor(endpoint, undefined, fail);
}

/** The states of the cluster's KMS keys (by its tag), sorted: "Enabled" while it lives. */
export async function keyStates(clients: AwsClients): Promise<string[]> {
  const states: string[] = [];
  for (const { KeyId } of (await clients.kms.send(new ListKeysCommand({}))).Keys ?? []) {
    const tags = (await clients.kms.send(new ListResourceTagsCommand({ KeyId }))).Tags ?? [];
    if (!tags.some((t) => t.TagKey === "KubernetesCluster" && t.TagValue === "demo")) continue;
    states.push((await clients.kms.send(new DescribeKeyCommand({ KeyId }))).KeyMetadata!.KeyState!);
  }
  return states.sort();
}

export async function inventory(clients: AwsClients) {
  const cluster = [{ Name: "tag:KubernetesCluster", Values: ["demo"] }];
  const running = (
    await clients.ec2.send(
      new DescribeInstancesCommand({
        Filters: [...cluster, { Name: "instance-state-name", Values: ["running"] }],
      }),
    )
  ).Reservations!.flatMap((r) => r.Instances ?? []);
  const zones = (await clients.route53.send(new ListHostedZonesByNameCommand({}))).HostedZones!;
  const hooks = (
    await clients.autoScaling.send(
      new DescribeLifecycleHooksCommand({ AutoScalingGroupName: "kubebake-demo-masters" }),
    )
  ).LifecycleHooks!;
  return {
    vpcs: (await clients.ec2.send(new DescribeVpcsCommand({ Filters: cluster }))).Vpcs!.length,
    subnets: (await clients.ec2.send(new DescribeSubnetsCommand({ Filters: cluster }))).Subnets!.length,
    securityGroups: (await clients.ec2.send(new DescribeSecurityGroupsCommand({ Filters: cluster })))
      .SecurityGroups!.length,
    internetGateways: (await clients.ec2.send(new DescribeInternetGatewaysCommand({ Filters: cluster })))
      .InternetGateways!.length,
    // Live ones only: AWS, and moto, list a deleted endpoint for a while.
    vpcEndpoints: (await liveEndpoints(clients, cluster)).length,
    groups: (await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ Filters: cluster })))
      .AutoScalingGroups!.length,
    instances: running.length,
    parameters: (await storedParameterNames({ clients }, "demo")).size,
    zones: zones.filter((z) => z.Name === "demo.k8s.").length,
    buckets: ((await clients.s3.send(new ListBucketsCommand({}))).Buckets ?? []).filter((b) =>
      b.Name!.startsWith("kubebake-demo-"),
    ).length,
    launchHooks: hooks.map((h) => `${h.LifecycleHookName} ${h.DefaultResult} ${h.HeartbeatTimeout}`),
    // Usable keys only: a destroyed cluster's key stays PendingDeletion for 7 days.
    keys: (await keyStates(clients)).filter((state) => state !== "PendingDeletion").length,
    keyAliases: ((await clients.kms.send(new ListAliasesCommand({}))).Aliases ?? []).filter(
      (a) => a.AliasName === keyAlias("demo"),
    ).length,
  };
}

export const spec = () =>
  clusterYaml({
    groups: {
      masters: { count: 1, instanceType: "t3.medium" },
      minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
    },
  });

/** What masters leave in the snapshot bucket: snapshots, one overwritten (two versions), one deleted. */
export async function putSnapshots(clients: AwsClients, account = "123456789012") {
  const Bucket = snapshotBucketName(account, REGION, "demo");
  for (const key of ["1.db", "2.db", "2.db", "3.db"])
    await clients.s3.send(new PutObjectCommand({ Bucket, Key: `demo/etcd/${key}`, Body: key }));
  await clients.s3.send(new DeleteObjectCommand({ Bucket, Key: "demo/etcd/3.db" }));
}
