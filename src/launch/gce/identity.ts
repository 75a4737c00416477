/**
 * Who acts for the cluster: a service account per identity (masters, minions, discovery; firewall rules
 * and secret policies name them), the cluster's custom roles (exactly the permissions it uses), and the
 * bindings that grant them: on the project (masters' under a condition that limits them to this cluster's
 * instances and group), on the discovery zone, on the function's service.
 */
import { isPlanned } from "../changes";
import { GoogleApiError, ifFound, isStatus, type GceClients } from "./clients";
import type { GceContext } from "./context";
import { describedAs, ownerIn, serviceAccountEmail, serviceAccountId, type Identity } from "./desired";
import { foreign } from "./owner";

interface ServiceAccount {
  email: string;
  description?: string;
}

interface CustomRole {
  name: string;
  description?: string;
  includedPermissions?: string[];
  deleted?: boolean;
  etag?: string;
}

export interface Binding {
  role: string;
  members: string[];
  condition?: { title?: string; description?: string; expression: string };
}
export interface Policy {
  version?: number;
  bindings?: Binding[];
  etag?: string;
}

export const memberOf = (clients: Pick<GceClients, "project">, cluster: string, identity: Identity) =>
  `serviceAccount:${serviceAccountEmail(clients.project, cluster, identity)}`;

export async function ensureServiceAccount(ctx: GceContext, identity: Identity): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { project } = clients;
  const email = serviceAccountEmail(project, inputs.spec.name, identity);
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() =>
        clients.rest<ServiceAccount>("iam", "GET", `v1/projects/${project}/serviceAccounts/${email}`),
      );
  if (found) {
    if (ownerIn(found.description) !== clusterId)
      throw foreign("service account", email, ownerIn(found.description));
    return;
  }
  await rec.make(
    { action: "create", kind: "service-account", name: email },
    async () => {
      await clients.rest("iam", "POST", `v1/projects/${project}/serviceAccounts`, {
        accountId: serviceAccountId(inputs.spec.name, identity),
        serviceAccount: {
          displayName: `kubebake ${inputs.spec.name} ${identity}`,
          description: describedAs(inputs.spec, clusterId, `the ${identity} identity`),
        },
      });
    },
    undefined,
  );
}

/**
 * A custom role of the cluster with exactly `permissions`: created, restored from a soft delete (GCP keeps
 * a deleted role's id for weeks: a destroyed cluster's of this name), or updated. Returns its name.
 */
export async function ensureCustomRole(
  ctx: GceContext,
  id: string,
  permissions: string[],
  what: string,
): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { project } = clients;
  const path = `v1/projects/${project}/roles/${id}`;
  const description = describedAs(inputs.spec, clusterId, what);
  let found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.rest<CustomRole>("iam", "GET", path));
  if (found && !found.deleted && ownerIn(found.description) !== clusterId)
    throw foreign("custom role", id, ownerIn(found.description));
  if (!found) {
    await rec.make(
      { action: "create", kind: "custom-role", name: id, detail: permissions.join(", ") },
      async () => {
        await clients.rest("iam", "POST", `v1/projects/${project}/roles`, {
          roleId: id,
          role: {
            title: `kubebake ${inputs.spec.name} ${what}`.slice(0, 100),
            description,
            includedPermissions: permissions,
            stage: "GA",
          },
        });
      },
      undefined,
    );
    return `projects/${project}/roles/${id}`;
  }
  if (found.deleted)
    found = await rec.make(
      { action: "update", kind: "custom-role", name: id, detail: "undelete" },
      () => clients.rest<CustomRole>("iam", "POST", `${path}:undelete`, { etag: found!.etag }),
      found,
    );
  const mask: string[] = [];
  if ([...(found.includedPermissions ?? [])].sort().join() !== [...permissions].sort().join())
    mask.push("includedPermissions");
  if (found.description !== description) mask.push("description");
  if (mask.length > 0)
    await rec.make(
      { action: "update", kind: "custom-role", name: id, detail: mask.join(", ") },
      async () => {
        await clients.rest("iam", "PATCH", `${path}?updateMask=${mask.join(",")}`, {
          includedPermissions: permissions,
          description,
          etag: found!.etag,
        });
      },
      undefined,
    );
  return `projects/${project}/roles/${id}`;
}

