/**
 * The IAM policies of desired.ts, evaluated by an IAM policy simulator rather than compared as strings:
 * each role may do exactly what it needs, and its neighbours (another cluster, another region, another
 * zone, another record, writing secrets, passing roles, another principal) are denied.
 */
import { isDeepStrictEqual } from "node:util";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { awsClusterSpecSchema } from "../../src/cluster/schema";
import {
  ROLE_SECRET_NAMES,
  assumeRolePolicy,
  autoScalingServiceRole,
  clusterKeyPolicy,
  discoveryFunctionName,
  discoveryPolicy,
  discoveryRoleName,
  iamPath,
  nodePolicy,
  nodeRoleName,
  partitionOf,
  resourceName,
  snapshotBucketName,
  snapshotBucketPolicy,
} from "../../src/launch/aws/desired";
import { PKI_FILE_NAMES } from "../../src/launch/aws/secrets";
import { clusterYaml, inputsFor, KEY_ARN } from "./fixture";

const ACCOUNT = "123456789012";
const OTHER_ACCOUNT = "210987654321";
const ZONE = "Z0000000000000OWNZONE";
const OTHER_ZONE = "Z0000000000000OTHERZN";
const spec = awsClusterSpecSchema.parse(clusterYaml());
const inputs = inputsFor(spec, ACCOUNT);
const REGION = spec.region;

type Decision = "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied";
interface Request {
  action: string;
  resource: string;
  context?: Record<string, string | string[]>;
}

