/**
 * `kubebake cluster destroy` on GCE: deletes what carries the cluster id, in the order GCE allows (the
 * groups and their instances before the templates, subnetwork and network they use; the zone's records
 * before the zone; the accounts after the policies that name them), the id itself last. A rerun after
 * a failure continues where it stopped.
 */
import { ROLES } from "../../discover/names";
import type { ChangeRecorder } from "../changes";
import { PKI_FILE_NAMES } from "../pki-files";
import { ifFound, type GceClients } from "./clients";
import { completed, finished, type LongRunning } from "./context";
import {
  CLUSTER_ID_SECRET,
  groupName,
  customRoleId,
  DISCOVERY_EVENTS,
  discoveryFunctionId,
  discoveryJobId,
  discoveryTriggerId,
  CUSTOM_ROLES,
  IDENTITIES,
  networkName,
  OWNER_LABEL,
  ownerIn,
  prefix,
  secretId,
  serviceAccountEmail,
  subnetworkName,
  managedZoneName,
} from "./desired";
import { clusterFirewalls, deleteFirewallRule } from "./firewall";
import { editPolicy, projectPolicyHolder } from "./identity";
import { readClusterId } from "./owner";
import { clusterSecrets } from "./secrets";
import { zonePath, type ManagedZone } from "./zone";