/** A resource's IAM policy, read and written (the project, a DNS zone, a secret). */
export interface PolicyHolder {
  kind: string;
  name: string;
  read(): Promise<Policy>;
  write(policy: Policy): Promise<void>;
}

export function projectPolicyHolder(clients: GceClients): PolicyHolder {
  const base = `v3/projects/${clients.project}`;
  return {
    kind: "project-binding",
    name: clients.project,
    read: () =>
      clients.rest<Policy>("cloudresourcemanager", "POST", `${base}:getIamPolicy`, {
        options: { requestedPolicyVersion: 3 },
      }),
    write: async (policy) => {
      await clients.rest("cloudresourcemanager", "POST", `${base}:setIamPolicy`, { policy });
    },
  };
}

export function zonePolicyHolder(clients: GceClients, zone: string): PolicyHolder {
  const base = `dns/v1/projects/${clients.project}/managedZones/${zone}`;
  return {
    kind: "zone-binding",
    name: zone,
    read: () =>
      clients.rest<Policy>("dns", "POST", `${base}:getIamPolicy`, { options: { requestedPolicyVersion: 3 } }),
    write: async (policy) => {
      await clients.rest("dns", "POST", `${base}:setIamPolicy`, { policy });
    },
  };
}

const sameCondition = (a: Binding["condition"], b: Binding["condition"]) =>
  (a?.expression ?? "") === (b?.expression ?? "") && (a?.title ?? "") === (b?.title ?? "");

/**
 * `member` holds `role` (under `condition`, when given) in the holder's policy. For the cluster's own
 * custom roles (`exclusive`), that binding is the role's only one and has no other member; a predefined
 * role's other members and bindings are someone else's and stay.
 */
export async function ensureBinding(
  ctx: GceContext,
  holder: PolicyHolder,
  want: { role: string; member: string; condition?: Binding["condition"]; exclusive?: boolean },
): Promise<void> {
  const { rec, clusterId } = ctx;
  const policy = isPlanned(clusterId)
    ? { bindings: [] }
    : await holder.read().catch(() => ({ bindings: [] }));
  const bindings = policy.bindings ?? [];
  const satisfied = want.exclusive
    ? bindings.filter((b) => b.role === want.role).length === 1 &&
      bindings.some(
        (b) =>
          b.role === want.role &&
          sameCondition(b.condition, want.condition) &&
          b.members.join() === want.member,
      )
    : bindings.some(
        (b) =>
          b.role === want.role &&
          sameCondition(b.condition, want.condition) &&
          b.members.includes(want.member),
      );
  if (satisfied) return;
  await rec.make(
    {
      action: "update",
      kind: holder.kind,
      name: want.role,
      detail: `${want.member}${want.condition ? " (conditional)" : ""}`,
    },
    () =>
      editPolicy(ctx, holder, (current) => {
        const kept = want.exclusive ? current.filter((b) => b.role !== want.role) : current;
        const into = kept.find((b) => b.role === want.role && sameCondition(b.condition, want.condition));
        if (into) {
          into.members = [...new Set([...into.members, want.member])];
          return kept;
        }
        return [
          ...kept,
          {
            role: want.role,
            members: [want.member],
            ...(want.condition ? { condition: want.condition } : {}),
          },
        ];
      }),
    undefined,
  );
}

/**
 * Read, edit, write with the read's etag; again on a conflict (another writer between), and while IAM has
 * yet to see a service account created moments ago (400 "does not exist").
 */
export async function editPolicy(
  ctx: Pick<GceContext, "sleep" | "pollMs">,
  holder: PolicyHolder,
  edit: (bindings: Binding[]) => Binding[],
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const policy = await holder.read();
    const bindings = edit(structuredClone(policy.bindings ?? [])).filter((b) => b.members.length > 0);
    try {
      await holder.write({ version: 3, bindings, etag: policy.etag });
      return;
    } catch (error) {
      const again =
        isStatus(error, 409) ||
        (isStatus(error, 400) && /does not exist/i.test((error as GoogleApiError).message));
      if (!again || attempt >= 10) throw error;
      await ctx.sleep(Math.max(ctx.pollMs, 500));
    }
  }
}
