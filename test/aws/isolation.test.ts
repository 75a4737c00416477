/**
 * One cluster never touches another: two clusters of the same name in two regions of one account share
 * nothing (IAM and Route 53 are global), and look-alikes that kubebake did not create are neither adopted
 * nor deleted.
 */
import { PKI_FILE_NAMES } from "../../src/launch/aws/secrets";
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  CreateLaunchTemplateCommand,
  CreateVpcCommand,
  DescribeInstancesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeVpcsCommand,
} from "@aws-sdk/client-ec2";
import {
  CreateRoleCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  ListRolePoliciesCommand,
} from "@aws-sdk/client-iam";
import { GetFunctionCommand } from "@aws-sdk/client-lambda";
import {
  ChangeTagsForResourceCommand,
  CreateHostedZoneCommand,
  GetHostedZoneCommand,
  ListResourceRecordSetsCommand,
  ListTagsForResourceCommand,
} from "@aws-sdk/client-route-53";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  GetBucketTaggingCommand,
  HeadBucketCommand,
  PutBucketTaggingCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { KubebakeError } from "../../src/errors";
import type { AwsClients } from "../../src/launch/aws/clients";
import { snapshotBucketName } from "../../src/launch/aws/desired";
import { readClusterId } from "../../src/launch/aws/owner";
import { storedParameterNames } from "../../src/launch/aws/secrets";
import { runCli, tempDir } from "../helpers";
import {
  apply,
  clientsFor,
  clusterYaml,
  credentials,
  destroy,
  existingNetwork,
  registerAmi,
  writeSpec,
} from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-isolation");

const REGIONS = ["us-east-1", "eu-west-1"] as const;
/** moto's account, and another one (moto keeps accounts apart by the x-moto-account-id header). */
const ACCOUNT = "123456789012";
const OTHER_ACCOUNT = "210987654321";
const cluster = [{ Name: "tag:KubernetesCluster", Values: ["demo"] }];

async function specIn(clients: AwsClients, region: string): Promise<string> {
  const ami = await registerAmi(clients, "kubebake-1");
  return writeSpec(
    dir,
    clusterYaml({
      region,
      image: { ami },
      network: { zones: [`${region}a`, `${region}b`], apiAccess: ["203.0.113.0/24"] },
      groups: {
        masters: { count: 1, instanceType: "t3.medium" },
        minions: { min: 1, max: 3, desired: 1, instanceType: "t3.large" },
      },
    }),
    `${region}.yaml`,
  );
}

/** The regions named in a policy's ARNs (`arn:aws:<service>:<region>:…`). */
const regionsIn = (document: string) =>
  [...new Set([...document.matchAll(/arn:aws:[a-z0-9-]+:([a-z0-9-]+):\d+:/g)].map((m) => m[1]))].sort();

/**
 * Everything one region's cluster uses, followed from its regional resources: the launch templates'
 * instance profiles and their roles, the function's role and zone, its parameters and groups.
 */
async function inventory(clients: AwsClients) {
  const roles: Record<string, { path: string; policyRegions: string[] }> = {};
  const describeRole = async (name: string) => {
    const role = (await clients.iam.send(new GetRoleCommand({ RoleName: name }))).Role!;
    const policies = (await clients.iam.send(new ListRolePoliciesCommand({ RoleName: name }))).PolicyNames!;
    const documents = await Promise.all(
      policies.map(
        async (PolicyName) =>
          (await clients.iam.send(new GetRolePolicyCommand({ RoleName: name, PolicyName }))).PolicyDocument!,
      ),
    );
    roles[name] = {
      path: role.Path!,
      policyRegions: regionsIn(decodeURIComponent(documents.join("\n"))),
    };
  };
  const profiles: Record<string, string[]> = {};
  const templates = (await clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: cluster })))
    .LaunchTemplates!;
  for (const template of templates) {
    const data = (
      await clients.ec2.send(
        new DescribeLaunchTemplateVersionsCommand({
          LaunchTemplateId: template.LaunchTemplateId,
          Versions: ["$Latest"],
        }),
      )
    ).LaunchTemplateVersions![0]!.LaunchTemplateData!;
    const profile = (
      await clients.iam.send(
        new GetInstanceProfileCommand({ InstanceProfileName: data.IamInstanceProfile!.Name! }),
      )
    ).InstanceProfile!;
    profiles[profile.InstanceProfileName!] = profile.Roles!.map((r) => r.RoleName!);
    for (const role of profile.Roles!) await describeRole(role.RoleName!);
  }
  const fn = (
    await clients.lambda.send(new GetFunctionCommand({ FunctionName: "kubebake-demo-dns-discovery" }))
  ).Configuration!;
  await describeRole(fn.Role!.split("/").at(-1)!);
  const zoneId = fn.Environment!.Variables!.HOSTED_ZONE_ID!;
  const zone = await clients.route53.send(new GetHostedZoneCommand({ Id: zoneId }));
  const vpc = (await clients.ec2.send(new DescribeVpcsCommand({ Filters: cluster }))).Vpcs!.map(
    (v) => v.VpcId,
  );
  const region = await clients.s3.config.region();
  const bucket = snapshotBucketName(ACCOUNT, region, "demo");
  const bucketTags = (await clients.s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet!;
  return {
    roles,
    profiles,
    bucket: { name: bucket, owner: bucketTags.find((t) => t.Key === "kubebake:owner")?.Value },
    zone: { id: zoneId, name: zone.HostedZone!.Name, vpcs: zone.VPCs!.map((v) => v.VPCId) },
    vpc,
    parameters: [...(await storedParameterNames({ clients }, "demo"))].sort(),
    groups: (await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ Filters: cluster })))
      .AutoScalingGroups!.map((g) => g.AutoScalingGroupName)
      .sort(),
  };
}

