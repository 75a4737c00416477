/**
 * The discovery ports and handler against moto (with the harness's repairs, test/aws/moto_server.py):
 * every listing pages, an A-B-A record history is written, a foreign record at our name is refused.
 * moto puts every instance InService at once and keeps none in Pending:Wait (lifecycle hooks do not
 * hold instances there), so here `etcd.` always equals `masters.`; which lifecycle states go into which
 * record, a waiting master included, is tested on the pure core with data (reconcile.test.ts).
 */
import {
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  EnterStandbyCommand,
  ExitStandbyCommand,
} from "@aws-sdk/client-auto-scaling";
import { CreateLaunchTemplateCommand, CreateSubnetCommand, CreateVpcCommand } from "@aws-sdk/client-ec2";
import {
  ChangeResourceRecordSetsCommand,
  CreateHostedZoneCommand,
  ListResourceRecordSetsCommand,
} from "@aws-sdk/client-route-53";
import { createHandler } from "../../lambdas/dns-discovery";
import { awsDiscoveryPorts, classifyAwsError } from "../../src/discover/aws";
import { compareIPv4, RecordConflict, Rejected } from "../../src/discover/reconcile";
import type { AwsClients } from "../../src/launch/aws/clients";
import { clientsFor, registerAmi, REGION } from "../aws/fixture";
import { startMoto, type Moto } from "../aws/moto";
import { ETCD, MASTERS, MINIONS } from "./model";

let moto: Moto;
let clients: AwsClients;
let zoneId: string;

async function group(
  name: string,
  cluster: string,
  role: string,
  size: number,
  subnet: string,
  template: string,
) {
  await clients.autoScaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: name,
      MinSize: 0,
      MaxSize: size,
      DesiredCapacity: size,
      VPCZoneIdentifier: subnet,
      LaunchTemplate: { LaunchTemplateId: template, Version: "1" },
      Tags: [
        { Key: "KubernetesCluster", Value: cluster, PropagateAtLaunch: true },
        { Key: "Role", Value: role, PropagateAtLaunch: true },
      ],
    }),
  );
}

beforeAll(async () => {
  moto = await startMoto();
  clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  const vpc = (await clients.ec2.send(new CreateVpcCommand({ CidrBlock: "10.0.0.0/16" }))).Vpc!.VpcId!;
  const subnet = (
    await clients.ec2.send(
      new CreateSubnetCommand({ VpcId: vpc, CidrBlock: "10.0.0.0/20", AvailabilityZone: `${REGION}a` }),
    )
  ).Subnet!.SubnetId!;
  const template = (
    await clients.ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: "t",
        LaunchTemplateData: { ImageId: ami, InstanceType: "t3.small" },
      }),
    )
  ).LaunchTemplate!.LaunchTemplateId!;
  // 123 instances of the cluster in three groups, and another cluster's group that must not count.
  await group("kubebake-demo-masters", "demo", "masters", 3, subnet, template);
  await group("kubebake-demo-minions-a", "demo", "minions", 60, subnet, template);
  await group("kubebake-demo-minions-b", "demo", "minions", 60, subnet, template);
  await group("kubebake-other-minions", "other", "minions", 4, subnet, template);
  zoneId = (
    await clients.route53.send(
      new CreateHostedZoneCommand({
        Name: "demo.k8s.",
        CallerReference: "discovery-moto-test",
        VPC: { VPCId: vpc, VPCRegion: REGION },
        HostedZoneConfig: { PrivateZone: true },
      }),
    )
  ).HostedZone!.Id!.replace("/hostedzone/", "");
  // 320 records of other names: more than one page of ListResourceRecordSets (300).
  await clients.route53.send(
    new ChangeResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      ChangeBatch: {
        Changes: Array.from({ length: 320 }, (_, i) => ({
          Action: "CREATE" as const,
          ResourceRecordSet: {
            Name: `other-${String(i).padStart(3, "0")}.demo.k8s.`,
            Type: "TXT" as const,
            TTL: 60,
            ResourceRecords: [{ Value: `"${i}"` }],
          },
        })),
      },
    }),
  );
}, 120_000);
afterAll(() => moto?.stop());

const env = {
  CLUSTER_NAME: "demo",
  DISCOVERY_DOMAIN: "k8s",
  RECORD_TTL: "30",
  EMPTY_GROUP_POLICY: "delete",
};

