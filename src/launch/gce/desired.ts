/**
 * What a GCE cluster should be, as pure data from the spec and its inputs: names, labels, firewall rules,
 * who may do what, the instance templates and groups. The reconcilers compare these with what GCE holds.
 *
 * Ownership: GCE lets secrets, zones and instances carry labels, but not networks, firewall rules,
 * templates or groups. Those carry the cluster id in their description ("… owner kb-…"), which only
 * kubebake writes, and are never adopted, changed or deleted without it.
 */
import { roleFileCloudConfig } from "../role-file";
import { createHash } from "node:crypto";
import type { GceSpec } from "../../cluster/schema";
import { GCE_CLUSTER_LABEL, gceGroupName } from "../../discover/gce";
import { zoneName, type Role } from "../../discover/names";
import { ROLE_SECRET_NAMES } from "../pki-files";

export const CLUSTER_LABEL = GCE_CLUSTER_LABEL;
export const ROLE_LABEL = "role";
export const OWNER_LABEL = "kubebake-owner";
export const NAME_LABEL = "kubebake-name";

/** Everything apply needs besides the spec: the project, the image, and the image's cluster settings. */
export interface GceInputs {
  spec: GceSpec;
  project: string;
  /** The image's resource path: `projects/P/global/images/N`. */
  image: string;
  discoveryDomain: string;
}

export const prefix = (cluster: string) => `kubebake-${cluster}`;
export const networkName = prefix;
export const subnetworkName = prefix;
export const groupName = gceGroupName;
export const managedZoneName = prefix;
export const clusterZoneDnsName = (inputs: Pick<GceInputs, "spec" | "discoveryDomain">) =>
  zoneName(inputs.spec.name, inputs.discoveryDomain);

/** The secret ids of the cluster: `kubebake-<cluster>-<file, '.' as '-'>` (src/node/providers/gce.sh). */
export const secretId = (cluster: string, file: string) => `${prefix(cluster)}-${file.replace(/\./g, "-")}`;
export const CLUSTER_ID_SECRET = "cluster-id";

const hash = (text: string, length: number) =>
  createHash("sha256").update(text).digest("hex").slice(0, length);

/**
 * A service account id (6 to 30 characters): `kb-<cluster>-<role>`, or for a long cluster name its start
 * and a hash of the whole, so two clusters never share one.
 */
export function serviceAccountId(cluster: string, role: Identity): string {
  const plain = `kb-${cluster}-${role}`;
  if (plain.length <= 30) return plain;
  const tail = `-${hash(cluster, 6)}-${role}`;
  return `kb-${cluster.slice(0, 30 - 3 - tail.length).replace(/-+$/, "")}${tail}`;
}
export const serviceAccountEmail = (project: string, cluster: string, role: Identity) =>
  `${serviceAccountId(cluster, role)}@${project}.iam.gserviceaccount.com`;

/** Who acts for the cluster: the two roles' nodes, and discovery (the function, its schedule and triggers). */
export type Identity = Role | "dns";
export const IDENTITIES: readonly Identity[] = ["masters", "minions", "dns"];

/** A custom role of the cluster (project-wide ids: `kubebake_<cluster>_<part>`). */
export const customRoleId = (cluster: string, part: string) =>
  `kubebake_${cluster.replace(/-/g, "_")}_${part}`;
export const mastersRoleId = (cluster: string) => customRoleId(cluster, "masters");
/** The parts of the cluster's custom roles: the masters', and discovery's reads and records. */
export const CUSTOM_ROLES = ["masters", "discovery", "records"] as const;

/** What discovery reads of Compute: its groups' members and the instances' addresses (aggregated list). */
export const DISCOVERY_READS = ["compute.instanceGroupManagers.get", "compute.instances.list"].sort();
/** What discovery does in its zone, granted on the zone alone. */
export const RECORD_PERMISSIONS = [
  "dns.changes.create",
  "dns.changes.get",
  "dns.managedZones.get",
  "dns.resourceRecordSets.create",
  "dns.resourceRecordSets.delete",
  "dns.resourceRecordSets.list",
  "dns.resourceRecordSets.update",
].sort();

export const discoveryFunctionId = (cluster: string) => `${prefix(cluster)}-dns`;
export const discoveryJobId = discoveryFunctionId;
/** Eventarc triggers: one per audit-log method (a filter matches one value). */
export const DISCOVERY_EVENTS = {
  inserts: "v1.compute.instances.insert",
  deletes: "v1.compute.instances.delete",
} as const;
export const discoveryTriggerId = (cluster: string, kind: keyof typeof DISCOVERY_EVENTS) =>
  `${prefix(cluster)}-dns-${kind}`;
/** The runtime of the discovery function (the bundle targets Node 20, and runs on 22). */
export const DISCOVERY_RUNTIME = "nodejs22";
export const DISCOVERY_ENTRY_POINT = "discover";
export const SOURCE_LABEL = "kubebake-source";

/**
 * What masters do with Compute (src/node/providers/gce.sh): read a joining instance and the addresses it
 * claims (instances.get), and ask their own group to recreate a master whose API server stays down.
 */
