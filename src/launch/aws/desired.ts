/**
 * What an AWS cluster should look like, derived from the cluster spec alone: names, tags, security
 * group rules, IAM policies, user data, launch template data. Pure: tests read it without a cloud.
 */
import type { _InstanceType } from "@aws-sdk/client-ec2";
import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { recordName, ROLES, zoneName, type Role } from "../../discover/names";
import type { ClusterSpec } from "../../cluster/schema";
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
  ami: string;
  /** From the image spec the AMI was baked with: the nodes already carry these. */
  discoveryDomain: string;
  clusterDomain: string;
  serviceCIDR: string;
}

export interface Rule {
  protocol: "tcp" | "udp";
  from: number;
  to: number;
  source: { group: Role } | { cidr: string };
  description: string;
}

export const prefix = (cluster: string) => `kubebake-${cluster}`;
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

/** Masters read every secret of their cluster; minions only the CA certificate and the bootstrap token. */
export function nodePolicy(inputs: Inputs, role: Role) {
  const arn = (name: string) =>
    `arn:aws:ssm:${inputs.spec.region}:${inputs.account}:parameter${secretPrefix(inputs.spec.name)}/${name}`;
  return policy([
    {
      Sid: "ReadClusterSecrets",
      Effect: "Allow",
      Action: ["ssm:GetParameter"],
      Resource: role === "masters" ? [arn("*")] : [arn("ca.crt"), arn("bootstrap-token")],
    },
  ]);
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

/** The discovery function: read the groups and instances, change only its two A records in its zone. */
export function discoveryPolicy(inputs: Inputs, zoneId: string) {
  const { region, name } = inputs.spec;
  const logGroup = `arn:aws:logs:${region}:${inputs.account}:log-group:/aws/lambda/${discoveryFunctionName(name)}`;
  const records = ROLES.map((role) => recordName(role, name, inputs.discoveryDomain).replace(/\.$/, ""));
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
      Resource: `arn:aws:route53:::hostedzone/${zoneId}`,
    },
    {
      Sid: "WriteOwnRecords",
      Effect: "Allow",
      Action: ["route53:ChangeResourceRecordSets"],
      Resource: `arn:aws:route53:::hostedzone/${zoneId}`,
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

/** cloud-init user data: the role file and nothing secret (secrets come from SSM with the instance role). */
export function userData(spec: ClusterSpec, role: Role): string {
  const roleFile = [
    `CLUSTER_NAME=${spec.name}`,
    "CLOUD_PROVIDER=aws",
    `SECRET_SOURCE=ssm:${secretPrefix(spec.name)}`,
    // etcd-member seeds a new etcd cluster only once the whole group is in the masters record.
    ...(role === "masters" ? [`MASTERS_COUNT=${spec.groups.masters.count}`] : []),
  ];
  return (
    "#cloud-config\n" +
    stringify({
      write_files: [
        {
          path: `/etc/sysconfig/kubernetes-${role}`,
          owner: "root:root",
          permissions: "0644",
          content: roleFile.join("\n") + "\n",
        },
      ],
    })
  );
}

export interface LaunchTemplateData {
  ImageId: string;
  InstanceType: _InstanceType;
  KeyName?: string;
  UserData: string;
  IamInstanceProfile: { Name: string };
  SecurityGroupIds: string[];
  MetadataOptions: { HttpTokens: "required"; HttpPutResponseHopLimit: number; HttpEndpoint: "enabled" };
}

export function launchTemplateData(inputs: Inputs, role: Role, securityGroupId: string): LaunchTemplateData {
  const { spec } = inputs;
  const group = spec.groups[role];
  return {
    ImageId: inputs.ami,
    InstanceType: group.instanceType as _InstanceType,
    ...(spec.sshKey ? { KeyName: spec.sshKey } : {}),
    UserData: Buffer.from(userData(spec, role)).toString("base64"),
    IamInstanceProfile: { Name: nodeRoleName(spec, role) },
    SecurityGroupIds: [securityGroupId],
    // IMDSv2 only, and a hop limit of 1 keeps pods (one hop further) away from the node's credentials.
    MetadataOptions: { HttpTokens: "required", HttpPutResponseHopLimit: 1, HttpEndpoint: "enabled" },
  };
}

export function groupSize(spec: ClusterSpec, role: Role) {
  if (role === "masters") {
    const n = spec.groups.masters.count;
    return { min: n, max: n, desired: n };
  }
  const { min, max, desired } = spec.groups.minions;
  return { min, max, desired };
}

/** Instances replaced at once on a new image: masters one by one (etcd quorum), minions a share. */
export function rolloutBatch(spec: ClusterSpec, role: Role, size: number): number {
  if (role === "masters") return 1;
  return Math.max(1, Math.floor((size * spec.rollout.batchPercent) / 100));
}

export const clusterZoneName = (inputs: Pick<Inputs, "spec" | "discoveryDomain">) =>
  zoneName(inputs.spec.name, inputs.discoveryDomain);

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