function handlerWithLog() {
  const lines: Record<string, unknown>[] = [];
  const handlerClients = clientsFor(moto.endpoint);
  const invoke = createHandler(
    () => handlerClients,
    { ...env, HOSTED_ZONE_ID: zoneId },
    (e) => lines.push(e),
  );
  return { invoke, lines, calls: handlerClients.calls };
}

async function recordsOf(type = "A"): Promise<Record<string, string[]>> {
  const sets: Record<string, string[]> = {};
  let start: { StartRecordName?: string; StartRecordType?: "A" } = {};
  for (;;) {
    const page = await clients.route53.send(
      new ListResourceRecordSetsCommand({ HostedZoneId: zoneId, ...start }),
    );
    for (const s of page.ResourceRecordSets ?? [])
      if (s.Type === type) sets[s.Name!] = (s.ResourceRecords ?? []).map((r) => r.Value!).sort(compareIPv4);
    if (!page.IsTruncated) return sets;
    start = { StartRecordName: page.NextRecordName, StartRecordType: page.NextRecordType as "A" };
  }
}

async function masterIds(): Promise<string[]> {
  const answer = await clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["kubebake-demo-masters"] }),
  );
  return answer.AutoScalingGroups![0]!.Instances!.map((i) => i.InstanceId!);
}

test("every listing pages: the same groups, addresses and records with the APIs' page sizes and with tiny ones", async () => {
  const full = awsDiscoveryPorts(clients);
  const tiny = awsDiscoveryPorts(clients, { groups: 1, instances: 1, records: 13 });
  const pageCalls = (calls: string[], call: string) => calls.filter((c) => c === call).length;
  const before = clients.calls.length;
  const groups = await tiny.groups("demo");
  const ips = await tiny.privateIps("demo");
  const records = await tiny.readRecords(zoneId);
  const made = clients.calls.slice(before);
  // The tiny pages did turn over: 3 groups one per page, 322 records 13 per page, and the instances one
  // reservation per page (moto counts MaxResults in reservations, one per group launch; AWS in instances).
  expect(pageCalls(made, "autoScaling:DescribeAutoScalingGroups")).toBeGreaterThanOrEqual(3);
  expect(pageCalls(made, "ec2:DescribeInstances")).toBeGreaterThanOrEqual(3);
  expect(pageCalls(made, "route53:ListResourceRecordSets")).toBeGreaterThanOrEqual(25);

  expect(groups.map((g) => g.name).sort()).toEqual([
    "kubebake-demo-masters",
    "kubebake-demo-minions-a",
    "kubebake-demo-minions-b",
  ]);
  expect(groups.flatMap((g) => g.members)).toHaveLength(123);
  expect(ips.size).toBe(123);
  expect(records.filter((r) => r.type === "TXT")).toHaveLength(320);
  // Non-A records are listed too (NS, SOA, TXT): the reconciler must see what sits at its names.
  expect(new Set(records.map((r) => r.type))).toEqual(new Set(["NS", "SOA", "TXT"]));

  const sorted = <T>(xs: T[]) => [...xs].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  expect(sorted(await full.groups("demo"))).toEqual(sorted(groups));
  expect(await full.privateIps("demo")).toEqual(ips);
  expect(sorted(await full.readRecords(zoneId))).toEqual(sorted(records));
});

test("A-B-A: a master goes to Standby and comes back; the handler writes each state, the last as a CREATE moto once refused", async () => {
  const { invoke, lines } = handlerWithLog();
  const first = await invoke({ source: "aws.events", "detail-type": "Scheduled Event", detail: {} });
  expect([first.masters, first.minions, first.etcd, first.writes]).toEqual([3, 120, 3, 3]);
  const a = (await recordsOf())[MASTERS]!;
  expect(a).toHaveLength(3);
  expect((await recordsOf())[MINIONS]).toHaveLength(120);
  // Exactly our three A records in the zone; the other cluster's group counts in none of them.
  expect(Object.keys(await recordsOf()).sort()).toEqual([ETCD, MASTERS, MINIONS]);
  expect((await recordsOf())[ETCD]).toEqual(a);
  expect(Object.keys(await recordsOf("TXT"))).toHaveLength(320);
  // A second run over the same truth changes nothing.
  expect((await invoke({ source: "aws.events", "detail-type": "Scheduled Event", detail: {} })).writes).toBe(
    0,
  );

  const [standby] = await masterIds();
  await clients.autoScaling.send(
    new EnterStandbyCommand({
      AutoScalingGroupName: "kubebake-demo-masters",
      InstanceIds: [standby],
      ShouldDecrementDesiredCapacity: true,
    }),
  );
  // Standby is out of both records of the masters.
  expect((await invoke({ source: "aws.autoscaling", detail: {} })).writes).toBe(2);
  expect((await recordsOf())[MASTERS]).toHaveLength(2);
  expect((await recordsOf())[ETCD]).toEqual((await recordsOf())[MASTERS]);

  await clients.autoScaling.send(
    new ExitStandbyCommand({ AutoScalingGroupName: "kubebake-demo-masters", InstanceIds: [standby] }),
  );
  const back = await invoke({ source: "aws.autoscaling", detail: {} });
  expect({ writes: back.writes, conflicts: back.conflicts }).toEqual({ writes: 2, conflicts: 0 });
  expect((await recordsOf())[MASTERS]).toEqual(a);
  expect((await recordsOf())[ETCD]).toEqual(a);
  expect(lines.filter((l) => l.level === "error")).toEqual([]);
});

