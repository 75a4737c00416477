/**
 * What an AWS cluster should look like, derived from the cluster spec alone: names, tags, security
 * group rules, IAM policies, user data, launch template data. Pure: tests read it without a cloud.
 */
import { roleFileCloudConfig } from "../role-file";
import type { _InstanceType } from "@aws-sdk/client-ec2";
import { createHash } from "node:crypto";
import { discoveryRecords, ROLES, zoneName, type Role } from "../../discover/names";
import type { AwsClusterSpec as ClusterSpec } from "../../cluster/schema";
import type { DiscoveryConfig } from "../../discover/config";

export const CLUSTER_TAG = "KubernetesCluster";
export const ROLE_TAG = "Role";
export const NAME_TAG = "kubebake:name";
/** The cluster id (per cluster and region, kept in SSM) on everything kubebake creates: what is ours. */
export const OWNER_TAG = "kubebake:owner";
/** The tag that finds a baked AMI from a bake manifest's imageId. */
export const IMAGE_ID_TAG = "kubebake:image-id";

export interface Inputs {
  spec: ClusterSpec;
  account: string;
  /** The IAM partition of the credentials (`aws`, `aws-cn`, `aws-us-gov`…): every ARN written starts with it. */
  partition: string;
  ami: string;
  /** The AMI's root device name, which the launch templates' encrypted root volume must name. */
  rootDevice: string;
  /** From the image spec the AMI was baked with: the nodes already carry it. */
  discoveryDomain: string;
}

export interface Rule {
  protocol: "tcp" | "udp";
  from: number;
  to: number;
  source: { group: Role } | { cidr: string };
  description: string;
}

export const prefix = (cluster: string) => `kubebake-${cluster}`;

/**
 * The partition of a caller ARN from STS GetCallerIdentity (`arn:<partition>:sts::<account>:…`): ARNs
 * written with a hard-coded `arn:aws:` would name nothing in aws-cn or aws-us-gov.
 */
export function partitionOf(callerArn: string): string {
  const match = /^arn:(aws[a-z-]*):/.exec(callerArn);
  if (!match) throw new Error(`not an AWS ARN: ${JSON.stringify(callerArn)}`);
  return match[1]!;
}

/** The DNS suffix of a partition's service endpoints (the values of `kms:ViaService`). */
export const dnsSuffix = (partition: string) =>
  partition === "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com";
export const resourceName = (cluster: string, part: string) => `${prefix(cluster)}-${part}`;
export const secretPrefix = (cluster: string) => `/kubebake/${cluster}`;
/** The SSM parameter holding the cluster id; SSM is regional, so the id is per cluster and region. */
export const clusterIdParameter = (cluster: string) => `${secretPrefix(cluster)}/cluster-id`;

/** IAM role names are limited to 64 characters (instance profiles to 128; they share the role's name). */
const IAM_NAME_LIMIT = 64;

/**
 * The name of an account-global resource (IAM is not regional): `kubebake-<cluster>-<region>-<part>`, so
 * that clusters of one name in two regions never share one. Too long for IAM, the cluster and region are
 * cut and an 8-character hash of the full name keeps it unique: `kubebake-<cut>-<hash>-<part>`.
 */
export function globalName(cluster: string, region: string, part: string): string {
  const full = `${prefix(cluster)}-${region}-${part}`;
  if (full.length <= IAM_NAME_LIMIT) return full;
  const hash = createHash("sha256").update(full).digest("hex").slice(0, 8);
  const head = `${prefix(cluster)}-${region}`.slice(0, IAM_NAME_LIMIT - part.length - hash.length - 2);
  return `${head.replace(/-+$/, "")}-${hash}-${part}`;
}

/** S3 bucket names: 3 to 63 lowercase letters, digits, dots and hyphens, in one namespace across accounts. */
const BUCKET_NAME_LIMIT = 63;

/**
 * The cluster's etcd snapshot bucket, `kubebake-<cluster>-<12 hex digits>`: S3 names are global across
 * accounts and regions, so a hash of account, region and cluster keeps clusters of one name in two regions
 * (or accounts) apart, while the name stays known before anything exists (plan, IAM policy, role file).
 * 62 characters for a 40-character cluster name.
 */
