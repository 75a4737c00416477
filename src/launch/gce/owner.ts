/**
 * The cluster id on GCE: generated on the first apply, kept as the label `kubebake-owner` of the secret
 * `kubebake-<cluster>-cluster-id` (its value holds it too), and carried by everything the cluster owns
 * (labels, or descriptions where GCE has no labels). Only what carries it is changed or deleted.
 */
import { randomBytes } from "node:crypto";
import { ExitCode, KubebakeError } from "../../errors";
import { plannedId } from "../changes";
import { ifFound, isStatus, type GceClients } from "./clients";
import type { GceBaseContext } from "./context";
import { CLUSTER_ID_SECRET, CLUSTER_LABEL, OWNER_LABEL, secretId } from "./desired";

const idSecretName = (clients: GceClients, cluster: string) =>
  `projects/${clients.project}/secrets/${secretId(cluster, CLUSTER_ID_SECRET)}`;

/** The stored cluster id, or undefined before the first apply (and after a destroy). */
export async function readClusterId(clients: GceClients, cluster: string): Promise<string | undefined> {
  const [secret] =
    (await ifFound(() => clients.secrets.getSecret({ name: idSecretName(clients, cluster) }))) ?? [];
  if (!secret) return undefined;
  const id = secret.labels?.[OWNER_LABEL];
  if (!id || secret.labels?.[CLUSTER_LABEL] !== cluster)
    throw new KubebakeError(
      `secret ${secret.name} has no ${OWNER_LABEL} label of cluster ${cluster}: it is not kubebake's; kubebake will not use or replace it`,
      ExitCode.unsafeState,
    );
  return id;
}

/** The cluster id, created when absent; a create that lost a race reads the one that won. */
export async function ensureClusterId(ctx: GceBaseContext, stored: string | undefined): Promise<string> {
  if (stored) return stored;
  const { clients, inputs } = ctx;
  const cluster = inputs.spec.name;
  const id = secretId(cluster, CLUSTER_ID_SECRET);
  return ctx.rec.make(
    { action: "create", kind: "cluster-id", name: id },
    async () => {
      const clusterId = `kb-${randomBytes(8).toString("hex")}`;
      try {
        await clients.secrets.createSecret({
          parent: `projects/${clients.project}`,
          secretId: id,
          secret: {
            replication: { automatic: {} },
            labels: { ...inputs.spec.labels, [CLUSTER_LABEL]: cluster, [OWNER_LABEL]: clusterId },
          },
        });
      } catch (error) {
        if (!isStatus(error, 409)) throw error;
        const raced = await readClusterId(clients, cluster);
        if (!raced) throw error;
        return raced;
      }
      await clients.secrets.addSecretVersion({
        parent: idSecretName(clients, cluster),
        payload: { data: Buffer.from(clusterId) },
      });
      return clusterId;
    },
    plannedId("cluster-id"),
  );
}

export { foreign } from "../ownership";