test("two clusters named demo in two regions: each keeps its own IAM and zone; destroying one leaves the other whole", async () => {
  await moto.reset();
  const clients = Object.fromEntries(
    REGIONS.map((region) => [region, clientsFor(moto.endpoint, undefined, undefined, region)]),
  ) as Record<(typeof REGIONS)[number], AwsClients>;
  const specs: Record<string, string> = {};
  for (const region of REGIONS) {
    specs[region] = await specIn(clients[region], region);
    await apply(clients[region], specs[region]!);
  }
  const east = await inventory(clients["us-east-1"]);
  const west = await inventory(clients["eu-west-1"]);
  for (const [region, found] of [
    ["us-east-1", east],
    ["eu-west-1", west],
  ] as const) {
    expect(Object.keys(found.roles)).toHaveLength(3);
    expect(Object.keys(found.profiles)).toHaveLength(2);
    for (const role of Object.values(found.roles)) {
      expect(role.policyRegions).toEqual([region]);
      expect(role.path).toContain(region);
    }
    expect(found.zone.name).toBe("demo.k8s.");
    expect(found.zone.vpcs).toEqual(found.vpc);
    expect(found.parameters.length).toBe(PKI_FILE_NAMES.length + 1); // and the cluster id
    expect(found.groups).toHaveLength(2);
  }
  // Nothing global is shared.
  expect(Object.keys(east.roles).filter((name) => name in west.roles)).toEqual([]);
  expect(Object.keys(east.profiles).filter((name) => name in west.profiles)).toEqual([]);
  expect(east.zone.id).not.toBe(west.zone.id);
  expect(east.bucket.name).not.toBe(west.bucket.name);
  expect(east.bucket.owner).not.toBe(west.bucket.owner);
  // `kubebake dns sync` writes each region's records into that region's zone (found by its id, not its name).
  for (const [region, found] of [
    ["us-east-1", east],
    ["eu-west-1", west],
  ] as const) {
    const sync = runCli("kubebake", ["dns", "sync", "-f", specs[region]!, "--json"], {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
    });
    expect({ region, code: sync.code, stderr: sync.stderr }).toEqual({ region, code: 0, stderr: "" });
    const masters = (
      await clients[region].ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            ...cluster,
            { Name: "tag:Role", Values: ["masters"] },
            { Name: "instance-state-name", Values: ["running"] },
          ],
        }),
      )
    ).Reservations!.flatMap((r) => r.Instances!.map((i) => i.PrivateIpAddress!));
    const records = await clients[region].route53.send(
      new ListResourceRecordSetsCommand({ HostedZoneId: found.zone.id }),
    );
    const a = records.ResourceRecordSets!.find((r) => r.Type === "A" && r.Name === "masters.demo.k8s.");
    expect({ region, ips: a?.ResourceRecords?.map((r) => r.Value) }).toEqual({ region, ips: masters });
  }
  // Each apply is a no-op after the other region's apply.
  for (const region of REGIONS)
    expect((await apply(clients[region], specs[region]!, true)).changes).toEqual([]);

  const gone = await destroy(clients["eu-west-1"]);
  expect(gone.changes.length).toBeGreaterThan(10);
  expect((await apply(clients["us-east-1"], specs["us-east-1"]!, true)).changes).toEqual([]);
  expect(await inventory(clients["us-east-1"])).toEqual(east);
}, 300_000);