export function snapshotBucketName(account: string, region: string, cluster: string): string {
  const hash = createHash("sha256").update(`${account}:${region}:${cluster}`).digest("hex").slice(0, 12);
  const name = `${prefix(cluster)}-${hash}`;
  if (name.length > BUCKET_NAME_LIMIT)
    throw new Error(`bucket name ${name} exceeds ${BUCKET_NAME_LIMIT} characters`);
  return name;
}
export const snapshotBucket = (inputs: Pick<Inputs, "spec" | "account">) =>
  snapshotBucketName(inputs.account, inputs.spec.region, inputs.spec.name);
/** The key prefix of a cluster's etcd snapshots in its bucket, with its trailing `/`. */
export const snapshotPrefix = (cluster: string) => `${cluster}/etcd/`;
/** The object under the snapshot prefix naming the snapshot to restore (read by src/node/etcd-member). */
export const RESTORE_REQUEST = "restore-request";
/** SNAPSHOT_STORE in the masters' role file: `s3://<bucket>/<cluster>/etcd`, objects below it after a `/`. */
export const snapshotStore = (inputs: Pick<Inputs, "spec" | "account">) =>
  `s3://${snapshotBucket(inputs)}/${inputs.spec.name}/etcd`;

/** IAM path of a cluster's roles and profiles: by cluster and region, so destroy lists only its own. */
export const iamPath = (cluster: string, region: string) => `/kubebake/${cluster}/${region}/`;
/** Role and instance profile of a node role, and the discovery function's role. */
export const nodeRoleName = (spec: Pick<ClusterSpec, "name" | "region">, role: Role) =>
  globalName(spec.name, spec.region, role);
export const discoveryRoleName = (spec: Pick<ClusterSpec, "name" | "region">) =>
  globalName(spec.name, spec.region, "dns-discovery");

/**
 * Tags on everything kubebake creates for a cluster: the owner tag (the cluster id) tells ours from a
 * look-alike; `kubebake:name` tells same-kind resources apart.
 */
export function tagsFor(spec: ClusterSpec, logicalName: string, clusterId: string): Record<string, string> {
  return {
    ...spec.tags,
    [CLUSTER_TAG]: spec.name,
    [NAME_TAG]: logicalName,
    [OWNER_TAG]: clusterId,
    Name: resourceName(spec.name, logicalName),
  };
}

export const asTagList = (tags: Record<string, string>) =>
  Object.entries(tags)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([Key, Value]) => ({ Key, Value }));

/** Inbound rules per role. Outbound stays AWS's default (nodes reach SSM and registries). */
export function securityGroupRules(spec: ClusterSpec): Record<Role, Rule[]> {
  const tcp = (from: number, to: number, source: Rule["source"], description: string): Rule => ({
    protocol: "tcp",
    from,
    to,
    source,
    description,
  });
  const operator = (port: number, cidrs: string[], what: string) =>
    cidrs.map((cidr) => tcp(port, port, { cidr }, `${what} from ${cidr}`));
  return {
    masters: [
      tcp(6443, 6443, { group: "minions" }, "API server from minions"),
      tcp(6443, 6443, { group: "masters" }, "API server from masters"),
      tcp(2379, 2380, { group: "masters" }, "etcd clients and peers between masters"),
      ...operator(6443, spec.network.apiAccess, "API server"),
      ...operator(22, spec.network.sshAccess, "SSH"),
    ],
    minions: [
      {
        protocol: "udp",
        from: 8472,
        to: 8472,
        source: { group: "minions" },
        description: "flannel VXLAN overlay",
      },
      tcp(10250, 10250, { group: "masters" }, "kubelet API from the API servers"),
      tcp(10250, 10250, { group: "minions" }, "kubelet API from minions (metrics)"),
      ...operator(22, spec.network.sshAccess, "SSH"),
    ],
  };
}

/** A stable key per rule, for comparing desired and observed permissions. */
export const ruleKey = (rule: Omit<Rule, "description">, groupIds: Record<Role, string>) =>
  `${rule.protocol}:${rule.from}-${rule.to}:${"cidr" in rule.source ? rule.source.cidr : groupIds[rule.source.group]}`;

