/**
 * The cluster key against moto: created once with rotation, alias, tags and a policy that lets Auto
 * Scaling launch encrypted volumes; the SSM parameters and the launch templates' root volumes use it;
 * parameters under another key are rewritten; a look-alike alias is refused; destroy deletes the alias
 * and schedules the key's deletion, and the cluster applied again gets a new key.
 */
import {
  DescribeImagesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeVolumesCommand,
} from "@aws-sdk/client-ec2";
import { GetRoleCommand } from "@aws-sdk/client-iam";
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  DisableKeyRotationCommand,
  GetKeyPolicyCommand,
  GetKeyRotationStatusCommand,
  ListAliasesCommand,
  ListResourceTagsCommand,
  PutKeyPolicyCommand,
  ScheduleKeyDeletionCommand,
  TagResourceCommand,
  UpdateAliasCommand,
} from "@aws-sdk/client-kms";
import { DescribeParametersCommand, GetParameterCommand, PutParameterCommand } from "@aws-sdk/client-ssm";
import type { AwsClients } from "../../src/launch/aws/clients";
import { clusterIdParameter, clusterKeyPolicy, keyAlias, resourceName } from "../../src/launch/aws/desired";
import { PKI_FILE_NAMES } from "../../src/launch/aws/secrets";
import { ExitCode, KubebakeError } from "../../src/errors";
import { tempDir } from "../helpers";
import { apply, clientsFor, destroy, registerAmi, runningInstances, writeSpec } from "./fixture";
import { spec } from "./converge";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-cluster-key");
const ACCOUNT = "123456789012";
const ALIAS = keyAlias("demo");

let clients: AwsClients;
let specPath: string;
let ami: string;

beforeEach(async () => {
  await moto.reset();
  clients = clientsFor(moto.endpoint);
  ami = await registerAmi(clients, "kubebake-1");
  specPath = writeSpec(dir, { ...spec(), image: { ami } });
});

const describeKey = async (KeyId: string) =>
  (await clients.kms.send(new DescribeKeyCommand({ KeyId }))).KeyMetadata!;
const tagsOf = async (KeyId: string) =>
  Object.fromEntries(
    ((await clients.kms.send(new ListResourceTagsCommand({ KeyId }))).Tags ?? []).map((t) => [
      t.TagKey,
      t.TagValue,
    ]),
  );
const clusterId = async () =>
  (await clients.ssm.send(new GetParameterCommand({ Name: clusterIdParameter("demo") }))).Parameter!.Value!;
const aliases = async () =>
  ((await clients.kms.send(new ListAliasesCommand({}))).Aliases ?? []).filter((a) => a.AliasName === ALIAS);