/** The simulator's overall decision; a request it refuses as malformed fails the test loudly. */
async function decide(
  principal: string,
  request: Request,
  identity: object[],
  resourcePolicy?: object,
): Promise<Decision> {
  const result = await runSimulation(
    {
      request: {
        principal,
        action: request.action,
        resource: { resource: request.resource, accountId: ACCOUNT },
        contextVariables: request.context ?? {},
      },
      identityPolicies: identity.map((policy, i) => ({ name: `policy-${i}`, policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy } : {}),
    },
    {},
  );
  if (result.resultType === "error") {
    throw new Error(
      `simulator refused ${request.action} on ${request.resource}: ${JSON.stringify(result.errors)}`,
    );
  }
  return result.overallResult as Decision;
}

const allowed = (decision: Decision) => decision === "Allowed";
const describeRequest = (r: Request) =>
  `${r.action} on ${r.resource}${r.context ? ` ${JSON.stringify(r.context)}` : ""}`;

/**
 * KMS needs the key policy to allow too: a KMS request meets the cluster key's policy (AWS's default for
 * the account, so the role's own policy decides; another key of the account is taken to have the same).
 */
const keyPolicyOf = (r: Request) => (r.action.startsWith("kms:") ? clusterKeyPolicy(inputs) : undefined);

/** Every request evaluated against one role's permission policy, compared whole as "request: ALLOW|DENY". */
async function expectDecisions(roleName: string, policy: object, allow: Request[], deny: Request[]) {
  const session = `arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/session`;
  const lines = async (requests: Request[]) =>
    Promise.all(
      requests.map(
        async (r) =>
          `${describeRequest(r)}: ${allowed(await decide(session, r, [policy], keyPolicyOf(r))) ? "ALLOW" : "DENY"}`,
      ),
    );
  expect(await lines(allow)).toEqual(allow.map((r) => `${describeRequest(r)}: ALLOW`));
  expect(await lines(deny)).toEqual(deny.map((r) => `${describeRequest(r)}: DENY`));
}

const parameter = (name: string, cluster = "demo", region = REGION, account = ACCOUNT) =>
  `arn:aws:ssm:${region}:${account}:parameter/kubebake/${cluster}/${name}`;
const get = (resource: string): Request => ({ action: "ssm:GetParameter", resource });

/** What no node or function role may do, whatever else it is allowed. */
const neverAllowed: Request[] = [
  { action: "ssm:PutParameter", resource: parameter("ca.key") },
  // (masters alone may publish the join token: their test takes it out of this list)
  { action: "ssm:PutParameter", resource: parameter("bootstrap-token") },
  { action: "ssm:DeleteParameter", resource: parameter("ca.key") },
  { action: "iam:PassRole", resource: `arn:aws:iam::${ACCOUNT}:role/admin` },
  {
    action: "iam:PassRole",
    resource: `arn:aws:iam::${ACCOUNT}:role${iamPath("demo", REGION)}${nodeRoleName(spec, "masters")}`,
  },
  { action: "iam:CreateRole", resource: `arn:aws:iam::${ACCOUNT}:role/x` },
  { action: "sts:AssumeRole", resource: `arn:aws:iam::${ACCOUNT}:role/admin` },
  // Another cluster's secrets: another name, a name that merely starts with ours, ours in another region
  // (SSM is regional: that is another cluster), ours in another account.
  get(parameter("ca.crt", "demo2")),
  get(parameter("ca.crt", "other")),
  get(parameter("bootstrap-token", "demo-prod")),
  get(parameter("ca.crt", "demo", "us-east-1")),
  get(parameter("bootstrap-token", "demo", "us-east-1")),
  get(parameter("ca.crt", "demo", REGION, OTHER_ACCOUNT)),
  get(`arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/other-app/password`),
  // Another zone's records.
  { action: "route53:ListResourceRecordSets", resource: `arn:aws:route53:::hostedzone/${OTHER_ZONE}` },
  {
    action: "route53:ChangeResourceRecordSets",
    resource: `arn:aws:route53:::hostedzone/${OTHER_ZONE}`,
    context: {
      "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
      "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["masters.demo.k8s"],
      "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
    },
  },
  { action: "route53:DeleteHostedZone", resource: `arn:aws:route53:::hostedzone/${ZONE}` },
  {
    action: "ec2:TerminateInstances",
    resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0123456789abcdef0`,
  },
];

/** kms:Decrypt of a parameter's value as SSM of the cluster's region asks for it. */
const decrypt = (key = KEY_ARN, via = `ssm.${REGION}.amazonaws.com`): Request => ({
  action: "kms:Decrypt",
  resource: key,
  context: { "kms:ViaService": via },
});
const OTHER_KEY = `arn:aws:kms:${REGION}:${ACCOUNT}:key/ffffffff-ffff-ffff-ffff-ffffffffffff`;
/** The cluster key used any other way than SSM decrypting, and other keys. */
const beyondDecrypt: Request[] = [
  decrypt(OTHER_KEY),
  decrypt(`arn:aws:kms:us-east-1:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`),
  decrypt(KEY_ARN.replace(ACCOUNT, OTHER_ACCOUNT)),
  decrypt(KEY_ARN, `s3.${REGION}.amazonaws.com`),
  decrypt(KEY_ARN, `ec2.${REGION}.amazonaws.com`),
  decrypt(KEY_ARN, `ssm.us-east-1.amazonaws.com`),
  // Directly, not through SSM (a ciphertext copied elsewhere).
  { action: "kms:Decrypt", resource: KEY_ARN },
  ...[
    "kms:Encrypt",
    "kms:ReEncryptFrom",
    "kms:GenerateDataKey",
    "kms:CreateGrant",
    "kms:ScheduleKeyDeletion",
  ].map((action): Request => ({
    action,
    resource: KEY_ARN,
    context: { "kms:ViaService": `ssm.${REGION}.amazonaws.com` },
  })),
  { action: "kms:PutKeyPolicy", resource: KEY_ARN },
  { action: "kms:DisableKey", resource: KEY_ARN },
];

/** What masters need to publish the join token they mint: that parameter, encrypted through SSM. */
const publishJoinToken: Request[] = [
  { action: "ssm:PutParameter", resource: parameter("bootstrap-token") },
  { action: "kms:Encrypt", resource: KEY_ARN, context: { "kms:ViaService": `ssm.${REGION}.amazonaws.com` } },
];

const BUCKET = snapshotBucketName(ACCOUNT, REGION, "demo");
/** A request on an S3 object or bucket, in the account that owns it unless said otherwise. */
const s3 = (action: string, resource: string, context: Record<string, string> = {}): Request => ({
  action,
  resource: `arn:aws:s3:::${resource}`,
  context: { "s3:ResourceAccount": ACCOUNT, ...context },
});
const snapshot = (key = "demo/etcd/snapshot-20261130T1200Z.db", bucket = BUCKET) => `${bucket}/${key}`;
const groupArn = (name: string, region = REGION, account = ACCOUNT) =>
  `arn:aws:autoscaling:${region}:${account}:autoScalingGroup:6d3f5e8a-0b1c-4d2e-9f3a-1b2c3d4e5f60:autoScalingGroupName/${name}`;
const complete = (name: string, region = REGION): Request => ({
  action: "autoscaling:CompleteLifecycleAction",
  resource: groupArn(name, region),
});

/**
 * What masters need for etcd snapshots and the rollout gate: put and get under their prefix, list it,
 * delete the restore request they consumed, complete their hook.
 */
const snapshotsAndGate: Request[] = [
  { action: "autoscaling:SetInstanceHealth", resource: groupArn(resourceName("demo", "masters")) },
  s3("s3:PutObject", snapshot()),
  s3("s3:GetObject", snapshot()),
  s3("s3:ListBucket", BUCKET, { "s3:prefix": "demo/etcd/" }),
  // The operator's restore request, deleted by the master that restored it (src/node/etcd-member).
  s3("s3:DeleteObject", snapshot("demo/etcd/restore-request")),
  complete(resourceName("demo", "masters")),
];

const describeInstances: Request = { action: "ec2:DescribeInstances", resource: "*" };

/** Beside what masters need: other keys, buckets, owners, actions and groups. */
const besideSnapshotsAndGate: Request[] = [
  s3("s3:PutObject", snapshot("demo/other/x.db")),
  s3("s3:PutObject", snapshot("demo/etcd-old/x.db")),
  s3("s3:PutObject", snapshot("other/etcd/x.db")),
  s3("s3:GetObject", snapshot("x.db")),
  // Another cluster's bucket, and ours after its name went to another account.
  s3("s3:PutObject", snapshot("demo/etcd/x.db", snapshotBucketName(ACCOUNT, REGION, "demo2"))),
  s3("s3:PutObject", snapshot("demo/etcd/x.db", snapshotBucketName(ACCOUNT, "us-east-1", "demo"))),
  s3("s3:PutObject", snapshot(), { "s3:ResourceAccount": OTHER_ACCOUNT }),
  s3("s3:GetObject", snapshot(), { "s3:ResourceAccount": OTHER_ACCOUNT }),
  s3("s3:ListBucket", BUCKET, { "s3:prefix": "demo/etcd/", "s3:ResourceAccount": OTHER_ACCOUNT }),
  // Nothing deletes a snapshot (only the restore request, as a delete marker) or reconfigures the bucket:
  // a compromised master cannot erase the backups.
  s3("s3:DeleteObject", snapshot()),
  s3("s3:DeleteObject", snapshot("demo/etcd/restore-request.db")),
  s3("s3:DeleteObject", snapshot("demo/etcd/restore-request", snapshotBucketName(ACCOUNT, REGION, "demo2"))),
  s3("s3:DeleteObject", snapshot("demo/etcd/restore-request"), { "s3:ResourceAccount": OTHER_ACCOUNT }),
  s3("s3:DeleteObjectVersion", snapshot("demo/etcd/restore-request")),
  s3("s3:DeleteObjectVersion", snapshot()),
  s3("s3:GetObjectVersion", snapshot()),
  s3("s3:PutBucketPolicy", BUCKET),
  s3("s3:PutLifecycleConfiguration", BUCKET),
  s3("s3:DeleteBucket", BUCKET),
  s3("s3:ListBucketVersions", BUCKET, { "s3:prefix": "demo/etcd/" }),
  // Listing only under the prefix.
  s3("s3:ListBucket", BUCKET),
  s3("s3:ListBucket", BUCKET, { "s3:prefix": "demo/" }),
  s3("s3:ListBucket", BUCKET, { "s3:prefix": "other/etcd/" }),
  // Only its own group's hook, and nothing else of Auto Scaling.
  complete(resourceName("demo", "minions")),
  complete(resourceName("demo2", "masters")),
  complete(resourceName("demo", "masters"), "us-east-1"),
  {
    action: "autoscaling:CompleteLifecycleAction",
    resource: groupArn(resourceName("demo", "masters"), REGION, OTHER_ACCOUNT),
  },
  {
    action: "autoscaling:RecordLifecycleActionHeartbeat",
    resource: groupArn(resourceName("demo", "masters")),
  },
  {
    action: "autoscaling:TerminateInstanceInAutoScalingGroup",
    resource: groupArn(resourceName("demo", "masters")),
  },
  { action: "autoscaling:PutLifecycleHook", resource: groupArn(resourceName("demo", "masters")) },
  { action: "autoscaling:SetDesiredCapacity", resource: groupArn(resourceName("demo", "masters")) },
  // Its own health only in its own group.
  { action: "autoscaling:SetInstanceHealth", resource: groupArn(resourceName("demo", "minions")) },
  { action: "autoscaling:SetInstanceHealth", resource: groupArn(resourceName("demo2", "masters")) },
];

describe("node permission policies (simulated)", () => {
  test("masters read the secrets they fetch (not the operator's admin credential), publish the join token, keep etcd snapshots under their prefix, complete their group's launch hook, describe instances, and nothing else", async () => {
    const unread = PKI_FILE_NAMES.filter((name) => !ROLE_SECRET_NAMES.masters.includes(name));
    expect(unread).toEqual(["admin.crt", "admin.key", "admin.kubeconfig"]);
    await expectDecisions(
      nodeRoleName(spec, "masters"),
      nodePolicy(inputs, "masters", KEY_ARN),
      [
        ...ROLE_SECRET_NAMES.masters.map((name) => get(parameter(name))),
        decrypt(),
        ...publishJoinToken,
        ...snapshotsAndGate,
        // A joining node's instance (approve-kubelet-certs).
        describeInstances,
      ],
      [
        // Reading instances only: nothing that changes one.
        {
          action: "ec2:TerminateInstances",
          resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0123456789abcdef0`,
        },
        {
          action: "ec2:ModifyInstanceAttribute",
          resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0123456789abcdef0`,
        },
        ...[...neverAllowed, ...beyondDecrypt].filter(
          (r) => !publishJoinToken.some((p) => isDeepStrictEqual(p, r)),
        ),
        ...besideSnapshotsAndGate,
        ...[...unread, "cluster-id"].map((name) => get(parameter(name))),
        // The join token only: no other parameter, no other service's encryption.
        { action: "ssm:PutParameter", resource: parameter("ca.key") },
        { action: "ssm:PutParameter", resource: parameter("cluster-id") },
        { action: "ssm:PutParameter", resource: parameter("encryption-config.yaml") },
        { action: "ssm:DeleteParameter", resource: parameter("bootstrap-token") },
        { action: "kms:Encrypt", resource: KEY_ARN },
        {
          action: "kms:Encrypt",
          resource: KEY_ARN,
          context: { "kms:ViaService": `s3.${REGION}.amazonaws.com` },
        },
        { action: "ssm:GetParametersByPath", resource: parameter("").replace(/\/$/, "") },
        { action: "ssm:GetParameter", resource: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/kubebake/demo` },
      ],
    );
  });

  test("minions read only the CA certificate and the bootstrap token: no key, no kubeconfig", async () => {
    const readable = ["ca.crt", "bootstrap-token"];
    const forbidden = PKI_FILE_NAMES.filter((name) => !readable.includes(name));
    expect(forbidden).toEqual(
      expect.arrayContaining(["ca.key", "sa.key", "etcd-ca.key", "admin.kubeconfig"]),
    );
    await expectDecisions(
      nodeRoleName(spec, "minions"),
      nodePolicy(inputs, "minions", KEY_ARN),
      // Decrypting through SSM is all of KMS a minion gets; SSM itself refuses it the masters' parameters.
      [...readable.map((name) => get(parameter(name))), decrypt()],
      [
        ...forbidden.map((name) => get(parameter(name))),
        ...beyondDecrypt,
        get(parameter("cluster-id")),
        ...neverAllowed,
        // Snapshots, the rollout gate, the join token and the joins' check are the masters' alone.
        ...snapshotsAndGate,
        describeInstances,
        ...publishJoinToken,
        ...besideSnapshotsAndGate,
      ],
    );
  });
});