export interface GceDestroyContext {
  clients: GceClients;
  rec: ChangeRecorder;
  cluster: string;
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

interface RecordSet {
  name: string;
  type: string;
  ttl?: number;
  rrdatas?: string[];
}

export async function destroyGceCluster(ctx: GceDestroyContext): Promise<void> {
  const { clients, rec, cluster } = ctx;
  const { project, region } = clients;
  const clusterId = await readClusterId(clients, cluster);
  if (!clusterId) {
    rec.info(
      `cluster ${cluster} has no id in project ${project} (secret ${secretId(cluster, CLUSTER_ID_SECRET)}): nothing to delete`,
    );
    return;
  }
  const ours = (description: string | null | undefined) => ownerIn(description) === clusterId;
  const leave = (kind: string, name: string) =>
    rec.info(`leaving ${kind} ${name}: it does not carry this cluster's id ${clusterId}`);

  // Discovery first: nothing fires while the rest goes.
  await deleteDiscovery(ctx, clusterId);

  for (const role of ROLES) {
    const name = groupName(cluster, role);
    const group = (
      await ifFound(() => clients.groups.get({ project, region, instanceGroupManager: name }))
    )?.[0];
    if (!group) continue;
    if (!ours(group.description)) {
      leave("instance group", name);
      continue;
    }
    await rec.make(
      { action: "delete", kind: "instance-group", name, detail: `${group.targetSize} instance(s)` },
      async () =>
        completed(
          ctx,
          await clients.groups.delete({ project, region, instanceGroupManager: name }),
          `delete instance group ${name}`,
        ),
      undefined,
    );
  }

  const [templates] = await clients.templates.list(
    { project, filter: `name eq "${prefix(cluster)}-(masters|minions)-.*"`, maxResults: 500 },
    { autoPaginate: false },
  );
  for (const template of templates ?? []) {
    if (!ours(template.description)) continue;
    await rec.make(
      { action: "delete", kind: "instance-template", name: template.name! },
      async () =>
        completed(
          ctx,
          await clients.templates.delete({ project, instanceTemplate: template.name! }),
          `delete instance template ${template.name}`,
        ),
      undefined,
    );
  }

  await deleteZone(ctx, clusterId);

  for (const rule of await clusterFirewalls(ctx, cluster)) {
    if (!ours(rule.description)) continue;
    await deleteFirewallRule(ctx, rule.name!);
  }

  const subnetwork = (
    await ifFound(() => clients.subnetworks.get({ project, region, subnetwork: subnetworkName(cluster) }))
  )?.[0];
  if (subnetwork && ours(subnetwork.description))
    await rec.make(
      { action: "delete", kind: "subnetwork", name: subnetworkName(cluster) },
      async () =>
        completed(
          ctx,
          await clients.subnetworks.delete({ project, region, subnetwork: subnetworkName(cluster) }),
          `delete subnetwork ${subnetworkName(cluster)}`,
        ),
      undefined,
    );
  const network = (
    await ifFound(() => clients.networks.get({ project, network: networkName(cluster) }))
  )?.[0];
  if (network && ours(network.description))
    await rec.make(
      { action: "delete", kind: "network", name: networkName(cluster) },
      async () =>
        completed(
          ctx,
          await clients.networks.delete({ project, network: networkName(cluster) }),
          `delete network ${networkName(cluster)}`,
        ),
      undefined,
    );

  const secrets = await clusterSecrets(ctx, cluster);
  const pki = new Set(PKI_FILE_NAMES.map((file) => secretId(cluster, file)));
  for (const [id, secret] of [...secrets].sort(([a], [b]) => a.localeCompare(b))) {
    if (!pki.has(id) || secret.labels?.[OWNER_LABEL] !== clusterId) continue;
    await rec.make(
      { action: "delete", kind: "secret", name: id },
      async () => void (await clients.secrets.deleteSecret({ name: `projects/${project}/secrets/${id}` })),
      undefined,
    );
  }

  await deleteIdentities(ctx, clusterId);

  await rec.make(
    { action: "delete", kind: "cluster-id", name: secretId(cluster, CLUSTER_ID_SECRET) },
    async () =>
      void (await clients.secrets.deleteSecret({
        name: `projects/${project}/secrets/${secretId(cluster, CLUSTER_ID_SECRET)}`,
      })),
    undefined,
  );
}

/** The zone's records (discovery's), then the zone; its SOA and NS go with it. */
async function deleteZone(ctx: GceDestroyContext, clusterId: string): Promise<void> {
  const { clients, rec, cluster } = ctx;
  const name = managedZoneName(cluster);
  const path = zonePath(clients.project, name);
  const zone = await ifFound(() => clients.rest<ManagedZone>("dns", "GET", path));
  if (!zone) return;
  if (zone.labels?.[OWNER_LABEL] !== clusterId) {
    rec.info(`leaving dns zone ${name}: it does not carry this cluster's id ${clusterId}`);
    return;
  }
  await rec.make(
    { action: "delete", kind: "dns-zone", name, detail: zone.dnsName },
    async () => {
      const { rrsets = [] } = await clients.rest<{ rrsets?: RecordSet[] }>(
        "dns",
        "GET",
        `${path}/rrsets?maxResults=1000`,
      );
      const records = rrsets.filter(
        (set) => !(set.name === zone.dnsName && ["SOA", "NS"].includes(set.type)),
      );
      if (records.length > 0) await clients.rest("dns", "POST", `${path}/changes`, { deletions: records });
      await clients.rest("dns", "DELETE", path);
    },
    undefined,
  );
}

/**
 * The project bindings of the cluster's identities and roles, then its custom roles, then its service
 * accounts (a policy naming an account is edited before the account goes).
 */
async function deleteIdentities(ctx: GceDestroyContext, clusterId: string): Promise<void> {
  const { clients, rec, cluster } = ctx;
  const { project } = clients;
  const roles: string[] = [];
  for (const part of CUSTOM_ROLES) {
    const id = customRoleId(cluster, part);
    const role = await ifFound(() =>
      clients.rest<{ description?: string; deleted?: boolean }>(
        "iam",
        "GET",
        `v1/projects/${project}/roles/${id}`,
      ),
    );
    if (role && ownerIn(role.description) === clusterId && !role.deleted) roles.push(id);
  }
  const accounts: string[] = [];
  for (const identity of IDENTITIES) {
    const email = serviceAccountEmail(project, cluster, identity);
    const account = await ifFound(() =>
      clients.rest<{ description?: string }>("iam", "GET", `v1/projects/${project}/serviceAccounts/${email}`),
    );
    if (account && ownerIn(account.description) === clusterId) accounts.push(email);
  }
  const roleNames = new Set(roles.map((id) => `projects/${project}/roles/${id}`));
  const ours = (member: string) => accounts.some((email) => member === `serviceAccount:${email}`);
  const holder = projectPolicyHolder(clients);
  const granted = ((await holder.read()).bindings ?? []).filter(
    (b) => roleNames.has(b.role) || b.members.some(ours),
  );
  if (granted.length > 0)
    await rec.make(
      {
        action: "delete",
        kind: "project-binding",
        name: project,
        detail: granted.map((b) => b.role).join(", "),
      },
      () =>
        editPolicy(ctx, holder, (bindings) =>
          bindings
            .filter((b) => !roleNames.has(b.role))
            .map((b) => ({ ...b, members: b.members.filter((m) => !ours(m)) })),
        ),
      undefined,
    );
  for (const id of roles)
    await rec.make(
      { action: "delete", kind: "custom-role", name: id },
      async () => void (await clients.rest("iam", "DELETE", `v1/projects/${project}/roles/${id}`)),
      undefined,
    );
  for (const email of accounts)
    await rec.make(
      { action: "delete", kind: "service-account", name: email },
      async () =>
        void (await clients.rest("iam", "DELETE", `v1/projects/${project}/serviceAccounts/${email}`)),
      undefined,
    );
}

/** The discovery function's triggers, its schedule, then the function (each only when it is ours). */
async function deleteDiscovery(ctx: GceDestroyContext, clusterId: string): Promise<void> {
  const { clients, rec, cluster } = ctx;
  const at = `projects/${clients.project}/locations/${clients.region}`;
  for (const kind of Object.keys(DISCOVERY_EVENTS) as (keyof typeof DISCOVERY_EVENTS)[]) {
    const id = discoveryTriggerId(cluster, kind);
    const trigger = await ifFound(() =>
      clients.rest<{ labels?: Record<string, string> }>("eventarc", "GET", `v1/${at}/triggers/${id}`),
    );
    if (trigger?.labels?.[OWNER_LABEL] !== clusterId) continue;
    await rec.make(
      { action: "delete", kind: "eventarc-trigger", name: id },
      async () => {
        const started = await clients.rest<LongRunning>("eventarc", "DELETE", `v1/${at}/triggers/${id}`);
        await finished(ctx, started, `deleting ${id}`);
      },
      undefined,
    );
  }
  const jobName = `${at}/jobs/${discoveryJobId(cluster)}`;
  const [job] = (await ifFound(() => clients.scheduler.getJob({ name: jobName }))) ?? [];
  if (ownerIn(job?.description) === clusterId)
    await rec.make(
      { action: "delete", kind: "scheduler-job", name: discoveryJobId(cluster) },
      async () => void (await clients.scheduler.deleteJob({ name: jobName })),
      undefined,
    );
  const id = discoveryFunctionId(cluster);
  const name = `${at}/functions/${id}`;
  const [fn] = (await ifFound(() => clients.functions.getFunction({ name }))) ?? [];
  if (fn?.labels?.[OWNER_LABEL] === clusterId)
    await rec.make(
      { action: "delete", kind: "cloud-function", name: id },
      async () => {
        let [operation] = await clients.functions.deleteFunction({ name });
        while (!operation.done) {
          await ctx.sleep(ctx.pollMs);
          operation = await clients.functions.checkDeleteFunctionProgress(operation.name!);
        }
        if (operation.error) throw new Error(`deleting ${id}: ${operation.error.message}`);
      },
      undefined,
    );
}