const policy = (statements: object[]) => ({ Version: "2012-10-17", Statement: statements });

export function assumeRolePolicy(service: "ec2.amazonaws.com" | "lambda.amazonaws.com") {
  return policy([{ Effect: "Allow", Principal: { Service: service }, Action: "sts:AssumeRole" }]);
}

import { ROLE_SECRET_NAMES } from "../pki-files";

export { ROLE_SECRET_NAMES };

/**
 * Masters read every secret of their cluster; minions only the CA certificate and the bootstrap token.
 * Both decrypt them with the cluster key, only through SSM. Masters also write and read etcd snapshots
 * under their prefix of the cluster's bucket (deleting only a consumed restore request), and complete the
 * launch hook of their own group (nothing else of Auto Scaling).
 */
export function nodePolicy(inputs: Inputs, role: Role, keyArn: string) {
  const { region, name } = inputs.spec;
  const arn = (file: string) =>
    `arn:${inputs.partition}:ssm:${region}:${inputs.account}:parameter${secretPrefix(name)}/${file}`;
  const readable = ROLE_SECRET_NAMES[role].map(arn);
  const readSecrets = {
    Sid: "ReadClusterSecrets",
    Effect: "Allow",
    Action: ["ssm:GetParameter"],
    Resource: readable,
  };
  const decryptSecrets = {
    Sid: "DecryptClusterSecrets",
    Effect: "Allow",
    Action: ["kms:Decrypt"],
    Resource: keyArn,
    // Only through SSM of the cluster's region, which first checks ssm:GetParameter above: so a minion
    // decrypts no masters' parameter either.
    Condition: { StringEquals: { "kms:ViaService": `ssm.${region}.${dnsSuffix(inputs.partition)}` } },
  };
  // Masters publish the join token they mint (src/node/join-token): that one parameter, under the key.
  const publishJoinToken = [
    {
      Sid: "PublishJoinToken",
      Effect: "Allow",
      Action: ["ssm:PutParameter"],
      Resource: arn("bootstrap-token"),
    },
    {
      Sid: "EncryptJoinToken",
      Effect: "Allow",
      Action: ["kms:Encrypt"],
      Resource: keyArn,
      Condition: { StringEquals: { "kms:ViaService": `ssm.${region}.${dnsSuffix(inputs.partition)}` } },
    },
  ];
  return policy(
    role === "masters"
      ? [readSecrets, decryptSecrets, ...publishJoinToken, ...masterStatements(inputs)]
      : [readSecrets, decryptSecrets],
  );
}

function masterStatements(inputs: Inputs) {
  const { region, name } = inputs.spec;
  const bucket = `arn:${inputs.partition}:s3:::${snapshotBucket(inputs)}`;
  // S3 names are global: if the bucket were ever deleted and its name taken by another account, the
  // snapshots (every Secret of the cluster) must not follow it there.
  const inOwnAccount = { "s3:ResourceAccount": inputs.account };
  return [
    {
      Sid: "WriteEtcdSnapshots",
      Effect: "Allow",
      Action: ["s3:PutObject", "s3:GetObject"],
      Resource: `${bucket}/${snapshotPrefix(name)}*`,
      Condition: { StringEquals: inOwnAccount },
    },
    {
      Sid: "ListEtcdSnapshots",
      Effect: "Allow",
      Action: ["s3:ListBucket"],
      Resource: bucket,
      Condition: { StringEquals: inOwnAccount, StringLike: { "s3:prefix": [`${snapshotPrefix(name)}*`] } },
    },
    {
      // The one object a master deletes: the operator's restore request, once it restored that snapshot
      // (left behind, it would pick an old snapshot again at the next loss of every master). Snapshots
      // themselves cannot be deleted by a master.
      Sid: "ConsumeRestoreRequest",
      Effect: "Allow",
      Action: ["s3:DeleteObject"],
      Resource: `${bucket}/${snapshotPrefix(name)}${RESTORE_REQUEST}`,
      Condition: { StringEquals: inOwnAccount },
    },
    {
      // Check a joining node's instance: its private DNS name and cluster (approve-kubelet-certs). The
      // proof itself is checked by STS, which needs no permission.
      Sid: "DescribeJoiningInstances",
      Effect: "Allow",
      Action: ["ec2:DescribeInstances"],
      Resource: "*", // DescribeInstances supports no resource-level permissions
    },
    {
      // Complete its launch hook once it votes (launch-ready), and report itself unhealthy when its API
      // server stays down while the others hold quorum (api-health): its own group only.
      Sid: "CompleteOwnLaunch",
      Effect: "Allow",
      Action: ["autoscaling:CompleteLifecycleAction", "autoscaling:SetInstanceHealth"],
      // The group's ARN holds a uuid AWS chooses: matched by name.
      Resource: `arn:${inputs.partition}:autoscaling:${region}:${inputs.account}:autoScalingGroup:*:autoScalingGroupName/${resourceName(name, "masters")}`,
    },
  ];
}

