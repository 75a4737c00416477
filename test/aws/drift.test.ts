/**
 * Drift: a resource changed out of band after an apply shows in `plan` as the change that repairs it, and
 * `apply` makes it equal to the desired state again (a further plan is empty). The Route 53 records are
 * not `cluster apply`'s: the discovery function (through `dns sync`) repairs them.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateLaunchTemplateVersionCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSecurityGroupsCommand,
  ModifyLaunchTemplateCommand,
  RevokeSecurityGroupIngressCommand,
  type SecurityGroup,
} from "@aws-sdk/client-ec2";
import {
  DeleteLifecycleHookCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
  PutLifecycleHookCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  AttachRolePolicyCommand,
  CreatePolicyCommand,
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  GetRolePolicyCommand,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { DescribeKeyCommand } from "@aws-sdk/client-kms";
import { ChangeResourceRecordSetsCommand, ListResourceRecordSetsCommand } from "@aws-sdk/client-route-53";
import {
  DeleteBucketPolicyCommand,
  DeletePublicAccessBlockCommand,
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  GetBucketTaggingCommand,
  GetBucketVersioningCommand,
  GetPublicAccessBlockCommand,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketTaggingCommand,
  PutBucketVersioningCommand,
} from "@aws-sdk/client-s3";
import { loadCloudSpec } from "../../src/cluster/load";
import { awsDiscoveryPorts } from "../../src/discover/aws";
import { dnsSync } from "../../src/discover/sync";
import type { AwsClients } from "../../src/launch/aws/clients";
import {
  assumeRolePolicy,
  discoveryConfig,
  discoveryFunctionName,
  keyAlias,
  nodePolicy,
  nodeRoleName,
  resourceName,
  snapshotBucketName,
} from "../../src/launch/aws/desired";
import { comparableTemplateData } from "../../src/launch/aws/groups";
import { resolveInputs } from "../../src/launch/aws/inputs";
import { POLICY_NAME } from "../../src/launch/aws/iam";
import { permissionKeys } from "../../src/launch/aws/security";
import type { Change } from "../../src/launch/changes";
import { tempDir } from "../helpers";
import { apply, clientsFor, clusterYaml, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-drift");

const MASTERS = resourceName("demo", "masters");
const list = (changes: Change[]) => changes.map((c) => `${c.action} ${c.kind} ${c.name}: ${c.detail ?? ""}`);
const spec = () =>
  clusterYaml({
    groups: {
      masters: { count: 1, instanceType: "t3.medium" },
      minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
    },
  });

let clients: AwsClients;
let specPath: string;
let zoneId: string;

beforeEach(async () => {
  await moto.reset();
  clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  specPath = writeSpec(dir, { ...spec(), image: { ami } });
  zoneId = (await apply(clients, specPath)).zoneId;
});

const clusterKeyArn = async () =>
  (await clients.kms.send(new DescribeKeyCommand({ KeyId: keyAlias("demo") }))).KeyMetadata!.Arn!;

/** The plan lists exactly `expected`; apply makes those changes; a further plan is empty. */
async function planShowsAndApplyRepairs(expected: RegExp[]) {
  const plan = await apply(clients, specPath, true);
  expect(plan.mutating).toEqual([]);
  expect(list(plan.changes)).toEqual(expected.map((e) => expect.stringMatching(e)));
  const applied = await apply(clients, specPath);
  expect(list(applied.changes)).toEqual(list(plan.changes));
  expect((await apply(clients, specPath, true)).changes).toEqual([]);
}

async function mastersGroup(): Promise<SecurityGroup> {
  const groups = await clients.ec2.send(
    new DescribeSecurityGroupsCommand({ Filters: [{ Name: "group-name", Values: [MASTERS] }] }),
  );
  expect(groups.SecurityGroups).toHaveLength(1);
  return groups.SecurityGroups![0]!;
}
const ruleKeys = async () => [...permissionKeys((await mastersGroup()).IpPermissions ?? []).keys()].sort();