export const MASTERS_PERMISSIONS = [
  "compute.instanceGroupManagers.get",
  "compute.instanceGroupManagers.update",
  "compute.instances.get",
].sort();

/**
 * The condition of the masters' project binding: only this cluster's instances (their names start with its
 * groups' base names) and its masters' group.
 */
export function mastersCondition(inputs: Pick<GceInputs, "spec" | "project">) {
  const { spec, project } = inputs;
  const group = `projects/${project}/regions/${spec.region}/instanceGroupManagers/${groupName(spec.name, "masters")}`;
  return {
    title: `kubebake ${spec.name}`,
    description: "this cluster's instances and its masters' group",
    expression:
      `resource.name == "${group}" || (resource.type == "compute.googleapis.com/Instance" && ` +
      `resource.name.extract("/instances/{name}").startsWith("${prefix(spec.name)}-"))`,
  };
}

/** The roles a role's service account has on each secret: readers, and masters publish the join token. */
export function secretBindings(
  project: string,
  cluster: string,
): Map<string, { role: string; members: string[] }[]> {
  const bindings = new Map<string, { role: string; members: string[] }[]>();
  const grant = (file: string, role: string, member: Role) => {
    const list = bindings.get(file) ?? [];
    const binding = list.find((b) => b.role === role);
    const name = `serviceAccount:${serviceAccountEmail(project, cluster, member)}`;
    if (binding) binding.members.push(name);
    else list.push({ role, members: [name] });
    bindings.set(file, list);
  };
  for (const member of ["masters", "minions"] as const)
    for (const file of ROLE_SECRET_NAMES[member]) grant(file, "roles/secretmanager.secretAccessor", member);
  // The masters rotate the join token: add a version, destroy the older ones (src/node/join-token).
  grant("bootstrap-token", "roles/secretmanager.secretVersionManager", "masters");
  for (const list of bindings.values()) for (const b of list) b.members.sort();
  return bindings;
}

/** Labels of what can carry them: the operator's, then the cluster, its id and the part. */
export function labelsFor(spec: GceSpec, logicalName: string, clusterId: string): Record<string, string> {
  return {
    ...spec.labels,
    [CLUSTER_LABEL]: spec.name,
    [OWNER_LABEL]: clusterId,
    [NAME_LABEL]: logicalName,
  };
}

/** The description of what cannot carry labels; ownerIn reads the id back. */
export const describedAs = (spec: GceSpec, clusterId: string, what: string) =>
  `kubebake cluster ${spec.name} owner ${clusterId}: ${what}`;
export const ownerIn = (description: string | null | undefined): string | undefined =>
  /^kubebake cluster \S+ owner (\S+):/.exec(description ?? "")?.[1];

export interface FirewallRule {
  /** The part after `kubebake-<cluster>-` (at most 13 characters, so any cluster name fits 63). */
  id: string;
  what: string;
  protocol: "tcp" | "udp";
  ports: string[];
  targets: Role[];
  from: { roles: Role[] } | { ranges: string[] };
}

/**
 * Ingress between the roles, by service account (GCE's way to name a group of instances that no one
 * else can join), and from the operator's ranges. GCE's implied rules deny all other ingress and allow
 * egress (the nodes reach Google's APIs).
 */
export function firewallRules(spec: GceSpec): FirewallRule[] {
  const rules: FirewallRule[] = [
    {
      id: "api",
      what: "API server from the nodes",
      protocol: "tcp",
      ports: ["6443"],
      targets: ["masters"],
      from: { roles: ["masters", "minions"] },
    },
    {
      id: "etcd",
      what: "etcd clients and peers between masters",
      protocol: "tcp",
      ports: ["2379-2380"],
      targets: ["masters"],
      from: { roles: ["masters"] },
    },
    {
      id: "kubelet",
      what: "kubelet API from the API servers and from minions (metrics)",
      protocol: "tcp",
      ports: ["10250"],
      targets: ["minions"],
      from: { roles: ["masters", "minions"] },
    },
    {
      id: "flannel",
      what: "flannel VXLAN overlay",
      protocol: "udp",
      ports: ["8472"],
      targets: ["minions"],
      from: { roles: ["minions"] },
    },
  ];
  const { apiAccess, sshAccess } = spec.network;
  if (apiAccess.length > 0)
    rules.push({
      id: "api-operators",
      what: "API server from the operators' ranges",
      protocol: "tcp",
      ports: ["6443"],
      targets: ["masters"],
      from: { ranges: [...apiAccess].sort() },
    });
  if (sshAccess.length > 0)
    rules.push({
      id: "ssh",
      what: "SSH from the operators' ranges",
      protocol: "tcp",
      ports: ["22"],
      targets: ["masters", "minions"],
      from: { ranges: [...sshAccess].sort() },
    });
  return rules;
}

export const firewallName = (cluster: string, rule: Pick<FirewallRule, "id">) =>
  `${prefix(cluster)}-${rule.id}`;