/**
 * Default encryption of the snapshot bucket: SSE-S3 (AES256). The AWS managed key aws/s3 would add no
 * control: its key policy lets whoever may read an object through S3 in the account decrypt it, so IAM
 * and the bucket policy decide either way, and KMS would only add request costs, throttling and one more
 * service for every snapshot. A key of the cluster's own would add control but is another resource to
 * own (and, once scheduled for deletion, to wait 7 days for). Uploads with a key of the writer's own
 * (SSE-C), which a restore would need and never have, are refused.
 */
export const SNAPSHOT_ENCRYPTION = { SSEAlgorithm: "AES256" } as const;
export const BLOCKED_ENCRYPTION = { EncryptionType: ["SSE-C"] as "SSE-C"[] };
/** No public ACL or policy can ever open the snapshot bucket. */
export const PUBLIC_ACCESS_BLOCK = {
  BlockPublicAcls: true,
  IgnorePublicAcls: true,
  BlockPublicPolicy: true,
  RestrictPublicBuckets: true,
} as const;

/** The snapshot bucket's policy: nothing reaches it without TLS (the snapshots hold every Secret). */
export function snapshotBucketPolicy(bucket: string, partition: string) {
  return policy([
    {
      Sid: "DenyInsecureTransport",
      Effect: "Deny",
      Principal: "*",
      Action: "s3:*",
      Resource: [`arn:${partition}:s3:::${bucket}`, `arn:${partition}:s3:::${bucket}/*`],
      Condition: { Bool: { "aws:SecureTransport": "false" } },
    },
  ]);
}

export const SNAPSHOT_RULE_ID = "expire-etcd-snapshots";

/**
 * The snapshot bucket's one lifecycle rule, under the cluster's prefix: a snapshot becomes a noncurrent
 * version after `etcd.snapshotRetentionDays` days and is deleted a day later (versioning keeps an
 * overwritten or deleted snapshot for that day; the delete marker left alone is then removed by the same
 * rule, as S3 does for a Days expiration), and unfinished multipart uploads go after a day. S3 runs
 * lifecycle rules about once a day, so deletions may lag by a day or so.
 */
export function snapshotLifecycleRules(spec: ClusterSpec) {
  return [
    {
      ID: SNAPSHOT_RULE_ID,
      Status: "Enabled" as const,
      Filter: { Prefix: snapshotPrefix(spec.name) },
      Expiration: { Days: spec.etcd.snapshotRetentionDays },
      NoncurrentVersionExpiration: { NoncurrentDays: 1 },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
    },
  ];
}

/** The discovery settings of a cluster: the function's environment, and `kubebake dns sync`'s options. */
export function discoveryConfig(inputs: Inputs, zoneId: string): DiscoveryConfig {
  const { spec } = inputs;
  return {
    cluster: spec.name,
    zoneId,
    domain: inputs.discoveryDomain,
    ttl: spec.discovery.ttl,
    emptyGroup: spec.discovery.emptyGroup,
  };
}

export const discoveryFunctionName = (cluster: string) => resourceName(cluster, "dns-discovery");