describe("discovery function permission policy (simulated)", () => {
  const zone = `arn:aws:route53:::hostedzone/${ZONE}`;
  const change = (names: string[], types: string[], resource = zone): Request => ({
    action: "route53:ChangeResourceRecordSets",
    resource,
    context: {
      "route53:ChangeResourceRecordSetsNormalizedRecordNames": names,
      "route53:ChangeResourceRecordSetsRecordTypes": types,
      "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
    },
  });
  // The function's own log group: Lambda logs to /aws/lambda/<function name>.
  const logGroup = `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/kubebake-demo-dns-discovery`;
  const otherLogGroup = `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/other-function`;

  test("reads groups, instances and its zone; writes only its three A records and its own logs", async () => {
    await expectDecisions(
      discoveryRoleName(spec),
      discoveryPolicy(inputs, ZONE),
      [
        { action: "autoscaling:DescribeAutoScalingGroups", resource: "*" },
        { action: "ec2:DescribeInstances", resource: "*" },
        { action: "route53:ListResourceRecordSets", resource: zone },
        change(["masters.demo.k8s"], ["A"]),
        change(["minions.demo.k8s"], ["A"]),
        change(["etcd.demo.k8s"], ["A"]),
        change(["masters.demo.k8s", "minions.demo.k8s"], ["A"]),
        change(["masters.demo.k8s", "etcd.demo.k8s"], ["A"]),
        change(["masters.demo.k8s", "minions.demo.k8s", "etcd.demo.k8s"], ["A"]),
        { action: "logs:CreateLogGroup", resource: logGroup },
        { action: "logs:CreateLogStream", resource: `${logGroup}:log-stream:2026/11/30/abc` },
        { action: "logs:PutLogEvents", resource: `${logGroup}:log-stream:2026/11/30/abc` },
      ],
      [
        ...neverAllowed,
        // another record type on its own names
        ...["AAAA", "CNAME", "TXT", "NS", "MX"].map((type) => change(["masters.demo.k8s"], [type])),
        change(["masters.demo.k8s"], ["A", "TXT"]),
        ...["AAAA", "CNAME", "TXT"].map((type) => change(["etcd.demo.k8s"], [type])),
        // another record name in (or beside) the zone
        change(["peers.demo.k8s"], ["A"]),
        change(["demo.k8s"], ["A"]),
        change(["masters.demo.k8s", "evil.demo.k8s"], ["A"]),
        change(["etcd.demo.k8s", "evil.demo.k8s"], ["A"]),
        change(["masters.other.k8s"], ["A"]),
        change(["etcd.other.k8s"], ["A"]),
        change(["x.etcd.demo.k8s"], ["A"]),
        change(["masters.demo.k8s"], ["A"], `arn:aws:route53:::hostedzone/${OTHER_ZONE}`),
        // the cluster's secrets are not the function's business
        get(parameter("ca.crt")),
        get(parameter("bootstrap-token")),
        { action: "logs:CreateLogGroup", resource: otherLogGroup },
        { action: "logs:PutLogEvents", resource: `${otherLogGroup}:log-stream:x` },
        { action: "ec2:ModifyInstanceAttribute", resource: `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-1` },
        {
          action: "autoscaling:SetDesiredCapacity",
          resource: `arn:aws:autoscaling:${REGION}:${ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/kubebake-demo-minions`,
        },
      ],
    );
  });
});

