/**
 * The cluster PKI in Secret Manager: generated once, one secret per file (`kubebake-<cluster>-<file>`),
 * read by the nodes at boot with their service account (src/node/providers/gce.sh). Each secret's policy
 * is exactly what secretBindings grants: masters read theirs, minions only the CA certificate and the join
 * token, nobody the admin credential. Secret Manager encrypts every version at rest.
 */
import { ExitCode, KubebakeError } from "../../errors";
import { isPlanned } from "../changes";
import { PKI_FILE_NAMES } from "../pki-files";
import { ifFound } from "./clients";
import type { GceContext } from "./context";
import { CLUSTER_LABEL, labelsFor, OWNER_LABEL, secretBindings, secretId } from "./desired";
import type { Binding } from "./identity";
import { foreign } from "./owner";

interface Secret {
  name?: string | null;
  labels?: Record<string, string> | null;
}

/** The project's secrets labelled with the cluster's name, by id (another owner's among them: checked). */
export async function clusterSecrets(
  ctx: Pick<GceContext, "clients">,
  cluster: string,
): Promise<Map<string, Secret>> {
  const { clients } = ctx;
  const found = new Map<string, Secret>();
  let pageToken: string | undefined;
  do {
    const [secrets, , page] = await clients.secrets.listSecrets(
      {
        parent: `projects/${clients.project}`,
        filter: `labels.${CLUSTER_LABEL}=${cluster}`,
        pageSize: 100,
        pageToken,
      },
      { autoPaginate: false },
    );
    for (const secret of secrets ?? []) found.set(secret.name!.split("/").pop()!, secret);
    pageToken = page?.nextPageToken || undefined;
  } while (pageToken);
  return found;
}

/** Whether a secret has a version to read (an apply stopped between creating it and adding its value). */
async function hasValue(ctx: GceContext, id: string): Promise<boolean> {
  const { clients } = ctx;
  const [version] =
    (await ifFound(() =>
      clients.secrets.getSecretVersion({ name: `projects/${clients.project}/secrets/${id}/versions/latest` }),
    )) ?? [];
  return version?.state === "ENABLED";
}

export async function ensurePki(ctx: GceContext, clusterRunning: boolean): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const cluster = inputs.spec.name;
  const stored = isPlanned(clusterId) ? new Map<string, Secret>() : await clusterSecrets(ctx, cluster);
  const ids = PKI_FILE_NAMES.map((file) => secretId(cluster, file));
  for (const id of ids) {
    const owner = stored.get(id)?.labels?.[OWNER_LABEL];
    if (stored.has(id) && owner !== clusterId) throw foreign("secret", id, owner);
  }
  const valued = await Promise.all(ids.map((id) => (stored.has(id) ? hasValue(ctx, id) : false)));
  const missing = PKI_FILE_NAMES.filter((_, i) => !valued[i]);
  if (missing.length > 0) {
    if (missing.length < PKI_FILE_NAMES.length && clusterRunning)
      throw new KubebakeError(
        `${secretId(cluster, "*")}: ${missing.length} of the cluster's secrets are missing (${missing.slice(0, 3).join(", ")}…) while ` +
          "its groups exist; regenerating would replace the PKI under running nodes. Restore them, or destroy the cluster.",
        ExitCode.unsafeState,
      );
    await rec.make(
      {
        action: missing.length === PKI_FILE_NAMES.length ? "create" : "replace",
        kind: "pki",
        name: secretId(cluster, "*"),
        detail: `${PKI_FILE_NAMES.length} secrets`,
      },
      async () => {
        const { generateClusterPki } = await import("../../pki/pki");
        const files = await generateClusterPki({ cluster, discoveryDomain: inputs.discoveryDomain });
        for (const file of files) {
          const id = secretId(cluster, file.name);
          // An earlier apply that stopped half-way left some: a fresh PKI gives them all new values (no node used them).
          if (!stored.has(id))
            await clients.secrets.createSecret({
              parent: `projects/${clients.project}`,
              secretId: id,
              secret: { replication: { automatic: {} }, labels: labelsFor(inputs.spec, "pki", clusterId) },
            });
          await clients.secrets.addSecretVersion({
            parent: `projects/${clients.project}/secrets/${id}`,
            payload: { data: Buffer.from(file.content) },
          });
        }
      },
      undefined,
    );
  }
  await ensureSecretPolicies(ctx);
}

const policyShape = (bindings: Binding[]) =>
  JSON.stringify(
    bindings
      .filter((b) => b.members.length > 0)
      .map((b) => ({ role: b.role, members: [...b.members].sort() }))
      .sort((a, b) => a.role.localeCompare(b.role)),
  );

/** Each secret's policy, exactly: the secrets are the cluster's alone, and so are their policies. */
async function ensureSecretPolicies(ctx: GceContext): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const wanted = secretBindings(clients.project, inputs.spec.name);
  for (const file of PKI_FILE_NAMES) {
    const id = secretId(inputs.spec.name, file);
    const resource = `projects/${clients.project}/secrets/${id}`;
    const want = wanted.get(file) ?? [];
    const [policy] =
      (isPlanned(clusterId) ? undefined : await ifFound(() => clients.secrets.getIamPolicy({ resource }))) ??
      [];
    if (policyShape((policy?.bindings ?? []) as Binding[]) === policyShape(want)) continue;
    await rec.make(
      {
        action: "update",
        kind: "secret-policy",
        name: id,
        detail: want.length
          ? want.map((b) => `${b.role.replace("roles/secretmanager.", "")}: ${b.members.length}`).join(", ")
          : "no one",
      },
      async () => {
        const [current] = await clients.secrets.getIamPolicy({ resource });
        await clients.secrets.setIamPolicy({ resource, policy: { bindings: want, etag: current.etag } });
      },
      undefined,
    );
  }
}