/**
 * The EventBridge pattern that invokes the discovery function: every event Auto Scaling sends about the
 * cluster's two groups, whatever its detail-type (no detail-type filter on purpose). Among them "EC2
 * Instance Launch Successful", "EC2 Instance Terminate Successful" and "EC2 Instance-launch Lifecycle
 * Action", which Auto Scaling sends when a new master enters Pending:Wait at the launch hook: it must be
 * published in `etcd.` then, within seconds, since its etcd agent finds its peers there. Only events whose
 * detail names one of this cluster's groups match.
 */
export function autoScalingEventPattern(cluster: string) {
  return {
    source: ["aws.autoscaling"],
    detail: { AutoScalingGroupName: ROLES.map((role) => resourceName(cluster, role)) },
  };
}

/**
 * The discovery function: read the groups and instances, change only its three A records (`masters.`,
 * `minions.`, `etcd.`) in its zone.
 */
export function discoveryPolicy(inputs: Inputs, zoneId: string) {
  const { region, name } = inputs.spec;
  const { partition } = inputs;
  const logGroup = `arn:${partition}:logs:${region}:${inputs.account}:log-group:/aws/lambda/${discoveryFunctionName(name)}`;
  const records = discoveryRecords(name, inputs.discoveryDomain).map((r) => r.name.replace(/\.$/, ""));
  return policy([
    {
      Sid: "ReadGroupsAndInstances",
      Effect: "Allow",
      Action: ["autoscaling:DescribeAutoScalingGroups", "ec2:DescribeInstances"],
      Resource: "*", // these Describe actions support no resource-level permissions
    },
    {
      Sid: "ReadRecords",
      Effect: "Allow",
      Action: ["route53:ListResourceRecordSets"],
      Resource: `arn:${partition}:route53:::hostedzone/${zoneId}`,
    },
    {
      Sid: "WriteOwnRecords",
      Effect: "Allow",
      Action: ["route53:ChangeResourceRecordSets"],
      Resource: `arn:${partition}:route53:::hostedzone/${zoneId}`,
      Condition: {
        "ForAllValues:StringEquals": {
          "route53:ChangeResourceRecordSetsNormalizedRecordNames": records,
          "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
        },
      },
    },
    { Sid: "CreateLogGroup", Effect: "Allow", Action: ["logs:CreateLogGroup"], Resource: logGroup },
    {
      Sid: "WriteLogs",
      Effect: "Allow",
      Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
      Resource: `${logGroup}:*`,
    },
  ]);
}

/**
 * cloud-init user data: the role file and nothing secret (secrets come from SSM with the instance role).
 * Masters also learn where their etcd snapshots go, and which group and launch hook to complete once
 * they vote.
 */
export function userData(
  inputs: Pick<Inputs, "spec" | "account" | "partition">,
  role: Role,
  keyArn: string,
): string {
  const { spec } = inputs;
  const roleFile = [
    `CLUSTER_NAME=${spec.name}`,
    "CLOUD_PROVIDER=aws",
    `SECRET_SOURCE=ssm:${secretPrefix(spec.name)}`,
    ...(role === "masters"
      ? [
          // etcd-member seeds a new etcd cluster only once the whole group is in the masters record.
          `MASTERS_COUNT=${spec.groups.masters.count}`,
          `SNAPSHOT_STORE=${snapshotStore(inputs)}`,
          `GROUP_NAME=${resourceName(spec.name, "masters")}`,
          `LAUNCH_HOOK=${LAUNCH_HOOK_NAME}`,
          // The key the join token is published under (src/node/join-token).
          `SECRET_KMS_KEY=${keyArn}`,
          // Who may join (approve-kubelet-certs): STS's name for an instance session of a node role.
          `JOIN_IDENTITIES="${joinIdentities(inputs).join(" ")}"`,
        ]
      : []),
  ];
  return roleFileCloudConfig(role, roleFile);
}

/**
 * The signers a join proof may name, but for the session name (the instance id): the node roles' sessions
 * in this account, `arn:<partition>:sts::<account>:assumed-role/<role name>` (STS names no role path).
 */
export const joinIdentities = (inputs: Pick<Inputs, "spec" | "account" | "partition">) =>
  (["masters", "minions"] as const).map(
    (role) =>
      `arn:${inputs.partition}:sts::${inputs.account}:assumed-role/${nodeRoleName(inputs.spec, role)}`,
  );