test("security group: a rule added out of band is revoked, a rule removed is put back", async () => {
  const desired = await ruleKeys();
  const group = await mastersGroup();
  const api = group.IpPermissions!.find((p) => p.FromPort === 6443 && p.IpRanges?.length)!;
  expect(api.IpRanges!.map((r) => r.CidrIp)).toContain("203.0.113.0/24");
  await clients.ec2.send(
    new RevokeSecurityGroupIngressCommand({
      GroupId: group.GroupId,
      IpPermissions: [{ ...api, IpRanges: [{ CidrIp: "203.0.113.0/24" }], UserIdGroupPairs: undefined }],
    }),
  );
  await clients.ec2.send(
    new AuthorizeSecurityGroupIngressCommand({
      GroupId: group.GroupId,
      IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "0.0.0.0/0" }] }],
    }),
  );
  const drifted = await ruleKeys();
  expect(drifted).toContain("tcp:22-22:0.0.0.0/0");
  expect(drifted).not.toContain("tcp:6443-6443:203.0.113.0/24");
  await planShowsAndApplyRepairs([
    new RegExp(`^update security-group ${MASTERS}: allow `),
    new RegExp(`^update security-group ${MASTERS}: revoke 1 rule\\(s\\) not in the spec$`),
  ]);
  expect(await ruleKeys()).toEqual(desired);
});

describe("IAM", () => {
  const role = () => nodeRoleName(loadCloudSpec(specPath, "aws"), "masters");
  const trustOf = async () =>
    JSON.parse(
      decodeURIComponent(
        (await clients.iam.send(new GetRoleCommand({ RoleName: role() }))).Role!.AssumeRolePolicyDocument!,
      ),
    );
  const policyOf = async () =>
    JSON.parse(
      decodeURIComponent(
        (await clients.iam.send(new GetRolePolicyCommand({ RoleName: role(), PolicyName: POLICY_NAME })))
          .PolicyDocument!,
      ),
    );

  test("a trust policy and an inline policy changed out of band are restored", async () => {
    const wider = {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { AWS: "*" }, Action: "sts:AssumeRole" }],
    };
    const admin = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] };
    await clients.iam.send(
      new UpdateAssumeRolePolicyCommand({ RoleName: role(), PolicyDocument: JSON.stringify(wider) }),
    );
    await clients.iam.send(
      new PutRolePolicyCommand({
        RoleName: role(),
        PolicyName: POLICY_NAME,
        PolicyDocument: JSON.stringify(admin),
      }),
    );
    expect(await trustOf()).toEqual(wider);
    expect(await policyOf()).toEqual(admin);
    await planShowsAndApplyRepairs([
      new RegExp(`^update iam-role ${role()}: trust policy$`),
      new RegExp(`^update iam-policy ${role()}/${POLICY_NAME}: $`),
    ]);
    expect(await trustOf()).toEqual(assumeRolePolicy("ec2.amazonaws.com"));
    const inputs = await resolveInputs(clients, loadCloudSpec(specPath, "aws"), specPath);
    expect(await policyOf()).toEqual(nodePolicy(inputs, "masters", await clusterKeyArn()));
  });

  test("a second inline policy and an attached managed policy, added out of band, are removed", async () => {
    const admin = JSON.stringify({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }],
    });
    await clients.iam.send(
      new PutRolePolicyCommand({ RoleName: role(), PolicyName: "debug", PolicyDocument: admin }),
    );
    const { Policy } = await clients.iam.send(
      new CreatePolicyCommand({ PolicyName: "everything", PolicyDocument: admin }),
    );
    await clients.iam.send(new AttachRolePolicyCommand({ RoleName: role(), PolicyArn: Policy!.Arn }));
    await planShowsAndApplyRepairs([
      new RegExp(`^delete iam-policy ${role()}/debug: not in the spec$`),
      new RegExp(`^update iam-role ${role()}: detach ${Policy!.Arn!.replace(/[/.]/g, "\\$&")}$`),
    ]);
    expect((await clients.iam.send(new ListRolePoliciesCommand({ RoleName: role() }))).PolicyNames).toEqual([
      POLICY_NAME,
    ]);
    const attached = await clients.iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role() }));
    expect(attached.AttachedPolicies).toEqual([]);
  });
});