test("a foreign IAM role with the colliding name is refused with exit 8 and left untouched", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const spec = await specIn(clients, "eu-west-1");
  const plan = await apply(clients, spec, true);
  const roleName = plan.changes.find((c) => c.kind === "iam-role" && c.name.endsWith("-masters"))!.name;
  const trust = JSON.stringify({ Version: "2012-10-17", Statement: [] });
  await clients.iam.send(
    new CreateRoleCommand({ RoleName: roleName, AssumeRolePolicyDocument: trust, Path: "/someone-else/" }),
  );

  for (const dryRun of [true, false]) {
    const error = await apply(clients, spec, dryRun).catch((e) => e);
    expect(error).toBeInstanceOf(KubebakeError);
    expect(error.exitCode).toBe(8);
    expect(error.message).toContain(`iam-role ${roleName}`);
    expect(error.message).toMatch(/not created by this cluster/);
  }
  // Refused before anything was created, and the role is as it was.
  expect((await clients.ec2.send(new DescribeVpcsCommand({ Filters: cluster }))).Vpcs).toEqual([]);
  const role = (await clients.iam.send(new GetRoleCommand({ RoleName: roleName }))).Role!;
  expect(role.Path).toBe("/someone-else/");
  expect((await clients.iam.send(new ListRolePoliciesCommand({ RoleName: roleName }))).PolicyNames).toEqual(
    [],
  );
  // Destroy leaves it too.
  await destroy(clients);
  expect((await clients.iam.send(new GetRoleCommand({ RoleName: roleName }))).Role!.Path).toBe(
    "/someone-else/",
  );
}, 120_000);

test("a foreign zone of the same name in another VPC is neither adopted nor deleted", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const spec = await specIn(clients, "eu-west-1");
  const otherVpc = (await clients.ec2.send(new CreateVpcCommand({ CidrBlock: "10.8.0.0/16" }))).Vpc!.VpcId!;
  const foreign = (
    await clients.route53.send(
      new CreateHostedZoneCommand({
        Name: "demo.k8s.",
        CallerReference: "someone-else",
        VPC: { VPCId: otherVpc, VPCRegion: "eu-west-1" },
        HostedZoneConfig: { PrivateZone: true },
      }),
    )
  ).HostedZone!.Id!.replace("/hostedzone/", "");
  // Even tagged like ours (another tool, or a copy of our tags), it is not ours.
  await clients.route53.send(
    new ChangeTagsForResourceCommand({
      ResourceType: "hostedzone",
      ResourceId: foreign,
      AddTags: [{ Key: "KubernetesCluster", Value: "demo" }],
    }),
  );

  const applied = await apply(clients, spec);
  expect(applied.zoneId).not.toBe(foreign);
  expect(applied.changes).toContainEqual(expect.objectContaining({ action: "create", kind: "hosted-zone" }));
  const gone = await destroy(clients);
  expect(gone.changes.filter((c) => c.kind === "hosted-zone")).toHaveLength(1);
  const left = await clients.route53.send(new GetHostedZoneCommand({ Id: foreign }));
  expect(left.VPCs!.map((v) => v.VPCId)).toEqual([otherVpc]);
  await expect(clients.route53.send(new GetHostedZoneCommand({ Id: applied.zoneId }))).rejects.toThrow();
}, 120_000);

test("a foreign launch template with the cluster's name is refused with exit 8; destroy leaves it", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const spec = await specIn(clients, "eu-west-1");
  const foreignId = (
    await clients.ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: "kubebake-demo-masters",
        LaunchTemplateData: { InstanceType: "t3.micro" },
        TagSpecifications: [
          { ResourceType: "launch-template", Tags: [{ Key: "KubernetesCluster", Value: "demo" }] },
        ],
      }),
    )
  ).LaunchTemplate!.LaunchTemplateId!;
  const error = await apply(clients, spec).catch((e) => e);
  expect(error).toBeInstanceOf(KubebakeError);
  expect(error.exitCode).toBe(8);
  expect(error.message).toMatch(
    /^launch-template kubebake-demo-masters exists but was not created by this cluster/,
  );

  await destroy(clients);
  const left = (
    await clients.ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [foreignId] }))
  ).LaunchTemplates!;
  expect(left.map((t) => t.LaunchTemplateName)).toEqual(["kubebake-demo-masters"]);
  expect((await clients.ec2.send(new DescribeVpcsCommand({ Filters: cluster }))).Vpcs).toEqual([]);
}, 120_000);

test("a foreign zone of the cluster's name on the cluster's existing VPC is refused with exit 8, not adopted", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  const { vpc, subnet } = await existingNetwork(clients);
  const foreign = (
    await clients.route53.send(
      new CreateHostedZoneCommand({
        Name: "demo.k8s.",
        CallerReference: "someone-else",
        VPC: { VPCId: vpc, VPCRegion: "eu-west-1" },
        HostedZoneConfig: { PrivateZone: true },
      }),
    )
  ).HostedZone!.Id!.replace("/hostedzone/", "");
  const spec = writeSpec(
    dir,
    clusterYaml({ image: { ami }, network: { vpc, subnets: [subnet] } }),
    "shared-vpc.yaml",
  );
  const error = await apply(clients, spec).catch((e) => e);
  expect(error).toBeInstanceOf(KubebakeError);
  expect(error.exitCode).toBe(8);
  expect(error.message).toContain(
    `hosted-zone demo.k8s. (${foreign}, on ${vpc}) exists but was not created by this cluster`,
  );
  const tags = await clients.route53.send(
    new ListTagsForResourceCommand({ ResourceType: "hostedzone", ResourceId: foreign }),
  );
  expect(tags.ResourceTagSet?.Tags ?? []).toEqual([]);
  // Refused before anything was created: not even the cluster id.
  expect(await readClusterId(clients, "demo")).toBeUndefined();
  await destroy(clients);
  expect((await clients.route53.send(new GetHostedZoneCommand({ Id: foreign }))).HostedZone!.Id).toContain(
    foreign,
  );
}, 120_000);

