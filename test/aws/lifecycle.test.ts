/**
 * The whole AWS lifecycle against moto: plan, apply, a no-op second apply, the discovery handler driven
 * by real-shaped events, scaling, an image rollout, and a destroy that leaves nothing tagged.
 */
import {
  SetDesiredCapacityCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  DescribeInstanceAttributeCommand,
  DescribeInternetGatewaysCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type Instance,
} from "@aws-sdk/client-ec2";
import { DescribeRuleCommand, ListTargetsByRuleCommand } from "@aws-sdk/client-eventbridge";
import { DescribeKeyCommand, ListAliasesCommand } from "@aws-sdk/client-kms";
import { GetRolePolicyCommand, ListInstanceProfilesCommand, ListRolesCommand } from "@aws-sdk/client-iam";
import { GetFunctionCommand, GetFunctionConcurrencyCommand, GetPolicyCommand } from "@aws-sdk/client-lambda";
import {
  GetResourcesCommand,
  ResourceGroupsTaggingAPIClient,
} from "@aws-sdk/client-resource-groups-tagging-api";
import {
  GetHostedZoneCommand,
  ListHostedZonesByNameCommand,
  ListResourceRecordSetsCommand,
} from "@aws-sdk/client-route-53";
import {
  DeleteObjectCommand,
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetPublicAccessBlockCommand,
  HeadBucketCommand,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import {
  DeleteParameterCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  ListTagsForResourceCommand,
  PutParameterCommand,
} from "@aws-sdk/client-ssm";
import { X509Certificate } from "node:crypto";
import { parse } from "yaml";
import { createHandler } from "../../lambdas/dns-discovery";
import { compareIPv4 } from "../../src/discover/reconcile";
import type { AwsClients } from "../../src/launch/aws/clients";
import { ROLE_SECRET_NAMES, snapshotBucketName } from "../../src/launch/aws/desired";
import { liveEndpoints } from "../../src/launch/aws/endpoints";
import { PKI_FILE_NAMES, storedParameterNames } from "../../src/launch/aws/secrets";
import { tempDir } from "../helpers";
import {
  apply,
  clientsFor,
  clusterYaml,
  credentials,
  destroy,
  REGION,
  registerAmi,
  writeSpec,
  runningInstances,
} from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
let clients: AwsClients;
const dir = tempDir("aws-lifecycle");
let ami: string;
let specPath: string;
let spec: Record<string, any>;
/** moto's account. */
const ACCOUNT = "123456789012";
const BUCKET = snapshotBucketName(ACCOUNT, REGION, "demo");

beforeAll(async () => {
  moto = await startMoto();
  clients = clientsFor(moto.endpoint);
  ami = await registerAmi(clients, "kubebake-1");
  spec = clusterYaml({ image: { ami } });
  specPath = writeSpec(dir, spec);
}, 60_000);
afterAll(() => moto?.stop());

const running = () => runningInstances(clients);
const tag = (i: Instance, key: string) => i.Tags?.find((t) => t.Key === key)?.Value;
const ipsOf = (instances: Instance[], role: string) =>
  instances
    .filter((i) => tag(i, "Role") === role)
    .map((i) => i.PrivateIpAddress!)
    .sort(compareIPv4);

async function records(): Promise<Record<string, string[]>> {
  const zones = await clients.route53.send(new ListHostedZonesByNameCommand({ DNSName: "demo.k8s." }));
  const zone = zones.HostedZones!.find((z) => z.Name === "demo.k8s.")!;
  const sets = await clients.route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zone.Id }));
  return Object.fromEntries(
    sets
      .ResourceRecordSets!.filter((s) => s.Type === "A")
      .map((s) => [s.Name!, s.ResourceRecords!.map((r) => r.Value!)]),
  );
}

/** The deployed function's environment drives the handler, as Lambda would. */
async function handler() {
  const fn = await clients.lambda.send(
    new GetFunctionCommand({ FunctionName: "kubebake-demo-dns-discovery" }),
  );
  const handlerClients = clientsFor(moto.endpoint);
  const invoke = createHandler(() => handlerClients, { ...fn.Configuration!.Environment!.Variables });
  return { invoke, calls: handlerClients.calls };
}

