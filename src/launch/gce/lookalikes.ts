/**
 * Before a cluster's first apply (no id stored), none of the names it will take may exist: whatever holds
 * one is someone else's (or a destroyed cluster's leftover without its id), and apply stops before
 * creating anything, the id included, so a refused apply leaves nothing behind.
 */
import { ROLES } from "../../discover/names";
import { ifFound } from "./clients";
import type { GceBaseContext } from "./context";
import {
  firewallName,
  firewallRules,
  groupName,
  managedZoneName,
  customRoleId,
  CUSTOM_ROLES,
  discoveryFunctionId,
  discoveryJobId,
  IDENTITIES,
  networkName,
  secretId,
  serviceAccountEmail,
  subnetworkName,
} from "./desired";
import { PKI_FILE_NAMES } from "../pki-files";
import { foreign } from "./owner";

export async function checkNamesFree(ctx: GceBaseContext): Promise<void> {
  const { clients, inputs } = ctx;
  const { project } = clients;
  const { spec } = inputs;
  const cluster = spec.name;
  const region = spec.region;
  const taken = async (kind: string, name: string, read: () => Promise<unknown>) => {
    if ((await ifFound(read)) !== undefined) throw foreign(kind, name, undefined);
  };
  if (spec.network.name === undefined) {
    await taken("network", networkName(cluster), () =>
      clients.networks.get({ project, network: networkName(cluster) }),
    );
    await taken("subnetwork", subnetworkName(cluster), () =>
      clients.subnetworks.get({ project, region, subnetwork: subnetworkName(cluster) }),
    );
  }
  for (const rule of firewallRules(spec))
    await taken("firewall rule", firewallName(cluster, rule), () =>
      clients.firewalls.get({ project, firewall: firewallName(cluster, rule) }),
    );
  for (const identity of IDENTITIES) {
    const email = serviceAccountEmail(project, cluster, identity);
    await taken("service account", email, () =>
      clients.rest("iam", "GET", `v1/projects/${project}/serviceAccounts/${email}`),
    );
  }
  for (const role of ROLES)
    await taken("instance group", groupName(cluster, role), () =>
      clients.groups.get({ project, region, instanceGroupManager: groupName(cluster, role) }),
    );
  for (const part of CUSTOM_ROLES) {
    const role = customRoleId(cluster, part);
    const found = await ifFound(() =>
      clients.rest<{ deleted?: boolean }>("iam", "GET", `v1/projects/${project}/roles/${role}`),
    );
    // A deleted role of a destroyed cluster of this name is restored by apply (GCP keeps its id for weeks).
    if (found && !found.deleted) throw foreign("custom role", role, undefined);
  }
  const at = `projects/${project}/locations/${region}`;
  await taken("cloud function", discoveryFunctionId(cluster), () =>
    clients.functions.getFunction({ name: `${at}/functions/${discoveryFunctionId(cluster)}` }),
  );
  await taken("scheduler job", discoveryJobId(cluster), () =>
    clients.scheduler.getJob({ name: `${at}/jobs/${discoveryJobId(cluster)}` }),
  );
  await taken("dns zone", managedZoneName(cluster), () =>
    clients.rest("dns", "GET", `dns/v1/projects/${project}/managedZones/${managedZoneName(cluster)}`),
  );
  for (const file of PKI_FILE_NAMES)
    await taken("secret", secretId(cluster, file), () =>
      clients.secrets.getSecret({ name: `projects/${project}/secrets/${secretId(cluster, file)}` }),
    );
}