test("a launch template's new default version with other data is replaced by one with the desired data", async () => {
  const found = (
    await clients.ec2.send(
      new DescribeLaunchTemplatesCommand({ Filters: [{ Name: "launch-template-name", Values: [MASTERS] }] }),
    )
  ).LaunchTemplates![0]!;
  const versionData = async (version: string) =>
    (
      await clients.ec2.send(
        new DescribeLaunchTemplateVersionsCommand({
          LaunchTemplateId: found.LaunchTemplateId,
          Versions: [version],
        }),
      )
    ).LaunchTemplateVersions![0]!;
  const desired = comparableTemplateData((await versionData("$Default")).LaunchTemplateData);
  const rogue = await clients.ec2.send(
    new CreateLaunchTemplateVersionCommand({
      LaunchTemplateId: found.LaunchTemplateId,
      // All of the data (moto ignores SourceVersion): the desired data with the type and user data changed,
      // and the root volume no longer encrypted with the cluster key.
      LaunchTemplateData: {
        ...desired,
        InstanceType: "t3.nano",
        UserData: Buffer.from("#!/bin/sh\n").toString("base64"),
        BlockDeviceMappings: desired.BlockDeviceMappings!.map((m) => ({
          DeviceName: m.DeviceName,
          Ebs: { DeleteOnTermination: true },
        })),
      },
    }),
  );
  const rogueVersion = rogue.LaunchTemplateVersion!.VersionNumber!;
  await clients.ec2.send(
    new ModifyLaunchTemplateCommand({
      LaunchTemplateId: found.LaunchTemplateId,
      DefaultVersion: String(rogueVersion),
    }),
  );
  expect((await versionData("$Default")).VersionNumber).toBe(rogueVersion);
  await planShowsAndApplyRepairs([
    new RegExp(
      `^update launch-template ${MASTERS}: new version: InstanceType, UserData, BlockDeviceMappings$`,
    ),
    new RegExp(`^update launch-template ${MASTERS}: default version ${rogueVersion + 1}$`),
    new RegExp(`^update auto-scaling-group ${MASTERS}: launch template version \\d+ → ${rogueVersion + 1}$`),
  ]);
  const fixed = await versionData("$Default");
  expect(fixed.VersionNumber).toBe(rogueVersion + 1);
  expect(comparableTemplateData(fixed.LaunchTemplateData)).toEqual(desired);
  const group = (
    await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [MASTERS] }))
  ).AutoScalingGroups![0]!;
  expect(group.LaunchTemplate?.Version).toBe(String(rogueVersion + 1));
});

test("a discovery record changed out of band: dns sync (through the function) restores it", async () => {
  const inputs = await resolveInputs(clients, loadCloudSpec(specPath, "aws"), specPath);
  const sync = () =>
    dnsSync({
      lambda: clients.lambda,
      functionName: discoveryFunctionName("demo"),
      ports: () => awsDiscoveryPorts(clients),
      options: discoveryConfig(inputs, zoneId),
      sleep: async () => {},
    });
  const first = await sync();
  expect(first.via).toBe("function");
  const masters = first.desired.masters;
  expect(masters).toHaveLength(1);
  const name = first.writes.find((w) => w.name.startsWith("masters."))!.name;
  const record = async () =>
    (
      await clients.route53.send(
        new ListResourceRecordSetsCommand({
          HostedZoneId: zoneId,
          StartRecordName: name,
          StartRecordType: "A",
        }),
      )
    ).ResourceRecordSets!.find((r) => r.Name === name && r.Type === "A");
  const desired = await record();
  expect(desired?.ResourceRecords?.map((r) => r.Value)).toEqual(masters);
  await clients.route53.send(
    new ChangeResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      ChangeBatch: {
        Changes: [
          {
            Action: "UPSERT",
            ResourceRecordSet: {
              Name: name,
              Type: "A",
              TTL: 300,
              ResourceRecords: [{ Value: "192.0.2.66" }],
            },
          },
        ],
      },
    }),
  );
  const repaired = await sync();
  expect(repaired.writes).toEqual([expect.objectContaining({ name, from: ["192.0.2.66"], to: masters })]);
  expect(await record()).toEqual(desired);
  expect((await sync()).writes).toEqual([]);
});