function autoScalingEvent(detailType: string, group: string, instance: string) {
  return {
    version: "0",
    id: "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": detailType,
    source: "aws.autoscaling",
    account: "123456789012",
    time: "2026-11-23T12:00:00Z",
    region: REGION,
    resources: [
      `arn:aws:autoscaling:${REGION}:123456789012:autoScalingGroup:1a2b:autoScalingGroupName/${group}`,
      `arn:aws:ec2:${REGION}:123456789012:instance/${instance}`,
    ],
    detail: {
      StatusCode: "InProgress",
      AutoScalingGroupName: group,
      ActivityId: "eaa2a0c1-0a9f-4c35-9d2f-3c5fd3e7a2a7",
      Details: { "Availability Zone": `${REGION}a`, "Subnet ID": "subnet-0000" },
      RequestId: "eaa2a0c1-0a9f-4c35-9d2f-3c5fd3e7a2a7",
      EndTime: "2026-11-23T12:00:00Z",
      EC2InstanceId: instance,
      StartTime: "2026-11-23T11:59:30Z",
      Cause: "test",
    },
  };
}
const scheduledEvent = {
  version: "0",
  id: "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
  "detail-type": "Scheduled Event",
  source: "aws.events",
  account: "123456789012",
  time: "2026-11-23T12:01:00Z",
  region: REGION,
  resources: [`arn:aws:events:${REGION}:123456789012:rule/kubebake-demo-dns-schedule`],
  detail: {},
};

/** The names of the cluster's parameters, sorted. */
const storedParameters = async () => [...(await storedParameterNames({ clients }, "demo"))].sort();