const pkiKeys = async () => {
  const parameters = [];
  let NextToken: string | undefined;
  do {
    const page = await clients.ssm.send(
      new DescribeParametersCommand({
        ParameterFilters: [{ Key: "Path", Option: "Recursive", Values: ["/kubebake/demo"] }],
        NextToken,
      }),
    );
    parameters.push(...(page.Parameters ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return Object.fromEntries(parameters.map((p) => [p.Name!, `${p.Type} ${p.KeyId ?? "-"}`]));
};

test("apply creates one rotated, tagged, aliased key whose policy lets Auto Scaling use it; parameters and root volumes use it; a second apply changes nothing", async () => {
  const plan = await apply(clients, specPath, true);
  expect(plan.changes).toContainEqual(
    expect.objectContaining({ action: "create", kind: "kms-key", name: ALIAS }),
  );
  const first = await apply(clients, specPath);
  const kinds = first.changes.map((c) => `${c.action} ${c.kind} ${c.name}`);
  // Before the parameters and the launch templates it encrypts, and before the roles naming it.
  const at = (line: string) => kinds.indexOf(line);
  expect(at(`create kms-key ${ALIAS}`)).toBeGreaterThan(-1);
  expect(at(`create kms-key ${ALIAS}`)).toBeLessThan(at("create pki /kubebake/demo"));
  expect(at(`create kms-key ${ALIAS}`)).toBeLessThan(
    at(`create launch-template ${resourceName("demo", "masters")}`),
  );
  expect(at(`create kms-key ${ALIAS}`)).toBeLessThan(at("create iam-role kubebake-demo-eu-west-1-masters"));

  const key = await describeKey(ALIAS);
  expect(key).toMatchObject({
    KeyManager: "CUSTOMER",
    KeyState: "Enabled",
    KeyUsage: "ENCRYPT_DECRYPT",
    KeySpec: "SYMMETRIC_DEFAULT",
  });
  expect(key.Arn).toBe(`arn:aws:kms:eu-west-1:${ACCOUNT}:key/${key.KeyId}`);
  expect(
    (await clients.kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }))).KeyRotationEnabled,
  ).toBe(true);
  expect(await aliases()).toEqual([expect.objectContaining({ AliasName: ALIAS, TargetKeyId: key.KeyId })]);
  expect(await tagsOf(key.KeyId!)).toEqual({
    KubernetesCluster: "demo",
    "kubebake:name": "key",
    "kubebake:owner": await clusterId(),
    Name: "kubebake-demo-key",
    team: "platform",
  });
  const policy = JSON.parse(
    (await clients.kms.send(new GetKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: "default" }))).Policy!,
  );
  expect(policy).toEqual(clusterKeyPolicy({ partition: "aws", account: ACCOUNT }));
  const autoScaling = `arn:aws:iam::${ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
  expect(policy.Statement).toEqual(
    expect.arrayContaining([
      expect.objectContaining({
        Effect: "Allow",
        Principal: { AWS: autoScaling },
        Action: ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
      }),
      expect.objectContaining({
        Effect: "Allow",
        Principal: { AWS: autoScaling },
        Action: "kms:CreateGrant",
        Condition: { Bool: { "kms:GrantIsForAWSResource": true } },
      }),
    ]),
  );
  // The key policy names Auto Scaling's role, which apply made sure exists.
  expect(
    (await clients.iam.send(new GetRoleCommand({ RoleName: "AWSServiceRoleForAutoScaling" }))).Role!.Arn,
  ).toBe(autoScaling);

  // Every parameter is a SecureString under the cluster key; only the id is a plain String.
  const keys = await pkiKeys();
  expect(Object.keys(keys)).toEqual(
    expect.arrayContaining(PKI_FILE_NAMES.map((name) => `/kubebake/demo/${name}`)),
  );
  expect(keys).toEqual({
    ...Object.fromEntries(Object.keys(keys).map((name) => [name, `SecureString ${key.Arn}`])),
    [clusterIdParameter("demo")]: "String -",
  });

  // The AMI's own root device (moto reports /dev/sda1 whatever RegisterImage said): no second volume.
  const rootDevice = (await clients.ec2.send(new DescribeImagesCommand({ ImageIds: [ami] }))).Images![0]!
    .RootDeviceName;
  expect(rootDevice).toBeTruthy();
  for (const role of ["masters", "minions"]) {
    const data = (
      await clients.ec2.send(
        new DescribeLaunchTemplateVersionsCommand({
          LaunchTemplateName: resourceName("demo", role),
          Versions: ["$Latest"],
        }),
      )
    ).LaunchTemplateVersions![0]!.LaunchTemplateData!;
    expect(data.BlockDeviceMappings).toEqual([
      { DeviceName: rootDevice, Ebs: { Encrypted: true, KmsKeyId: key.Arn, DeleteOnTermination: true } },
    ]);
    expect(data.MetadataOptions).toMatchObject({ HttpTokens: "required", HttpPutResponseHopLimit: 1 });
  }

  const second = await apply(clients, specPath);
  expect(second.mutating).toEqual([]);
  expect(second.changes).toEqual([]);
});

test("the nodes' root volumes are encrypted with the cluster key", async () => {
  await apply(clients, specPath);
  const key = await describeKey(ALIAS);
  const instances = await runningInstances(clients);
  expect(instances).toHaveLength(3);
  const volumeIds = instances.flatMap((i) => (i.BlockDeviceMappings ?? []).map((m) => m.Ebs!.VolumeId!));
  expect(volumeIds).toHaveLength(3); // one root volume each, no second one
  const volumes = (await clients.ec2.send(new DescribeVolumesCommand({ VolumeIds: volumeIds }))).Volumes!;
  expect(volumes.map((v) => `${v.Encrypted} ${v.KmsKeyId}`)).toEqual(volumeIds.map(() => `true ${key.Arn}`));
});

test("parameters under another key (the account's default) are rewritten under the cluster key, values kept", async () => {
  await apply(clients, specPath);
  const key = await describeKey(ALIAS);
  const names = ["/kubebake/demo/ca.key", "/kubebake/demo/bootstrap-token"];
  const values: Record<string, string> = {};
  for (const Name of names) {
    values[Name] = (
      await clients.ssm.send(new GetParameterCommand({ Name, WithDecryption: true }))
    ).Parameter!.Value!;
    // As an apply before the cluster key wrote them: no KeyId, so the account's aws/ssm.
    await clients.ssm.send(
      new PutParameterCommand({
        Name,
        Value: values[Name],
        Type: "SecureString",
        Overwrite: true,
        KeyId: "alias/aws/ssm",
      }),
    );
  }
  expect((await pkiKeys())[names[0]!]).toBe("SecureString alias/aws/ssm");
  const plan = await apply(clients, specPath, true);
  expect(plan.mutating).toEqual([]);
  expect(plan.changes).toEqual([
    {
      action: "update",
      kind: "pki",
      name: "/kubebake/demo",
      detail: "2 parameter(s) under alias/aws/ssm rewritten under alias/kubebake-demo",
    },
  ]);
  const applied = await apply(clients, specPath);
  expect(applied.changes).toEqual(plan.changes);
  expect(applied.mutating).toEqual(["ssm:PutParameter", "ssm:PutParameter"]);
  for (const Name of names) {
    expect((await pkiKeys())[Name]).toBe(`SecureString ${key.Arn}`);
    const parameter = (await clients.ssm.send(new GetParameterCommand({ Name, WithDecryption: true })))
      .Parameter!;
    expect(parameter.Value).toBe(values[Name]);
  }
  expect((await apply(clients, specPath)).mutating).toEqual([]);
});

test("a key that drifted (rotation off, another policy, a tag changed) is repaired in place", async () => {
  await apply(clients, specPath);
  const key = await describeKey(ALIAS);
  await clients.kms.send(new DisableKeyRotationCommand({ KeyId: key.KeyId }));
  await clients.kms.send(
    new PutKeyPolicyCommand({
      KeyId: key.KeyId,
      PolicyName: "default",
      Policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
            Action: "kms:*",
            Resource: "*",
          },
        ],
      }),
    }),
  );
  await clients.kms.send(
    new TagResourceCommand({ KeyId: key.KeyId, Tags: [{ TagKey: "team", TagValue: "x" }] }),
  );
  const plan = await apply(clients, specPath, true);
  expect(plan.changes.map((c) => `${c.action} ${c.kind} ${c.name}: ${c.detail}`)).toEqual([
    `update kms-key ${ALIAS}: tags team`,
    `update kms-key ${ALIAS}: key policy`,
    `update kms-key ${ALIAS}: automatic rotation on`,
  ]);
  await apply(clients, specPath);
  expect(
    (await clients.kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }))).KeyRotationEnabled,
  ).toBe(true);
  expect(
    JSON.parse(
      (await clients.kms.send(new GetKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: "default" }))).Policy!,
    ),
  ).toEqual(clusterKeyPolicy({ partition: "aws", account: ACCOUNT }));
  expect((await tagsOf(key.KeyId!)).team).toBe("platform");
  expect((await apply(clients, specPath)).mutating).toEqual([]);
  // The same key throughout: nothing was replaced.
  expect((await describeKey(ALIAS)).KeyId).toBe(key.KeyId);
});

describe("a look-alike alias (its key without this cluster's id) is refused with exit 8, never adopted", () => {
  const lookAlike = async (tags: { TagKey: string; TagValue: string }[]) => {
    const other = (await clients.kms.send(new CreateKeyCommand({ Tags: tags }))).KeyMetadata!;
    await clients.kms.send(new CreateAliasCommand({ AliasName: ALIAS, TargetKeyId: other.KeyId }));
    return other;
  };
  const refused = async () => {
    const error = await apply(clients, specPath).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KubebakeError);
    expect((error as KubebakeError).exitCode).toBe(ExitCode.unsafeState);
    return (error as Error).message;
  };

  test("before the first apply: nothing is created, not even the cluster id", async () => {
    const other = await lookAlike([{ TagKey: "KubernetesCluster", TagValue: "demo" }]);
    expect(await refused()).toMatch(
      new RegExp(`^kms-alias ${ALIAS} exists but was not created by this cluster`),
    );
    expect(await clients.ssm.send(new DescribeParametersCommand({}))).toMatchObject({ Parameters: [] });
    expect((await describeKey(ALIAS)).KeyId).toBe(other.KeyId);
  });

  test("under a running cluster: another cluster's key behind the alias; destroy leaves the alias and that key", async () => {
    await apply(clients, specPath);
    const ours = await describeKey(ALIAS);
    const other = (
      await clients.kms.send(
        new CreateKeyCommand({
          Tags: [
            { TagKey: "KubernetesCluster", TagValue: "demo" },
            { TagKey: "kubebake:owner", TagValue: "kb-0000000000000000" },
          ],
        }),
      )
    ).KeyMetadata!;
    await clients.kms.send(new UpdateAliasCommand({ AliasName: ALIAS, TargetKeyId: other.KeyId }));
    expect(await refused()).toMatch(/its kubebake:owner tag is "kb-0000000000000000"/);
    const destroyed = await destroy(clients);
    // Our own key (found by its tags) is still scheduled for deletion; the alias and the other key stay.
    expect(destroyed.mutating).not.toContain("kms:DeleteAlias");
    expect(destroyed.mutating).toContain("kms:ScheduleKeyDeletion");
    expect((await describeKey(ALIAS)).KeyId).toBe(other.KeyId);
    expect((await describeKey(other.KeyId!)).KeyState).toBe("Enabled");
    expect((await describeKey(ours.KeyId!)).KeyState).toBe("PendingDeletion");
  });
});

test("destroy deletes the alias and schedules the key's deletion; the cluster applied again gets a new key", async () => {
  await apply(clients, specPath);
  const old = await describeKey(ALIAS);
  const plan = await destroy(clients, "demo", true);
  expect(plan.changes).toEqual(
    expect.arrayContaining([
      { action: "delete", kind: "kms-alias", name: ALIAS },
      { action: "delete", kind: "kms-key", name: old.KeyId, detail: "scheduled for deletion in 7 days" },
    ]),
  );
  const destroyed = await destroy(clients);
  expect(destroyed.mutating.filter((c) => c.startsWith("kms:"))).toEqual([
    "kms:DeleteAlias",
    "kms:ScheduleKeyDeletion",
  ]);
  expect(await aliases()).toEqual([]);
  const gone = await describeKey(old.KeyId!);
  expect(gone.KeyState).toBe("PendingDeletion");
  // KMS's shortest window, not its 30-day default.
  const days = (gone.DeletionDate!.getTime() - Date.now()) / 86_400_000;
  expect(days).toBeGreaterThan(6.9);
  expect(days).toBeLessThanOrEqual(7);
  expect((await destroy(clients)).mutating).toEqual([]);

  // A new cluster id, a new key: the pending one is neither in the way nor revived.
  await apply(clients, specPath);
  const renewed = await describeKey(ALIAS);
  expect(renewed.KeyId).not.toBe(old.KeyId);
  expect(renewed.KeyState).toBe("Enabled");
  expect((await describeKey(old.KeyId!)).KeyState).toBe("PendingDeletion");
  expect((await apply(clients, specPath)).mutating).toEqual([]);
});

test("a key of ours found without its alias is named again; one scheduled for deletion behind the alias is replaced", async () => {
  await apply(clients, specPath);
  const key = await describeKey(ALIAS);
  await clients.kms.send(new DeleteAliasCommand({ AliasName: ALIAS }));
  const renamed = await apply(clients, specPath);
  expect(renamed.changes).toEqual([
    { action: "create", kind: "kms-alias", name: ALIAS, detail: `to ${key.KeyId}` },
  ]);
  expect((await describeKey(ALIAS)).KeyId).toBe(key.KeyId);

  // Scheduled for deletion by hand while the cluster runs: a new key, the alias moved to it, the
  // parameters and templates rewritten under it.
  await clients.kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId, PendingWindowInDays: 7 }));
  const replaced = await apply(clients, specPath);
  const lines = replaced.changes.map((c) => `${c.action} ${c.kind} ${c.name}`);
  expect(lines).toEqual(
    expect.arrayContaining([
      `create kms-key ${ALIAS}`,
      "update iam-policy kubebake-demo-eu-west-1-masters/kubebake",
      "update iam-policy kubebake-demo-eu-west-1-minions/kubebake",
      "update pki /kubebake/demo",
      `update launch-template ${resourceName("demo", "masters")}`,
      `update launch-template ${resourceName("demo", "minions")}`,
    ]),
  );
  const renewed = await describeKey(ALIAS);
  expect(renewed.KeyId).not.toBe(key.KeyId);
  expect(renewed.KeyState).toBe("Enabled");
  expect((await apply(clients, specPath)).mutating).toEqual([]);
});
