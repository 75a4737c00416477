/**
 * Who the nodes are: a service account per role (the firewall rules name them, the secrets grant to them),
 * and for the masters a custom role with the three Compute permissions they use, bound on the project
 * under a condition that limits it to this cluster's instances and its masters' group. Minions get no
 * project role at all.
 */
import { ROLES, type Role } from "../../discover/names";
import { isPlanned } from "../changes";
import { GoogleApiError, ifFound, isStatus } from "./clients";
import type { GceContext } from "./context";
import {
  MASTERS_PERMISSIONS,
  mastersCondition,
  mastersRoleId,
  ownerIn,
  describedAs,
  serviceAccountEmail,
  serviceAccountId,
} from "./desired";
import { foreign } from "./owner";

interface ServiceAccount {
  email: string;
  description?: string;
  disabled?: boolean;
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

export async function ensureServiceAccounts(ctx: GceContext): Promise<void> {
  for (const role of ROLES) await ensureServiceAccount(ctx, role);
}

async function ensureServiceAccount(ctx: GceContext, role: Role): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { project } = clients;
  const email = serviceAccountEmail(project, inputs.spec.name, role);
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
        accountId: serviceAccountId(inputs.spec.name, role),
        serviceAccount: {
          displayName: `kubebake ${inputs.spec.name} ${role}`,
          description: describedAs(inputs.spec, clusterId, `the ${role}' identity`),
        },
      });
    },
    undefined,
  );
}

/** The masters' custom role: created, restored from a soft delete (a destroy within 7 days), or updated. */
export async function ensureMastersRole(ctx: GceContext): Promise<string> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { project } = clients;
  const id = mastersRoleId(inputs.spec.name);
  const path = `v1/projects/${project}/roles/${id}`;
  const description = describedAs(inputs.spec, clusterId, "what masters do with Compute");
  let found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.rest<CustomRole>("iam", "GET", path));
  // A deleted role is a destroyed cluster's of this name (GCP keeps the id for weeks): restored and taken.
  if (found && !found.deleted && ownerIn(found.description) !== clusterId)
    throw foreign("custom role", id, ownerIn(found.description));
  if (!found) {
    await rec.make(
      { action: "create", kind: "custom-role", name: id, detail: MASTERS_PERMISSIONS.join(", ") },
      async () => {
        await clients.rest("iam", "POST", `v1/projects/${project}/roles`, {
          roleId: id,
          role: {
            title: `kubebake ${inputs.spec.name} masters`,
            description,
            includedPermissions: MASTERS_PERMISSIONS,
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
  if ([...(found.includedPermissions ?? [])].sort().join() !== MASTERS_PERMISSIONS.join())
    mask.push("includedPermissions");
  if (found.description !== description) mask.push("description");
  if (mask.length > 0)
    await rec.make(
      { action: "update", kind: "custom-role", name: id, detail: mask.join(", ") },
      async () => {
        await clients.rest("iam", "PATCH", `${path}?updateMask=${mask.join(",")}`, {
          includedPermissions: MASTERS_PERMISSIONS,
          description,
          etag: found!.etag,
        });
      },
      undefined,
    );
  return `projects/${project}/roles/${id}`;
}

/**
 * The project policy's binding of the masters' role: exactly one, for the masters' account, under the
 * cluster's condition. Other bindings are not touched. A concurrent writer's change (409 on the etag) is
 * read again and the edit made anew.
 */
export async function ensureProjectBinding(ctx: GceContext, role: string): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const want: Binding = {
    role,
    members: [`serviceAccount:${serviceAccountEmail(clients.project, inputs.spec.name, "masters")}`],
    condition: mastersCondition({ spec: inputs.spec, project: clients.project }),
  };
  const policy = isPlanned(clusterId) ? { bindings: [] } : await projectPolicy(ctx);
  const ours = (policy.bindings ?? []).filter((b) => b.role === role);
  if (ours.length === 1 && sameBinding(ours[0]!, want)) return;
  await rec.make(
    {
      action: ours.length ? "update" : "create",
      kind: "project-binding",
      name: role,
      detail: want.members.join(", "),
    },
    () => editProjectPolicy(ctx, (bindings) => [...bindings.filter((b) => b.role !== role), want]),
    undefined,
  );
}

const sameBinding = (a: Binding, b: Binding) =>
  a.role === b.role &&
  [...a.members].sort().join() === [...b.members].sort().join() &&
  a.condition?.expression === b.condition?.expression &&
  a.condition?.title === b.condition?.title;

export async function projectPolicy(ctx: Pick<GceContext, "clients">): Promise<Policy> {
  const { clients } = ctx;
  return clients.rest<Policy>("cloudresourcemanager", "POST", `v3/projects/${clients.project}:getIamPolicy`, {
    options: { requestedPolicyVersion: 3 },
  });
}

/**
 * Read, edit, write with the read's etag; again on a conflict (another writer between), and while IAM has
 * yet to see a service account created moments ago (400 "does not exist").
 */
export async function editProjectPolicy(
  ctx: Pick<GceContext, "clients" | "sleep" | "pollMs">,
  edit: (bindings: Binding[]) => Binding[],
): Promise<void> {
  const { clients } = ctx;
  for (let attempt = 1; ; attempt++) {
    const policy = await projectPolicy(ctx);
    const bindings = edit(policy.bindings ?? []).filter((b) => b.members.length > 0);
    try {
      await clients.rest("cloudresourcemanager", "POST", `v3/projects/${clients.project}:setIamPolicy`, {
        policy: { version: 3, bindings, etag: policy.etag },
      });
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