describe("the snapshot bucket and the launch hook", () => {
  const bucket = snapshotBucketName("123456789012", "eu-west-1", "demo");
  const ref = { Bucket: bucket };

  test("bucket settings and tags changed out of band are restored; tags added by others are kept", async () => {
    const tags = (await clients.s3.send(new GetBucketTaggingCommand(ref))).TagSet!;
    await clients.s3.send(
      new PutBucketTaggingCommand({
        ...ref,
        Tagging: {
          TagSet: [
            ...tags.filter((t) => t.Key !== "team"),
            { Key: "team", Value: "x" },
            { Key: "extra", Value: "1" },
          ],
        },
      }),
    );
    await clients.s3.send(
      new PutBucketEncryptionCommand({
        ...ref,
        ServerSideEncryptionConfiguration: {
          Rules: [
            {
              ApplyServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: "alias/other" },
            },
          ],
        },
      }),
    );
    await clients.s3.send(
      new PutBucketVersioningCommand({ ...ref, VersioningConfiguration: { Status: "Suspended" } }),
    );
    await clients.s3.send(new DeletePublicAccessBlockCommand(ref));
    await clients.s3.send(new DeleteBucketPolicyCommand(ref));
    await clients.s3.send(
      new PutBucketLifecycleConfigurationCommand({
        ...ref,
        LifecycleConfiguration: {
          Rules: [
            {
              ID: "expire-etcd-snapshots",
              Status: "Enabled",
              Filter: { Prefix: "" },
              Expiration: { Days: 1 },
            },
          ],
        },
      }),
    );
    await planShowsAndApplyRepairs([
      new RegExp(`^update s3-bucket ${bucket}: tags team$`),
      new RegExp(`^update s3-bucket ${bucket}: default encryption AES256$`),
      new RegExp(`^update s3-bucket ${bucket}: versioning Enabled$`),
      new RegExp(`^update s3-bucket ${bucket}: public access block$`),
      new RegExp(`^update s3-bucket ${bucket}: bucket policy \\(TLS only\\)$`),
      new RegExp(`^update s3-bucket ${bucket}: lifecycle \\(snapshots expire after 7 days\\)$`),
    ]);
    const repaired = Object.fromEntries(
      (await clients.s3.send(new GetBucketTaggingCommand(ref))).TagSet!.map((t) => [t.Key, t.Value]),
    );
    expect(repaired).toMatchObject({ team: "platform", extra: "1" });
    const encryption = await clients.s3.send(new GetBucketEncryptionCommand(ref));
    expect(
      encryption.ServerSideEncryptionConfiguration!.Rules![0]!.ApplyServerSideEncryptionByDefault,
    ).toEqual({
      SSEAlgorithm: "AES256",
    });
    expect((await clients.s3.send(new GetBucketVersioningCommand(ref))).Status).toBe("Enabled");
    expect(
      (await clients.s3.send(new GetPublicAccessBlockCommand(ref))).PublicAccessBlockConfiguration,
    ).toMatchObject({
      BlockPublicPolicy: true,
    });
    expect((await clients.s3.send(new GetBucketPolicyCommand(ref))).Policy).toContain("aws:SecureTransport");
    const rules = (await clients.s3.send(new GetBucketLifecycleConfigurationCommand(ref))).Rules!;
    expect(rules.map((r) => [r.Filter?.Prefix, r.Expiration?.Days])).toEqual([["demo/etcd/", 7]]);
  });

  test("the masters' hook changed or deleted is put back; a hook of that name on minions is removed; other hooks are left", async () => {
    const MINIONS = resourceName("demo", "minions");
    const hook = {
      LifecycleHookName: "kubebake-etcd-voter",
      LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING",
    };
    await clients.autoScaling.send(
      new PutLifecycleHookCommand({
        ...hook,
        AutoScalingGroupName: MASTERS,
        DefaultResult: "CONTINUE",
        HeartbeatTimeout: 60,
      }),
    );
    await clients.autoScaling.send(new PutLifecycleHookCommand({ ...hook, AutoScalingGroupName: MINIONS }));
    await clients.autoScaling.send(
      new PutLifecycleHookCommand({ ...hook, LifecycleHookName: "drain", AutoScalingGroupName: MINIONS }),
    );
    await planShowsAndApplyRepairs([
      new RegExp(
        `^update auto-scaling-group ${MASTERS}: launch hook kubebake-etcd-voter: DefaultResult CONTINUE → ABANDON, HeartbeatTimeout 60 → 900$`,
      ),
      new RegExp(`^update auto-scaling-group ${MINIONS}: remove launch hook kubebake-etcd-voter$`),
    ]);
    const hooks = async (group: string) =>
      (
        await clients.autoScaling.send(new DescribeLifecycleHooksCommand({ AutoScalingGroupName: group }))
      ).LifecycleHooks!.map((h) => `${h.LifecycleHookName} ${h.DefaultResult} ${h.HeartbeatTimeout}`);
    expect(await hooks(MASTERS)).toEqual(["kubebake-etcd-voter ABANDON 900"]);
    expect(await hooks(MINIONS)).toEqual(["drain ABANDON 3600"]);

    await clients.autoScaling.send(
      new DeleteLifecycleHookCommand({
        AutoScalingGroupName: MASTERS,
        LifecycleHookName: "kubebake-etcd-voter",
      }),
    );
    await planShowsAndApplyRepairs([
      new RegExp(`^update auto-scaling-group ${MASTERS}: add launch hook kubebake-etcd-voter$`),
    ]);
    expect(await hooks(MASTERS)).toEqual(["kubebake-etcd-voter ABANDON 900"]);
  });
});