/** The root volume of a node: encrypted with the cluster key, whatever the AMI's snapshot says. */
export interface RootVolume {
  DeviceName: string;
  Ebs: { Encrypted: true; KmsKeyId: string; DeleteOnTermination: true };
}

export interface LaunchTemplateData {
  ImageId: string;
  InstanceType: _InstanceType;
  KeyName?: string;
  UserData: string;
  IamInstanceProfile: { Name: string };
  SecurityGroupIds: string[];
  BlockDeviceMappings: [RootVolume];
  MetadataOptions: { HttpTokens: "required"; HttpPutResponseHopLimit: number; HttpEndpoint: "enabled" };
}

export function launchTemplateData(
  inputs: Inputs,
  role: Role,
  securityGroupId: string,
  keyArn: string,
): LaunchTemplateData {
  const { spec } = inputs;
  const group = spec.groups[role];
  return {
    ImageId: inputs.ami,
    InstanceType: group.instanceType as _InstanceType,
    ...(spec.sshKey ? { KeyName: spec.sshKey } : {}),
    UserData: Buffer.from(userData(inputs, role, keyArn)).toString("base64"),
    IamInstanceProfile: { Name: nodeRoleName(spec, role) },
    // No network interface settings: the subnet decides whether a node gets a public IP (MapPublicIpOnLaunch,
    // off in a private network and reconciled by network.ts). Naming the interface here would move the
    // security group into it and give every cluster's templates a new version.
    SecurityGroupIds: [securityGroupId],
    // Only the root device is named (the AMI's own, so no second volume appears): its size, type and
    // snapshot stay the AMI's. The node's disk holds the kubelet's credentials and, on masters, etcd.
    BlockDeviceMappings: [
      {
        DeviceName: inputs.rootDevice,
        Ebs: { Encrypted: true, KmsKeyId: keyArn, DeleteOnTermination: true },
      },
    ],
    // IMDSv2 only, and a hop limit of 1 keeps pods (one hop further) away from the node's credentials.
    MetadataOptions: { HttpTokens: "required", HttpPutResponseHopLimit: 1, HttpEndpoint: "enabled" },
  };
}

/**
 * The cluster key's alias. KMS aliases are per account and region, like the launch templates and groups
 * named `kubebake-<cluster>-…`, so the cluster's name alone is enough (a cluster of one name in another
 * region has its own alias there).
 */
export const keyAlias = (cluster: string) => `alias/${prefix(cluster)}`;
/** KMS's shortest waiting period before a key scheduled for deletion is gone. */
export const KEY_DELETION_WINDOW_DAYS = 7;

/** The role Auto Scaling launches instances with (AWS creates it with an account's first group). */
export const AUTO_SCALING_SERVICE = "autoscaling.amazonaws.com";
export const AUTO_SCALING_ROLE_NAME = "AWSServiceRoleForAutoScaling";
export const autoScalingServiceRole = (inputs: Pick<Inputs, "partition" | "account">) =>
  `arn:${inputs.partition}:iam::${inputs.account}:role/aws-service-role/${AUTO_SCALING_SERVICE}/${AUTO_SCALING_ROLE_NAME}`;

/**
 * The cluster key's policy. The account root with every KMS action is AWS's default statement: it lets
 * IAM policies grant use of the key (the node roles' kms:Decrypt) and keeps the key manageable. Auto
 * Scaling's service-linked role launches the instances, so it must use the key for their root volumes
 * and hand EC2 a grant for them; without this, every launch of an encrypted volume fails.
 */
export function clusterKeyPolicy(inputs: Pick<Inputs, "partition" | "account">) {
  const autoScaling = autoScalingServiceRole(inputs);
  return policy([
    {
      Sid: "AccountAdministersKey",
      Effect: "Allow",
      Principal: { AWS: `arn:${inputs.partition}:iam::${inputs.account}:root` },
      Action: "kms:*",
      Resource: "*",
    },
    {
      Sid: "AutoScalingUsesKey",
      Effect: "Allow",
      Principal: { AWS: autoScaling },
      Action: ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
      Resource: "*",
    },
    {
      Sid: "AutoScalingGrantsForVolumes",
      Effect: "Allow",
      Principal: { AWS: autoScaling },
      Action: "kms:CreateGrant",
      Resource: "*",
      Condition: { Bool: { "kms:GrantIsForAWSResource": true } },
    },
  ]);
}