/** A firewall rule as Compute takes it. */
export function firewallBody(inputs: GceInputs, clusterId: string, networkUrl: string, rule: FirewallRule) {
  const { spec, project } = inputs;
  const email = (role: Role) => serviceAccountEmail(project, spec.name, role);
  return {
    name: firewallName(spec.name, rule),
    description: describedAs(spec, clusterId, rule.what),
    network: networkUrl,
    direction: "INGRESS",
    priority: 1000,
    allowed: [{ IPProtocol: rule.protocol, ports: rule.ports }],
    targetServiceAccounts: rule.targets.map(email),
    ...("roles" in rule.from
      ? { sourceServiceAccounts: rule.from.roles.map(email) }
      : { sourceRanges: rule.from.ranges }),
  };
}

/**
 * cloud-init user data (the `user-data` metadata key): the role file and nothing secret (secrets come
 * from Secret Manager with the instance's service account).
 */
export function userData(inputs: Pick<GceInputs, "spec" | "project">, role: Role): string {
  const { spec, project } = inputs;
  const roleFile = [
    `CLUSTER_NAME=${spec.name}`,
    "CLOUD_PROVIDER=gce",
    `SECRET_SOURCE=secretmanager:projects/${project}/secrets/${prefix(spec.name)}`,
    ...(role === "masters"
      ? [
          // etcd-member seeds a new etcd cluster only once the whole group is in the masters record.
          `MASTERS_COUNT=${spec.groups.masters.count}`,
          // The group a master asks to recreate it (src/node/providers/gce.sh provider_instance_unhealthy).
          `GROUP_NAME=${groupName(spec.name, "masters")}`,
          // The launch gate: the guest attribute a master sets once it votes and serves (launch-ready).
          `LAUNCH_HOOK=${LAUNCH_GATE_ATTRIBUTE}`,
        ]
      : []),
  ];
  return roleFileCloudConfig(role, roleFile);
}

/** The guest attribute (namespace/key) a master sets once it votes and serves; rollouts wait for it. */
export const LAUNCH_GATE_ATTRIBUTE = "kubebake/launch-ready";

export const GOOGLE_APIS_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** The instance properties of a role's template: what every node of the role is made from. */
export function templateProperties(
  inputs: GceInputs,
  clusterId: string,
  role: Role,
  links: { network: string; subnetwork: string },
) {
  const { spec, project } = inputs;
  return {
    machineType: spec.groups[role].machineType,
    labels: { ...labelsFor(spec, role, clusterId), [ROLE_LABEL]: role },
    metadata: {
      items: [
        { key: "user-data", value: userData(inputs, role) },
        // SSH only through OS Login (IAM decides who), never through keys in project metadata.
        { key: "enable-oslogin", value: "TRUE" },
        { key: "block-project-ssh-keys", value: "TRUE" },
        // Masters tell the rollout they vote and serve in a guest attribute (LAUNCH_GATE_ATTRIBUTE).
        { key: "enable-guest-attributes", value: "TRUE" },
      ],
    },
    disks: [
      {
        boot: true,
        autoDelete: true,
        type: "PERSISTENT",
        initializeParams: { sourceImage: inputs.image, diskType: "pd-balanced" },
      },
    ],
    networkInterfaces: [
      {
        network: links.network,
        subnetwork: links.subnetwork,
        // An external IP only when asked; private nodes reach Google's APIs by Private Google Access.
        ...(spec.network.internet === true
          ? { accessConfigs: [{ type: "ONE_TO_ONE_NAT", name: "External NAT" }] }
          : {}),
      },
    ],
    serviceAccounts: [{ email: serviceAccountEmail(project, spec.name, role), scopes: [GOOGLE_APIS_SCOPE] }],
    shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
    scheduling: { automaticRestart: true, onHostMaintenance: "MIGRATE" },
  };
}

/**
 * Templates are immutable: each content gets its own, named by a hash of its properties, and the group is
 * pointed at the new one. The cluster id (a label) is left out of the hash: it never changes in a
 * cluster's life, and a plan, made before the id exists, names the template apply makes. The name fits 63
 * characters for every cluster name.
 */
export function templateName(
  cluster: string,
  role: Role,
  properties: { labels: Record<string, string> },
): string {
  const base = `${prefix(cluster)}-${role}-`;
  const labels = { ...properties.labels };
  delete labels[OWNER_LABEL];
  return base + hash(JSON.stringify({ ...properties, labels }), Math.min(10, 63 - base.length));
}

export function groupSize(spec: GceSpec, role: Role): number {
  return role === "masters" ? spec.groups.masters.count : spec.groups.minions.desired;
}

/** Instances replaced at once when the template changes: masters one at a time (one etcd voter). */
export function rolloutBatch(spec: GceSpec, role: Role, size: number): number {
  if (role === "masters") return 1;
  return Math.max(1, Math.floor((size * spec.rollout.batchPercent) / 100));
}

/**
 * The update policy: OPPORTUNISTIC, so GCE never replaces instances on its own (a regional group's
 * proactive updates take at least one instance per zone at once, too many masters); apply replaces them
 * in batches itself and waits for each.
 */
export const UPDATE_POLICY = {
  type: "OPPORTUNISTIC",
  instanceRedistributionType: "NONE",
  minimalAction: "REPLACE",
  replacementMethod: "SUBSTITUTE",
} as const;