describe("policy documents", () => {
  test("are in IAM's current policy language, with unique alphanumeric statement ids IAM accepts", () => {
    expect(discoveryFunctionName("demo")).toBe("kubebake-demo-dns-discovery");
    const documents = [
      nodePolicy(inputs, "masters", KEY_ARN),
      nodePolicy(inputs, "minions", KEY_ARN),
      discoveryPolicy(inputs, ZONE),
      assumeRolePolicy("ec2.amazonaws.com"),
      assumeRolePolicy("lambda.amazonaws.com"),
    ];
    for (const document of documents) {
      expect(document.Version).toBe("2012-10-17");
      const sids = document.Statement.flatMap((s) => ("Sid" in s ? [s.Sid] : []));
      for (const sid of sids) expect(sid).toMatch(/^[A-Za-z0-9]+$/);
      expect(new Set(sids).size).toBe(sids.length);
    }
    // Statements of the permission policies are named, so that a reader in the console can tell them apart.
    expect(discoveryPolicy(inputs, ZONE).Statement.every((s) => "Sid" in s)).toBe(true);
    expect(nodePolicy(inputs, "minions", KEY_ARN).Statement.every((s) => "Sid" in s)).toBe(true);
    expect(nodePolicy(inputs, "masters", KEY_ARN).Statement.map((s) => (s as { Sid?: string }).Sid)).toEqual([
      "ReadClusterSecrets",
      "DecryptClusterSecrets",
      "PublishJoinToken",
      "EncryptJoinToken",
      "WriteEtcdSnapshots",
      "ListEtcdSnapshots",
      "ConsumeRestoreRequest",
      "DescribeJoiningInstances",
      "CompleteOwnLaunch",
    ]);
    expect(nodePolicy(inputs, "minions", KEY_ARN).Statement.map((s) => (s as { Sid?: string }).Sid)).toEqual([
      "ReadClusterSecrets",
      "DecryptClusterSecrets",
    ]);
    expect(clusterKeyPolicy(inputs).Statement.map((s) => (s as { Sid?: string }).Sid)).toEqual([
      "AccountAdministersKey",
      "AutoScalingUsesKey",
      "AutoScalingGrantsForVolumes",
    ]);
  });

  test("no statement allows every action; the roles' policies name each action, and KMS only kms:Decrypt (masters also kms:Encrypt, for the join token) on the cluster key through SSM", () => {
    const actions = (document: { Statement: object[] }) =>
      document.Statement.flatMap((s) => {
        const action = (s as { Action?: string | string[] }).Action;
        return action === undefined ? [] : [action].flat();
      });
    const permissions = [
      nodePolicy(inputs, "masters", KEY_ARN),
      nodePolicy(inputs, "minions", KEY_ARN),
      discoveryPolicy(inputs, ZONE),
    ];
    for (const document of [
      ...permissions,
      clusterKeyPolicy(inputs),
      assumeRolePolicy("ec2.amazonaws.com"),
    ]) {
      expect(actions(document)).not.toContain("*");
      expect(document.Statement.some((s) => "NotAction" in s)).toBe(false);
    }
    for (const document of permissions) expect(actions(document).filter((a) => a.includes("*"))).toEqual([]);
    for (const role of ["masters", "minions"] as const) {
      const kms = nodePolicy(inputs, role, KEY_ARN).Statement.filter((s) =>
        actions({ Statement: [s] }).some((a) => a.startsWith("kms:")),
      );
      expect(kms).toEqual([
        expect.objectContaining({ Effect: "Allow", Action: ["kms:Decrypt"], Resource: KEY_ARN }),
        ...(role === "masters"
          ? [expect.objectContaining({ Effect: "Allow", Action: ["kms:Encrypt"], Resource: KEY_ARN })]
          : []),
      ]);
      for (const statement of kms)
        expect(statement).toMatchObject({
          Condition: { StringEquals: { "kms:ViaService": `ssm.${REGION}.amazonaws.com` } },
        });
    }
    expect(JSON.stringify(discoveryPolicy(inputs, ZONE))).not.toContain("kms:");
    // The only wildcard of the key policy is AWS's default statement for the account (IAM decides).
    expect(
      clusterKeyPolicy(inputs).Statement.filter((s) => actions({ Statement: [s] }).includes("kms:*")),
    ).toEqual([expect.objectContaining({ Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` } })]);
  });
});

describe("the cluster key's policy (simulated)", () => {
  const autoScaling = autoScalingServiceRole(inputs);
  const request = (action: string, context: Record<string, string> = {}): Request => ({
    action,
    resource: KEY_ARN,
    context,
  });
  const onKey = (principal: string, r: Request) => decide(principal, r, [], clusterKeyPolicy(inputs));

  test("Auto Scaling's service-linked role may encrypt volumes with it and grant EC2 their use, nothing else", async () => {
    expect(autoScaling).toBe(
      `arn:aws:iam::${ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
    );
    const allowed = [
      request("kms:Encrypt"),
      request("kms:Decrypt"),
      request("kms:ReEncryptFrom"),
      request("kms:ReEncryptTo"),
      request("kms:GenerateDataKeyWithoutPlaintext"),
      request("kms:DescribeKey"),
      request("kms:CreateGrant", { "kms:GrantIsForAWSResource": "true" }),
    ];
    const denied = [
      request("kms:CreateGrant"),
      request("kms:CreateGrant", { "kms:GrantIsForAWSResource": "false" }),
      request("kms:ScheduleKeyDeletion"),
      request("kms:PutKeyPolicy"),
      request("kms:DisableKey"),
    ];
    const lines = async (requests: Request[]) =>
      Promise.all(requests.map(async (r) => `${describeRequest(r)}: ${await onKey(autoScaling, r)}`));
    expect(await lines(allowed)).toEqual(allowed.map((r) => `${describeRequest(r)}: Allowed`));
    expect(await lines(denied)).toEqual(denied.map((r) => `${describeRequest(r)}: ImplicitlyDenied`));
  });

  test("another account, or another service's role, gets nothing from the key policy alone", async () => {
    for (const principal of [
      `arn:aws:iam::${OTHER_ACCOUNT}:root`,
      `arn:aws:iam::${OTHER_ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
      `arn:aws:iam::${ACCOUNT}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS`,
    ]) {
      expect(`${principal}: ${await onKey(principal, request("kms:Decrypt"))}`).toBe(
        `${principal}: ImplicitlyDenied`,
      );
    }
  });
});

describe("the partition of the credentials", () => {
  test("is read from the caller ARN", () => {
    expect(partitionOf("arn:aws-cn:iam::123456789012:user/x")).toBe("aws-cn");
    expect(partitionOf("arn:aws:sts::123456789012:assumed-role/r/s")).toBe("aws");
    expect(partitionOf("arn:aws-us-gov:iam::123456789012:root")).toBe("aws-us-gov");
    expect(() => partitionOf("")).toThrow("not an AWS ARN");
    expect(() => partitionOf("aws:iam::123456789012:user/x")).toThrow("not an AWS ARN");
    expect(() => partitionOf("arn:gcp:iam::1:user/x")).toThrow("not an AWS ARN");
  });

  test("an aws-cn caller gets aws-cn ARNs in every policy kubebake writes, and China's endpoints in kms:ViaService", () => {
    const china = { ...inputs, partition: partitionOf("arn:aws-cn:iam::123456789012:user/x") };
    const key = `arn:aws-cn:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
    const documents = [
      nodePolicy(china, "masters", key),
      nodePolicy(china, "minions", key),
      discoveryPolicy(china, ZONE),
      clusterKeyPolicy(china),
      snapshotBucketPolicy(BUCKET, china.partition),
    ];
    for (const document of documents) {
      const arns = JSON.stringify(document).match(/arn:[a-z-]*:/g) ?? [];
      expect(arns.length).toBeGreaterThan(0);
      expect(new Set(arns)).toEqual(new Set(["arn:aws-cn:"]));
    }
    expect(autoScalingServiceRole(china)).toBe(
      `arn:aws-cn:iam::${ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
    );
    expect(nodePolicy(china, "minions", key).Statement[1]).toEqual({
      Sid: "DecryptClusterSecrets",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: key,
      Condition: { StringEquals: { "kms:ViaService": `ssm.${REGION}.amazonaws.com.cn` } },
    });
    // The commercial partition stays as it was.
    expect(JSON.stringify(nodePolicy(inputs, "masters", KEY_ARN))).not.toContain("aws-cn");
  });
});

describe("trust policies (simulated)", () => {
  /** Callers that must never assume a cluster's role; each brings an identity policy allowing anything. */
  const anyAction = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] };
  const outsiders = [
    `arn:aws:iam::${OTHER_ACCOUNT}:role/attacker`,
    `arn:aws:iam::${OTHER_ACCOUNT}:root`,
    `arn:aws:iam::${ACCOUNT}:role/some-other-role`,
    `arn:aws:iam::${ACCOUNT}:user/someone`,
    `arn:aws:iam::${ACCOUNT}:root`,
  ];
  const roles = [
    ["masters", nodeRoleName(spec, "masters"), "ec2.amazonaws.com"],
    ["minions", nodeRoleName(spec, "minions"), "ec2.amazonaws.com"],
    ["dns-discovery", discoveryRoleName(spec), "lambda.amazonaws.com"],
  ] as const;

  test.each(roles)("%s (%s): only %s may assume it", async (_, roleName, service) => {
    const trust = assumeRolePolicy(service);
    const role = `arn:aws:iam::${ACCOUNT}:role${iamPath("demo", REGION)}${roleName}`;
    const assume: Request = { action: "sts:AssumeRole", resource: role };
    const services = [
      "ec2.amazonaws.com",
      "lambda.amazonaws.com",
      "ecs-tasks.amazonaws.com",
      "states.amazonaws.com",
    ];
    const callers: [string, object[]][] = [
      ...services.map((s): [string, object[]] => [s, []]),
      ...outsiders.map((o): [string, object[]] => [o, [anyAction]]),
    ];
    const decisions = await Promise.all(
      callers.map(
        async ([caller, identity]) => `${caller}: ${await decide(caller, assume, identity, trust)}`,
      ),
    );
    expect(decisions).toEqual(
      callers.map(([caller]) => `${caller}: ${caller === service ? "Allowed" : "ImplicitlyDenied"}`),
    );
  });
});