export function groupSize(spec: ClusterSpec, role: Role) {
  if (role === "masters") {
    const n = spec.groups.masters.count;
    return { min: n, max: n, desired: n };
  }
  const { min, max, desired } = spec.groups.minions;
  return { min, max, desired };
}

/** The masters group's launch hook; the masters' role file names it (LAUNCH_HOOK). */
export const LAUNCH_HOOK_NAME = "kubebake-etcd-voter";
/** Auto Scaling's bounds of a lifecycle hook's heartbeat timeout, in seconds. */
const HEARTBEAT_BOUNDS = { min: 30, max: 7200 } as const;

export interface LaunchHook {
  LifecycleHookName: string;
  LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING";
  DefaultResult: "ABANDON";
  HeartbeatTimeout: number;
}

/**
 * The rollout gate: a new master stays Pending:Wait until it completes this hook, once it is a voting etcd
 * member with a ready API server, so a rollout (which waits for the group to be whole and healthy)
 * replaces the next master only after that. Not completed in time, the instance is abandoned (terminated
 * and replaced), never let into service unvoted. It waits as long as a rollout waits for it
 * (rollout.timeoutSeconds): abandoned sooner, a replacement that is still catching up would start over
 * while the rollout still waits; abandoned later, it would hold its place after apply has given up.
 * Minions have nothing to wait for.
 */
export function launchHook(spec: ClusterSpec, role: Role): LaunchHook | undefined {
  if (role !== "masters") return undefined;
  const { min, max } = HEARTBEAT_BOUNDS;
  return {
    LifecycleHookName: LAUNCH_HOOK_NAME,
    LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING",
    DefaultResult: "ABANDON",
    HeartbeatTimeout: Math.min(max, Math.max(min, spec.rollout.timeoutSeconds)),
  };
}

/** Instances replaced at once on a new image: masters one by one (etcd quorum), minions a share. */
export function rolloutBatch(spec: ClusterSpec, role: Role, size: number): number {
  if (role === "masters") return 1;
  return Math.max(1, Math.floor((size * spec.rollout.batchPercent) / 100));
}

export const clusterZoneName = (inputs: Pick<Inputs, "spec" | "discoveryDomain">) =>
  zoneName(inputs.spec.name, inputs.discoveryDomain);

/** Whether a VPC kubebake creates gives its nodes the internet, and why when the spec does not say. */
export interface InternetChoice {
  internet: boolean;
  /** Set when network.internet is unset: the rule that decided, which plan and apply print. */
  defaulted?: string;
}

/**
 * network.internet, or the default when unset: private for every cluster, except one whose VPC already
 * has its internet gateway (made when public was the only kind): that one stays public, since an upgrade
 * of kubebake must never rewire (and replace the nodes of) a running cluster on its own.
 */
export function internetChoice(spec: ClusterSpec, hasInternetGateway: boolean): InternetChoice {
  if (spec.network.internet !== undefined) return { internet: spec.network.internet };
  return hasInternetGateway
    ? {
        internet: true,
        defaulted:
          "network.internet is unset and the cluster's VPC has its internet gateway: it stays public (set network.internet: false to make it private, which replaces its nodes, or true to keep it so)",
      }
    : {
        internet: false,
        defaulted:
          "network.internet is unset: the cluster's network is private, the default for new clusters (set network.internet: true for public IPs and an internet gateway)",
      };
}

/** A VPC endpoint of a private network. */
export interface NodeEndpoint {
  /** The last part of its service name, `com.amazonaws.<region>.<service>`. */
  service: "ssm" | "autoscaling" | "sts" | "ec2" | "s3";
  type: "Interface" | "Gateway";
  /** Its kubebake:name. */
  logical: string;
}

/**
 * Every AWS API the node scripts call (src/node/providers/aws.sh, src/node/s3.sh), each reached in a
 * private network through a VPC endpoint. Nothing else leaves a node for AWS: the instance metadata
 * service (credentials, name, address) and the VPC's DNS resolver are link-local; SSM calls KMS on the
 * node's behalf (kms:ViaService), the node never does; the discovery function
 * runs outside the VPC; and every image is preloaded, so no registry is pulled from.
 * Masters also check joining nodes (STS, EC2).
 */