test("a CNAME at masters is refused once with one log line; minions are still kept", async () => {
  const { invoke, lines, calls } = handlerWithLog();
  await invoke({});
  const masters = (await recordsOf())[MASTERS]!;
  await clients.route53.send(
    new ChangeResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      ChangeBatch: {
        Changes: [
          {
            Action: "DELETE",
            ResourceRecordSet: {
              Name: MASTERS,
              Type: "A",
              TTL: 30,
              ResourceRecords: masters.map((Value) => ({ Value })),
            },
          },
          {
            Action: "CREATE",
            ResourceRecordSet: {
              Name: MASTERS,
              Type: "CNAME",
              TTL: 60,
              ResourceRecords: [{ Value: "lb.example." }],
            },
          },
        ],
      },
    }),
  );
  // A minion leaves: the minions record must still follow.
  const [leaving] = (
    await clients.autoScaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["kubebake-demo-minions-a"] }),
    )
  ).AutoScalingGroups![0]!.Instances!;
  await clients.autoScaling.send(
    new EnterStandbyCommand({
      AutoScalingGroupName: "kubebake-demo-minions-a",
      InstanceIds: [leaving!.InstanceId!],
      ShouldDecrementDesiredCapacity: true,
    }),
  );
  const before = calls.length;
  lines.length = 0;
  const started = Date.now();
  await expect(invoke({})).rejects.toThrow(/a CNAME record exists at masters\.demo\.k8s\./);
  expect(Date.now() - started).toBeLessThan(5_000);
  expect((await recordsOf())[MINIONS]).toHaveLength(119);
  expect((await recordsOf())[ETCD]).toEqual(masters); // unchanged, so not written
  expect((await recordsOf("CNAME"))[MASTERS]).toEqual(["lb.example."]);
  expect(calls.slice(before).filter((c) => c === "route53:ChangeResourceRecordSets")).toHaveLength(1); // minions only
  const errors = lines.filter((l) => l.level === "error");
  expect(errors).toEqual([
    expect.objectContaining({ cluster: "demo", record: MASTERS, want: masters, have: null, attempts: 0 }),
  ]);
});

test("moto's (repaired) InvalidChangeBatch answers are told apart: lost races are conflicts, the rest rejections", async () => {
  const change = (Action: "CREATE" | "DELETE", Name: string, Type: "A" | "CNAME", values: string[]) =>
    clients.route53
      .send(
        new ChangeResourceRecordSetsCommand({
          HostedZoneId: zoneId,
          ChangeBatch: {
            Changes: [
              {
                Action,
                ResourceRecordSet: {
                  Name,
                  Type,
                  TTL: 30,
                  ResourceRecords: values.map((Value) => ({ Value })),
                },
              },
            ],
          },
        }),
      )
      .then(
        () => "applied",
        (error) => classifyAwsError(error),
      );
  await change("CREATE", "x.demo.k8s.", "A", ["10.9.0.1"]);
  expect(await change("CREATE", "x.demo.k8s.", "A", ["10.9.0.2"])).toBeInstanceOf(RecordConflict);
  expect(await change("DELETE", "x.demo.k8s.", "A", ["10.9.0.2"])).toBeInstanceOf(RecordConflict);
  expect(await change("DELETE", "y.demo.k8s.", "A", ["10.9.0.2"])).toBeInstanceOf(RecordConflict);
  expect(await change("CREATE", "x.demo.k8s.", "CNAME", ["a.example."])).toBeInstanceOf(Rejected);
  expect(await change("CREATE", "x.elsewhere.", "A", ["10.9.0.3"])).toBeInstanceOf(Rejected);
});
