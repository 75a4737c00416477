/** What the converge tests share: clients that fail at the Nth mutating call, and what exists afterwards. */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
} from "@aws-sdk/client-ec2";
import { ListHostedZonesByNameCommand } from "@aws-sdk/client-route-53";
import { isMutating, type AwsClients } from "../../src/launch/aws/clients";
import type { Change } from "../../src/launch/changes";
import { storedParameterNames } from "../../src/launch/aws/secrets";
import { clientsFor, clusterYaml } from "./fixture";

export class InjectedFailure extends Error {}

/** Calls whose answer is an id AWS chose (the next run finds the resource by its tags, never by the id). */
export const AWS_CHOSEN_ID =
  /^(ec2:Create(Vpc|Subnet|InternetGateway|RouteTable|SecurityGroup|LaunchTemplate)|route53:CreateHostedZone)$/;

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
  return {
    vpcs: (await clients.ec2.send(new DescribeVpcsCommand({ Filters: cluster }))).Vpcs!.length,
    subnets: (await clients.ec2.send(new DescribeSubnetsCommand({ Filters: cluster }))).Subnets!.length,
    securityGroups: (await clients.ec2.send(new DescribeSecurityGroupsCommand({ Filters: cluster })))
      .SecurityGroups!.length,
    groups: (await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ Filters: cluster })))
      .AutoScalingGroups!.length,
    instances: running.length,
    parameters: (await storedParameterNames({ clients }, "demo")).size,
    zones: zones.filter((z) => z.Name === "demo.k8s.").length,
  };
}

export const spec = () =>
  clusterYaml({
    groups: {
      masters: { count: 1, instanceType: "t3.medium" },
      minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
    },
  });