describe("AWS cluster lifecycle (moto)", () => {
  test("plan on an empty account lists every resource and makes no mutating call", async () => {
    const plan = await apply(clients, specPath, true);
    expect(plan.mutating).toEqual([]);
    const created = plan.changes.filter((c) => c.action === "create").map((c) => `${c.kind} ${c.name}`);
    for (const expected of [
      "cluster-id /kubebake/demo/cluster-id",
      "vpc kubebake-demo-vpc",
      "security-group kubebake-demo-masters",
      // IAM is global: its names carry the region, so that a cluster of this name elsewhere has its own.
      "iam-role kubebake-demo-eu-west-1-minions",
      "iam-role kubebake-demo-eu-west-1-dns-discovery",
      "instance-profile kubebake-demo-eu-west-1-masters",
      "pki /kubebake/demo",
      "hosted-zone demo.k8s.",
      "lambda-function kubebake-demo-dns-discovery",
      "eventbridge-rule kubebake-demo-dns-schedule",
      "launch-template kubebake-demo-minions",
      "auto-scaling-group kubebake-demo-masters",
      `s3-bucket ${BUCKET}`,
      // The cluster key, and Auto Scaling's role that its policy names (a fresh account has none yet).
      "kms-key alias/kubebake-demo",
      "iam-service-linked-role AWSServiceRoleForAutoScaling",
    ]) {
      expect(created).toContain(expected);
    }
    const details = Object.fromEntries(plan.changes.map((c) => [`${c.kind} ${c.name}`, c.detail]));
    expect(details[`s3-bucket ${BUCKET}`]).toBe(
      "etcd snapshots kept 7 days; versioned, AES256, no public access, TLS only",
    );
    // Masters wait for the rollout gate from their very first launch; minions have none.
    expect(details["auto-scaling-group kubebake-demo-masters"]).toBe(
      "1 × t3.medium, launch hook kubebake-etcd-voter",
    );
    expect(details["auto-scaling-group kubebake-demo-minions"]).toBe("5 × t3.large");
    expect((await clients.ec2.send(new DescribeVpcsCommand({}))).Vpcs!.filter((v) => v.Tags?.length)).toEqual(
      [],
    );
  });

  test("apply: 1 master and 5 minions, tagged, role files in user data, secrets only in SSM", async () => {
    const result = await apply(clients, specPath);
    expect(result.mutating.length).toBeGreaterThan(30);
    const clusterId = (await clients.ssm.send(new GetParameterCommand({ Name: "/kubebake/demo/cluster-id" })))
      .Parameter!.Value!;
    expect(clusterId).toMatch(/^kb-[0-9a-f]{16}$/);
    const instances = await running();
    expect(instances.filter((i) => tag(i, "Role") === "masters")).toHaveLength(1);
    expect(instances.filter((i) => tag(i, "Role") === "minions")).toHaveLength(5);
    for (const instance of instances) {
      expect(tag(instance, "KubernetesCluster")).toBe("demo");
      expect(tag(instance, "team")).toBe("platform");
      expect(tag(instance, "kubebake:owner")).toBe(clusterId);
      expect(instance.ImageId).toBe(ami);
    }
    const groups = (
      await clients.autoScaling.send(
        new DescribeAutoScalingGroupsCommand({
          Filters: [{ Name: "tag:KubernetesCluster", Values: ["demo"] }],
        }),
      )
    ).AutoScalingGroups!;
    expect(groups.map((g) => g.AutoScalingGroupName).sort()).toEqual([
      "kubebake-demo-masters",
      "kubebake-demo-minions",
    ]);
    for (const group of groups) {
      const tags = Object.fromEntries(group.Tags!.map((t) => [t.Key, [t.Value, t.PropagateAtLaunch]]));
      expect(tags.KubernetesCluster).toEqual(["demo", true]);
      expect(tags.Role).toEqual([group.AutoScalingGroupName!.replace("kubebake-demo-", ""), true]);
    }

    const token = (
      await clients.ssm.send(
        new GetParameterCommand({ Name: "/kubebake/demo/bootstrap-token", WithDecryption: true }),
      )
    ).Parameter!.Value!;
    const keyArn = (await clients.kms.send(new DescribeKeyCommand({ KeyId: "alias/kubebake-demo" })))
      .KeyMetadata!.Arn!;
    for (const instance of instances) {
      const role = tag(instance, "Role");
      const attribute = await clients.ec2.send(
        new DescribeInstanceAttributeCommand({ InstanceId: instance.InstanceId, Attribute: "userData" }),
      );
      const userData = Buffer.from(attribute.UserData!.Value!, "base64").toString();
      expect(userData.startsWith("#cloud-config\n")).toBe(true);
      const file = parse(userData).write_files[0];
      expect(file.path).toBe(`/etc/sysconfig/kubernetes-${role}`);
      expect(file.content).toBe(
        "CLUSTER_NAME=demo\nCLOUD_PROVIDER=aws\nSECRET_SOURCE=ssm:/kubebake/demo\n" +
          (role === "masters"
            ? "MASTERS_COUNT=1\n" +
              `SNAPSHOT_STORE=s3://${BUCKET}/demo/etcd\n` +
              "GROUP_NAME=kubebake-demo-masters\nLAUNCH_HOOK=kubebake-etcd-voter\n" +
              `SECRET_KMS_KEY=${keyArn}\n` +
              `JOIN_IDENTITIES="arn:aws:sts::123456789012:assumed-role/kubebake-demo-eu-west-1-masters arn:aws:sts::123456789012:assumed-role/kubebake-demo-eu-west-1-minions"\n`
            : ""),
      );
      expect(userData).not.toContain(token);
      expect(userData).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    }

    const stored = [...(await storedParameterNames({ clients }, "demo", clusterId))].sort();
    expect(stored).toContain("/kubebake/demo/cluster-id");
    const names = stored.filter((n) => n !== "/kubebake/demo/cluster-id");
    expect(names).toEqual(PKI_FILE_NAMES.map((n) => `/kubebake/demo/${n}`));
    for (let i = 0; i < names.length; i += 10) {
      const page = await clients.ssm.send(
        new DescribeParametersCommand({
          ParameterFilters: [{ Key: "Name", Values: names.slice(i, i + 10) }],
        }),
      );
      expect(new Set(page.Parameters!.map((p) => p.Type))).toEqual(new Set(["SecureString"]));
    }
    const ca = await clients.ssm.send(
      new GetParameterCommand({ Name: "/kubebake/demo/ca.crt", WithDecryption: true }),
    );
    expect(new X509Certificate(ca.Parameter!.Value!).subject).toBe("CN=kubebake-demo-ca");
    expect(token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);

    const template = (
      await clients.ec2.send(
        new DescribeLaunchTemplateVersionsCommand({
          LaunchTemplateName: "kubebake-demo-masters",
          Versions: ["$Latest"],
        }),
      )
    ).LaunchTemplateVersions![0]!.LaunchTemplateData!;
    expect(template.MetadataOptions?.HttpTokens).toBe("required");
    expect(template.IamInstanceProfile?.Name).toBe("kubebake-demo-eu-west-1-masters");
  });

  test("the snapshot bucket: tagged as ours, encrypted, versioned, private, TLS only, snapshots expiring; the masters' launch hook", async () => {
    const clusterId = (await clients.ssm.send(new GetParameterCommand({ Name: "/kubebake/demo/cluster-id" })))
      .Parameter!.Value!;
    const ref = { Bucket: BUCKET, ExpectedBucketOwner: ACCOUNT };
    expect((await clients.s3.send(new HeadBucketCommand(ref))).BucketRegion).toBe(REGION);
    const tags = Object.fromEntries(
      (await clients.s3.send(new GetBucketTaggingCommand(ref))).TagSet!.map((t) => [t.Key, t.Value]),
    );
    expect(tags).toEqual({
      team: "platform",
      KubernetesCluster: "demo",
      "kubebake:name": "snapshots",
      "kubebake:owner": clusterId,
      Name: "kubebake-demo-snapshots",
    });
    const encryption = await clients.s3.send(new GetBucketEncryptionCommand(ref));
    expect(
      encryption.ServerSideEncryptionConfiguration!.Rules!.map((r) => r.ApplyServerSideEncryptionByDefault),
    ).toEqual([{ SSEAlgorithm: "AES256" }]);
    expect((await clients.s3.send(new GetBucketVersioningCommand(ref))).Status).toBe("Enabled");
    expect(
      (await clients.s3.send(new GetPublicAccessBlockCommand(ref))).PublicAccessBlockConfiguration,
    ).toEqual({
      BlockPublicAcls: true,
      IgnorePublicAcls: true,
      BlockPublicPolicy: true,
      RestrictPublicBuckets: true,
    });
    // moto stores the policy but has no TLS to refuse (test/aws/moto_server.py, repair 7).
    const policy = JSON.parse((await clients.s3.send(new GetBucketPolicyCommand(ref))).Policy!);
    expect(policy.Statement).toEqual([
      expect.objectContaining({
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      }),
    ]);
    const rules = (await clients.s3.send(new GetBucketLifecycleConfigurationCommand(ref))).Rules!;
    expect(rules).toEqual([
      expect.objectContaining({
        Status: "Enabled",
        Filter: { Prefix: "demo/etcd/" },
        Expiration: { Days: 7 },
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
      }),
    ]);

    const hooks = async (group: string) =>
      (
        await clients.autoScaling.send(new DescribeLifecycleHooksCommand({ AutoScalingGroupName: group }))
      ).LifecycleHooks!.map(
        ({ LifecycleHookName, LifecycleTransition, DefaultResult, HeartbeatTimeout }) => ({
          LifecycleHookName,
          LifecycleTransition,
          DefaultResult,
          HeartbeatTimeout,
        }),
      );
    expect(await hooks("kubebake-demo-masters")).toEqual([
      {
        LifecycleHookName: "kubebake-etcd-voter",
        LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING",
        DefaultResult: "ABANDON",
        HeartbeatTimeout: 900,
      },
    ]);
    expect(await hooks("kubebake-demo-minions")).toEqual([]);
  });

  test("least privilege: no wildcard action; minions read only the CA and the bootstrap token", async () => {
    const policies: Record<string, any> = {};
    for (const role of ["masters", "minions", "dns-discovery"]) {
      const answer = await clients.iam.send(
        new GetRolePolicyCommand({ RoleName: `kubebake-demo-${REGION}-${role}`, PolicyName: "kubebake" }),
      );
      policies[role] = JSON.parse(decodeURIComponent(answer.PolicyDocument!));
    }
    for (const policy of Object.values(policies)) {
      for (const statement of policy.Statement) {
        for (const action of [statement.Action].flat()) expect(action).not.toMatch(/\*/);
      }
    }
    const account = "123456789012";
    expect(policies.minions.Statement).toEqual([
      {
        Sid: "ReadClusterSecrets",
        Effect: "Allow",
        Action: ["ssm:GetParameter"],
        Resource: [
          `arn:aws:ssm:${REGION}:${account}:parameter/kubebake/demo/ca.crt`,
          `arn:aws:ssm:${REGION}:${account}:parameter/kubebake/demo/bootstrap-token`,
        ],
      },
      {
        // Decrypting the parameters with the cluster key, only through SSM (which checks the above first).
        Sid: "DecryptClusterSecrets",
        Effect: "Allow",
        Action: ["kms:Decrypt"],
        Resource: (await clients.kms.send(new DescribeKeyCommand({ KeyId: "alias/kubebake-demo" })))
          .KeyMetadata!.Arn,
        Condition: { StringEquals: { "kms:ViaService": `ssm.${REGION}.amazonaws.com` } },
      },
    ]);
    expect(policies.masters.Statement[1]).toEqual(policies.minions.Statement[1]);
    // Masters: what their node-config fetches, by name (no wildcard, no admin credential).
    expect(policies.masters.Statement[0].Resource).toEqual(
      ROLE_SECRET_NAMES.masters.map((n) => `arn:aws:ssm:${REGION}:${account}:parameter/kubebake/demo/${n}`),
    );
    const write = policies["dns-discovery"].Statement.find((s: any) => s.Sid === "WriteOwnRecords");
    expect(
      write.Condition["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"],
    ).toEqual(["masters.demo.k8s", "minions.demo.k8s", "etcd.demo.k8s"]);
    expect(write.Resource).toMatch(/^arn:aws:route53:::hostedzone\/[A-Z0-9]+$/);
  });

  test("security groups: nothing open to the world; the API to the operator's CIDR only", async () => {
    const groups = (
      await clients.ec2.send(
        new DescribeSecurityGroupsCommand({ Filters: [{ Name: "tag:KubernetesCluster", Values: ["demo"] }] }),
      )
    ).SecurityGroups!;
    // The two roles', and (the network is private by default) the VPC endpoints': HTTPS from the VPC.
    expect(groups).toHaveLength(3);
    const ranges = groups.flatMap((g) =>
      g.IpPermissions!.flatMap((p) =>
        (p.IpRanges ?? []).map((r) => `${g.GroupName}:${p.FromPort}:${r.CidrIp}`),
      ),
    );
    expect(ranges.sort()).toEqual([
      "kubebake-demo-endpoints:443:10.0.0.0/16",
      "kubebake-demo-masters:6443:203.0.113.0/24",
    ]);
    const zone = (await clients.route53.send(new ListHostedZonesByNameCommand({ DNSName: "demo.k8s." })))
      .HostedZones![0]!;
    expect(zone.Config?.PrivateZone).toBe(true);
    const vpcs = (await clients.route53.send(new GetHostedZoneCommand({ Id: zone.Id }))).VPCs!;
    const vpc = (
      await clients.ec2.send(
        new DescribeVpcsCommand({ Filters: [{ Name: "tag:KubernetesCluster", Values: ["demo"] }] }),
      )
    ).Vpcs![0]!;
    expect(vpcs.map((v) => v.VPCId)).toEqual([vpc.VpcId]);
  });

  test("the discovery function is wired: two rules target it and may invoke it", async () => {
    const policy = JSON.parse(
      (await clients.lambda.send(new GetPolicyCommand({ FunctionName: "kubebake-demo-dns-discovery" })))
        .Policy!,
    );
    for (const rule of ["kubebake-demo-asg-events", "kubebake-demo-dns-schedule"]) {
      const described = await clients.events.send(new DescribeRuleCommand({ Name: rule }));
      const targets = (await clients.events.send(new ListTargetsByRuleCommand({ Rule: rule }))).Targets!;
      expect(targets.map((t) => t.Arn)).toEqual([
        expect.stringMatching(/function:kubebake-demo-dns-discovery$/),
      ]);
      expect(policy.Statement.some((s: any) => JSON.stringify(s).includes(described.Arn!))).toBe(true);
    }
    const pattern = JSON.parse(
      (await clients.events.send(new DescribeRuleCommand({ Name: "kubebake-demo-asg-events" })))
        .EventPattern!,
    );
    expect(pattern).toEqual({
      source: ["aws.autoscaling"],
      detail: { AutoScalingGroupName: ["kubebake-demo-masters", "kubebake-demo-minions"] },
    });
    // One invocation at a time (a stale DELETE cannot land after a newer confirmation); JSON log lines.
    const concurrency = await clients.lambda.send(
      new GetFunctionConcurrencyCommand({ FunctionName: "kubebake-demo-dns-discovery" }),
    );
    expect(concurrency.ReservedConcurrentExecutions).toBe(1);
    const fn = await clients.lambda.send(
      new GetFunctionCommand({ FunctionName: "kubebake-demo-dns-discovery" }),
    );
    expect(fn.Configuration!.LoggingConfig!.LogFormat).toBe("JSON");
  });

  test("a second apply makes no mutating call and plans no change", async () => {
    const again = await apply(clients, specPath);
    expect(again.changes).toEqual([]);
    expect(again.mutating).toEqual([]);
    expect((await apply(clients, specPath, true)).changes).toEqual([]);
  });

  test("an older cluster's PKI: the certificates masters now issue themselves are deleted and the Secrets key added, under running groups; then nothing changes", async () => {
    const ours = await storedParameters();
    const tags = (
      await clients.ssm.send(
        new ListTagsForResourceCommand({ ResourceType: "Parameter", ResourceId: "/kubebake/demo/ca.crt" }),
      )
    ).TagList;
    // As an older apply left it: two leaf certificates of the old PKI, no encryption config.
    for (const name of ["apiserver.key", "scheduler.crt"])
      await clients.ssm.send(
        new PutParameterCommand({
          Name: `/kubebake/demo/${name}`,
          Value: `old ${name}`,
          Type: "SecureString",
          Tags: tags,
        }),
      );
    await clients.ssm.send(new DeleteParameterCommand({ Name: "/kubebake/demo/encryption-config.yaml" }));
    const plan = await apply(clients, specPath, true);
    expect(plan.changes.filter((c) => c.kind === "pki")).toEqual([
      expect.objectContaining({ action: "update", kind: "pki", detail: "add encryption-config.yaml" }),
      expect.objectContaining({
        action: "delete",
        kind: "pki",
        detail: "2 certificate file(s) masters now issue themselves",
      }),
    ]);
    const applied = await apply(clients, specPath);
    expect(applied.changes).toEqual(plan.changes);
    expect(await storedParameters()).toEqual(ours);
    const config = (
      await clients.ssm.send(
        new GetParameterCommand({ Name: "/kubebake/demo/encryption-config.yaml", WithDecryption: true }),
      )
    ).Parameter!.Value!;
    expect(config).toMatch(/^kind: EncryptionConfiguration$/m);
    expect((await apply(clients, specPath)).changes).toEqual([]);
  });

  test("the handler, driven by launch, terminate and scheduled events, keeps records equal to the members' IPs", async () => {
    const { invoke, calls } = await handler();
    const instances = await running();
    const minion = instances.find((i) => tag(i, "Role") === "minions")!;
    await invoke(
      autoScalingEvent("EC2 Instance Launch Successful", "kubebake-demo-minions", minion.InstanceId!),
    );
    expect(await records()).toEqual({
      "masters.demo.k8s.": ipsOf(instances, "masters"),
      "minions.demo.k8s.": ipsOf(instances, "minions"),
      // moto puts masters InService at once: etcd lists the same masters.
      "etcd.demo.k8s.": ipsOf(instances, "masters"),
    });

    await clients.autoScaling.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: minion.InstanceId,
        ShouldDecrementDesiredCapacity: true,
      }),
    );
    await invoke(
      autoScalingEvent("EC2 Instance Terminate Successful", "kubebake-demo-minions", minion.InstanceId!),
    );
    const after = await running();
    expect(ipsOf(after, "minions")).toHaveLength(4);
    expect((await records())["minions.demo.k8s."]).toEqual(ipsOf(after, "minions"));
    expect((await records())["minions.demo.k8s."]).not.toContain(minion.PrivateIpAddress);

    const before = calls.length;
    const summary = await invoke(scheduledEvent);
    expect(summary.writes).toBe(0);
    expect(calls.slice(before)).toEqual([
      "route53:ListResourceRecordSets",
      "autoScaling:DescribeAutoScalingGroups",
      "ec2:DescribeInstances",
    ]);
    // Put the group back to the spec's size for the next tests.
    await clients.autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: "kubebake-demo-minions", DesiredCapacity: 5 }),
    );
  });

  test("scaling minions to 2 through the spec: apply changes the group, records follow", async () => {
    spec.groups.minions = { ...spec.groups.minions, desired: 2 };
    writeSpec(dir, spec);
    const plan = await apply(clients, specPath, true);
    expect(plan.changes).toEqual([
      expect.objectContaining({
        action: "update",
        kind: "auto-scaling-group",
        name: "kubebake-demo-minions",
        detail: "desired 5 → 2",
      }),
    ]);
    const result = await apply(clients, specPath);
    expect(result.mutating).toEqual(["autoScaling:UpdateAutoScalingGroup"]);
    const instances = await running();
    expect(ipsOf(instances, "minions")).toHaveLength(2);
    const { invoke } = await handler();
    await invoke(scheduledEvent);
    expect(await records()).toEqual({
      "masters.demo.k8s.": ipsOf(instances, "masters"),
      "minions.demo.k8s.": ipsOf(instances, "minions"),
      // moto puts masters InService at once: etcd lists the same masters.
      "etcd.demo.k8s.": ipsOf(instances, "masters"),
    });
  });

  test("a new image rolls out: a new template version, every instance replaced in batches, records follow", async () => {
    const newAmi = await registerAmi(clients, "kubebake-2");
    spec.image = { ami: newAmi };
    writeSpec(dir, spec);
    const plan = await apply(clients, specPath, true);
    expect(plan.changes.map((c) => `${c.action} ${c.kind} ${c.name}`)).toEqual([
      "update launch-template kubebake-demo-masters",
      "update launch-template kubebake-demo-masters",
      "update auto-scaling-group kubebake-demo-masters",
      "replace instances kubebake-demo-masters",
      "update launch-template kubebake-demo-minions",
      "update launch-template kubebake-demo-minions",
      "update auto-scaling-group kubebake-demo-minions",
      "replace instances kubebake-demo-minions",
    ]);
    const old = await running();
    const result = await apply(clients, specPath);
    const terminations = result.mutating.filter(
      (c) => c === "autoScaling:TerminateInstanceInAutoScalingGroup",
    );
    expect(terminations).toHaveLength(3);
    // the master in one round of 1; minions 25 % of 2 rounds up to 1 at a time: two rounds
    expect(result.changes.filter((c) => c.action === "replace").map((c) => c.name)).toEqual([
      "kubebake-demo-masters",
      "kubebake-demo-minions",
      "kubebake-demo-minions",
    ]);
    const fresh = await running();
    expect(fresh).toHaveLength(3);
    expect(new Set(fresh.map((i) => i.ImageId))).toEqual(new Set([newAmi]));
    expect(fresh.filter((i) => old.some((o) => o.InstanceId === i.InstanceId))).toEqual([]);
    const template = (
      await clients.ec2.send(
        new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: ["kubebake-demo-minions"] }),
      )
    ).LaunchTemplates![0]!;
    expect(template.DefaultVersionNumber).toBe(2);
    const { invoke } = await handler();
    await invoke(scheduledEvent);
    expect(await records()).toEqual({
      "masters.demo.k8s.": ipsOf(fresh, "masters"),
      "minions.demo.k8s.": ipsOf(fresh, "minions"),
      // moto puts masters InService at once: etcd lists the same masters.
      "etcd.demo.k8s.": ipsOf(fresh, "masters"),
    });
    expect((await apply(clients, specPath)).mutating).toEqual([]);
  });

  test("destroy removes everything in dependency order; nothing tagged remains; a second destroy finds nothing", async () => {
    // What masters leave in the bucket: snapshots, an overwritten one (two versions), a deleted one.
    const put = (Key: string) =>
      clients.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `demo/etcd/${Key}`, Body: Key }));
    for (const key of ["a.db", "b.db", "b.db", "c.db"]) await put(key);
    await clients.s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "demo/etcd/c.db" }));
    const planned = await destroy(clients, "demo", true);
    expect(planned.mutating).toEqual([]);
    expect(planned.changes.filter((c) => c.kind === "s3-bucket")).toEqual([
      {
        action: "delete",
        kind: "s3-bucket",
        name: BUCKET,
        detail:
          "holds 2 object(s) in 4 version(s) and 1 delete marker(s): the cluster's etcd snapshots go with it",
      },
    ]);
    const done = await destroy(clients);
    expect(done.changes.map((c) => `${c.action} ${c.kind}`)).toEqual(
      planned.changes.map((c) => `${c.action} ${c.kind}`),
    );
    const cluster = [{ Name: "tag:KubernetesCluster", Values: ["demo"] }];
    expect(await running()).toEqual([]);
    expect((await clients.ec2.send(new DescribeVpcsCommand({ Filters: cluster }))).Vpcs).toEqual([]);
    expect((await clients.ec2.send(new DescribeSubnetsCommand({ Filters: cluster }))).Subnets).toEqual([]);
    expect(
      (await clients.ec2.send(new DescribeSecurityGroupsCommand({ Filters: cluster }))).SecurityGroups,
    ).toEqual([]);
    expect(
      (await clients.ec2.send(new DescribeInternetGatewaysCommand({ Filters: cluster }))).InternetGateways,
    ).toEqual([]);
    // moto's tagging API does not list VPC endpoints: asked directly (deleted ones linger, as on AWS).
    expect(await liveEndpoints(clients, cluster)).toEqual([]);
    expect(
      (await clients.ec2.send(new DescribeRouteTablesCommand({ Filters: cluster }))).RouteTables,
    ).toEqual([]);
    expect(
      (await clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: cluster }))).LaunchTemplates,
    ).toEqual([]);
    expect(
      (await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ Filters: cluster })))
        .AutoScalingGroups,
    ).toEqual([]);
    expect((await clients.iam.send(new ListRolesCommand({ PathPrefix: "/kubebake/demo/" }))).Roles).toEqual(
      [],
    );
    expect(
      (await clients.iam.send(new ListInstanceProfilesCommand({ PathPrefix: "/kubebake/demo/" })))
        .InstanceProfiles,
    ).toEqual([]);
    expect((await clients.ssm.send(new DescribeParametersCommand({}))).Parameters).toEqual([]);
    const zones = (await clients.route53.send(new ListHostedZonesByNameCommand({}))).HostedZones!;
    expect(zones.filter((z) => z.Name === "demo.k8s.")).toEqual([]);
    await expect(
      clients.lambda.send(new GetFunctionCommand({ FunctionName: "kubebake-demo-dns-discovery" })),
    ).rejects.toThrow();
    await expect(
      clients.events.send(new DescribeRuleCommand({ Name: "kubebake-demo-dns-schedule" })),
    ).rejects.toThrow();
    const tagging = new ResourceGroupsTaggingAPIClient({
      region: REGION,
      endpoint: moto.endpoint,
      credentials,
    });
    const tagged = await tagging.send(
      new GetResourcesCommand({ TagFilters: [{ Key: "KubernetesCluster", Values: ["demo"] }] }),
    );
    // Terminated instances stay listed (AWS keeps them about an hour), and the cluster key until KMS
    // deletes it 7 days after destroy scheduled it; nothing else may.
    const left = (tagged.ResourceTagMappingList ?? [])
      .map((r) => r.ResourceARN!)
      .filter((arn) => !arn.includes(":instance/"));
    const keys = left.filter((arn) => arn.includes(":key/"));
    expect(left.filter((arn) => !keys.includes(arn))).toEqual([]);
    expect(keys).toHaveLength(1);
    expect((await clients.kms.send(new DescribeKeyCommand({ KeyId: keys[0] }))).KeyMetadata!.KeyState).toBe(
      "PendingDeletion",
    );
    expect((await clients.kms.send(new ListAliasesCommand({}))).Aliases ?? []).not.toContainEqual(
      expect.objectContaining({ AliasName: "alias/kubebake-demo" }),
    );
    await expect(clients.s3.send(new HeadBucketCommand({ Bucket: BUCKET }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
    const again = await destroy(clients);
    expect(again.changes).toEqual([]);
    expect(again.mutating).toEqual([]);
  });
});