describe("a bucket with the cluster's snapshot bucket name that is not its own", () => {
  const bucket = snapshotBucketName(ACCOUNT, "eu-west-1", "demo");

  test("in this account, untagged or another cluster's: refused with exit 8 before anything is created; destroy leaves it", async () => {
    await moto.reset();
    const clients = clientsFor(moto.endpoint);
    const spec = await specIn(clients, "eu-west-1");
    await clients.s3.send(
      new CreateBucketCommand({
        Bucket: bucket,
        CreateBucketConfiguration: { LocationConstraint: "eu-west-1" },
      }),
    );
    const refused = async (owner: string) => {
      for (const dryRun of [true, false]) {
        const error = await apply(clients, spec, dryRun).catch((e) => e);
        expect(error).toBeInstanceOf(KubebakeError);
        expect(error.exitCode).toBe(8);
        expect(error.message).toContain(
          `s3-bucket ${bucket} exists but was not created by this cluster (its kubebake:owner tag ${owner}`,
        );
      }
      // Refused before anything was created: not even the cluster id.
      expect(await readClusterId(clients, "demo")).toBeUndefined();
    };
    // S3 answers NoSuchTagSet for a bucket without tags: read as no owner, not as a failure.
    await refused("is absent");
    await clients.s3.send(
      new PutBucketTaggingCommand({
        Bucket: bucket,
        Tagging: {
          TagSet: [
            { Key: "kubebake:owner", Value: "kb-0000000000000000" },
            { Key: "KubernetesCluster", Value: "demo" },
          ],
        },
      }),
    );
    await refused('is "kb-0000000000000000"');

    // Destroy deletes only the bucket of the cluster's id: one whose owner tag changed after apply is left.
    await clients.s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    await apply(clients, spec);
    const tags = (await clients.s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet!;
    const retagged = tags.map((t) =>
      t.Key === "kubebake:owner" ? { ...t, Value: "kb-0000000000000000" } : t,
    );
    await clients.s3.send(new PutBucketTaggingCommand({ Bucket: bucket, Tagging: { TagSet: retagged } }));
    const gone = await destroy(clients);
    expect(gone.changes.filter((c) => c.kind === "s3-bucket")).toEqual([]);
    expect(gone.changes).toContainEqual(expect.objectContaining({ action: "delete", kind: "vpc" }));
    expect((await clients.s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet).toEqual(retagged);
  }, 120_000);

  test("in another account (S3 names are global): refused with exit 8, never written to", async () => {
    await moto.reset();
    const clients = clientsFor(moto.endpoint);
    const spec = await specIn(clients, "eu-west-1");
    const other = new S3Client({
      region: "eu-west-1",
      endpoint: moto.endpoint,
      credentials,
      forcePathStyle: true,
    });
    other.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers["x-moto-account-id"] = OTHER_ACCOUNT;
        return next(args);
      },
      { step: "build", name: "otherAccount" },
    );
    await other.send(
      new CreateBucketCommand({
        Bucket: bucket,
        CreateBucketConfiguration: { LocationConstraint: "eu-west-1" },
      }),
    );
    // Ours by every tag but its account: the expected-owner check (HeadBucket 403) still refuses it.
    await other.send(
      new PutBucketTaggingCommand({
        Bucket: bucket,
        Tagging: { TagSet: [{ Key: "KubernetesCluster", Value: "demo" }] },
      }),
    );
    await expect(
      clients.s3.send(new HeadBucketCommand({ Bucket: bucket, ExpectedBucketOwner: ACCOUNT })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    for (const dryRun of [true, false]) {
      const error = await apply(clients, spec, dryRun).catch((e) => e);
      expect(error).toBeInstanceOf(KubebakeError);
      expect(error.exitCode).toBe(8);
      expect(error.message).toMatch(
        new RegExp(`^s3-bucket ${bucket} exists but this account cannot read it \\(HeadBucket: 403\\)`),
      );
    }
    expect(await readClusterId(clients, "demo")).toBeUndefined();
    other.destroy();
  }, 120_000);
});