export const NODE_ENDPOINTS: readonly NodeEndpoint[] = [
  // node-config reads the role's secrets (GetParameter, decrypted by SSM); join-token on the masters
  // publishes the join token it mints (PutParameter).
  { service: "ssm", type: "Interface", logical: "endpoint-ssm" },
  // launch-ready completes the masters' launch hook (CompleteLifecycleAction); api-health asks for a
  // broken master's replacement (SetInstanceHealth).
  { service: "autoscaling", type: "Interface", logical: "endpoint-autoscaling" },
  // approve-kubelet-certs on the masters sends a joining node's proof to STS (GetCallerIdentity) and reads
  // that instance from EC2 (DescribeInstances).
  { service: "sts", type: "Interface", logical: "endpoint-sts" },
  { service: "ec2", type: "Interface", logical: "endpoint-ec2" },
  // etcd-member puts, lists, gets and deletes etcd snapshots in the cluster's bucket (s3.sh). A gateway
  // endpoint: free, and a route for the regional S3 addresses the scripts already use, so no DNS change.
  { service: "s3", type: "Gateway", logical: "endpoint-s3" },
];

/**
 * The names an endpoint service may carry: `com.amazonaws.<region>.<service>`, or in the China regions,
 * for some services only, `cn.com.amazonaws.<region>.<service>`. Which one a region offers is read from
 * the region (endpoints.ts), never guessed from the partition.
 */
export const endpointServiceNames = (region: string, service: string) => [
  `com.amazonaws.${region}.${service}`,
  `cn.com.amazonaws.${region}.${service}`,
];

/** The interface endpoints' security group: HTTPS from inside the VPC, nothing else. */
export const endpointSecurityGroupRules = (spec: ClusterSpec): (Rule & { source: { cidr: string } })[] => [
  {
    protocol: "tcp",
    from: 443,
    to: 443,
    source: { cidr: spec.network.cidr },
    description: `HTTPS to the VPC endpoints from ${spec.network.cidr}`,
  },
];

/**
 * The policy of a private network's endpoints: only principals of the cluster's account, so a node (or a
 * workload on one) cannot use the endpoints with another account's credentials to carry data out. S3's
 * gateway endpoint also reaches only the cluster's snapshot bucket, in this account (S3 names are global).
 * Which actions is IAM's to say (the node roles' policies).
 */
export function endpointPolicy(
  inputs: Pick<Inputs, "spec" | "account" | "partition">,
  endpoint: NodeEndpoint,
) {
  const ownPrincipals = { "aws:PrincipalAccount": inputs.account };
  if (endpoint.service !== "s3") {
    return policy([
      {
        Sid: "OwnAccountOnly",
        Effect: "Allow",
        Principal: "*",
        Action: "*",
        Resource: "*",
        Condition: { StringEquals: ownPrincipals },
      },
    ]);
  }
  const bucket = `arn:${inputs.partition}:s3:::${snapshotBucket(inputs)}`;
  return policy([
    {
      Sid: "ClusterSnapshotBucketOnly",
      Effect: "Allow",
      Principal: "*",
      Action: "s3:*",
      Resource: [bucket, `${bucket}/*`],
      Condition: { StringEquals: { ...ownPrincipals, "s3:ResourceAccount": inputs.account } },
    },
  ]);
}

/** /20 subnets carved from the VPC CIDR, one per zone. */
export function subnetCidrs(vpcCidr: string, count: number): string[] {
  const [base, bits] = vpcCidr.split("/");
  if (Number(bits) > 20) throw new Error(`network.cidr ${vpcCidr}: expected a /20 or larger`);
  const start = base!.split(".").reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
  const available = 2 ** (20 - Number(bits));
  if (count > available)
    throw new Error(`network.cidr ${vpcCidr}: room for ${available} /20 subnets, not ${count}`);
  return Array.from({ length: count }, (_, i) => {
    const n = (start + i * 4096) >>> 0;
    return `${[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".")}/20`;
  });
}
