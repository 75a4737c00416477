/**
 * The cluster PKI in Key Vault: one vault per cluster (Azure RBAC, soft delete; encrypted at rest by Key
 * Vault), one secret per file (`pki-<file>`), generated once. Access is granted per secret (scope: the
 * secret) as secretGrants says: minions cannot read the CA key, nobody's node reads the admin credential.
 * The operator's own identity writes the secrets, so it needs Key Vault Secrets Officer on the group.
 */
import { SecretClient } from "@azure/keyvault-secrets";
import { ExitCode, KubebakeError } from "../../errors";
import { isPlanned } from "../changes";
import { foreign } from "../ownership";
import { PKI_FILE_NAMES } from "../pki-files";
import { API_VERSIONS } from "./clients";
import { ifFound, type AzureContext } from "./context";
import {
  LAUNCH_GATE_SECRET,
  OWNER_TAG,
  resourceGroupName,
  secretGrants,
  secretName,
  tagsFor,
  vaultName,
} from "./desired";
import type { ManagedIdentity } from "./identity";
import { ensureGrants } from "./rbac";

export interface ClusterVault {
  name: string;
  id: string;
  uri: string;
  /** A plan's vault that does not exist yet: nothing to read in it. */
  planned: boolean;
}

/** The data plane of a vault, as the operator's credential reaches it. */
export function secretClient(ctx: Pick<AzureContext, "clients">, uri: string): SecretClient {
  const { endpoints, credential } = ctx.clients;
  return new SecretClient(uri, credential, {
    serviceVersion: API_VERSIONS.secrets,
    // A fake's vault answers on 127.0.0.1, not a *.vault.azure.net name the challenge could be checked against.
    disableChallengeResourceVerification: endpoints.resourceManager !== undefined,
    ...(endpoints.ca ? { tlsOptions: { ca: endpoints.ca } } : {}),
  });
}

export async function ensureVault(ctx: AzureContext): Promise<ClusterVault> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { spec } = inputs;
  const group = resourceGroupName(spec);
  const name = vaultName(inputs.subscription, spec);
  const id = `/subscriptions/${inputs.subscription}/resourceGroups/${group}/providers/Microsoft.KeyVault/vaults/${name}`;
  const found = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.keyVault.vaults.get(group, name));
  if (found && found.tags?.[OWNER_TAG] !== clusterId)
    throw foreign("key vault", name, found.tags?.[OWNER_TAG]);
  if (found) return { name, id, uri: found.properties.vaultUri!, planned: false };
  // A deleted vault keeps its (global) name until purged: this cluster's own is recovered with its PKI,
  // an earlier cluster's of this name (a destroy that stopped before the purge) is purged.
  const deleted = isPlanned(clusterId)
    ? undefined
    : await ifFound(() => clients.keyVault.vaults.getDeleted(name, spec.location));
  const recover = deleted?.properties?.tags?.[OWNER_TAG] === clusterId;
  if (deleted && !recover)
    await rec.make(
      { action: "delete", kind: "deleted-key-vault", name, detail: "purged: an earlier cluster's" },
      () => clients.keyVault.vaults.purgeDeleted(name, spec.location, { updateIntervalInMs: ctx.pollMs }),
      undefined,
    );
  const made = await rec.make<{ properties: { vaultUri?: string } }>(
    { action: recover ? "update" : "create", kind: "key-vault", name, detail: recover ? "recovered" : "" },
    () =>
      clients.keyVault.vaults.createOrUpdate(
        group,
        name,
        {
          location: spec.location,
          tags: tagsFor(spec, "vault", clusterId),
          properties: {
            tenantId: inputs.tenant,
            sku: { family: "A", name: "standard" },
            // Azure RBAC: access per secret by role assignment, no access policies.
            enableRbacAuthorization: true,
            softDeleteRetentionInDays: 7,
            ...(recover ? { createMode: "recover" as const } : {}),
          },
        },
        { updateIntervalInMs: ctx.pollMs },
      ),
    { properties: { vaultUri: `https://${name}.vault.azure.net/` } },
  );
  return { name, id, uri: made.properties.vaultUri!, planned: rec.dryRun };
}

/** The names of the vault's secrets that hold a value. */
async function valuedSecrets(client: SecretClient): Promise<Set<string>> {
  const names = new Set<string>();
  for await (const secret of client.listPropertiesOfSecrets())
    if (secret.enabled !== false) names.add(secret.name);
  return names;
}

/**
 * The PKI's secrets: all made when none is there; refused when some are missing under running groups
 * (regenerating would replace the PKI under the nodes). Then each secret's grants.
 */
export async function ensurePki(
  ctx: AzureContext,
  vault: ClusterVault,
  identities: Record<"masters" | "minions", ManagedIdentity>,
  clusterRunning: boolean,
): Promise<void> {
  const { inputs, rec } = ctx;
  const cluster = inputs.spec.name;
  const client = secretClient(ctx, vault.uri);
  const have = vault.planned ? new Set<string>() : await valuedSecrets(client);
  const missing = PKI_FILE_NAMES.filter((file) => !have.has(secretName(file)));
  if (missing.length > 0) {
    if (missing.length < PKI_FILE_NAMES.length && clusterRunning)
      throw new KubebakeError(
        `key vault ${vault.name}: ${missing.length} of the cluster's secrets are missing (${missing.slice(0, 3).join(", ")}…) while ` +
          "its scale sets exist; regenerating would replace the PKI under running nodes. Recover them, or destroy the cluster.",
        ExitCode.unsafeState,
      );
    await rec.make(
      {
        action: missing.length === PKI_FILE_NAMES.length ? "create" : "replace",
        kind: "pki",
        name: `${vault.name}/${secretName("*")}`,
        detail: `${PKI_FILE_NAMES.length} secrets`,
      },
      async () => {
        const { generateClusterPki } = await import("../../pki/pki");
        const files = await generateClusterPki({ cluster, discoveryDomain: inputs.discoveryDomain });
        // An apply that stopped half-way left some: a fresh PKI gives them all new values (no node used them).
        for (const file of files) await client.setSecret(secretName(file.name), file.content);
      },
      undefined,
    );
  }
  // The launch gate's secret exists from the start, so that its grant (scope: the secret) can name it.
  if (!have.has(LAUNCH_GATE_SECRET))
    await rec.make(
      { action: "create", kind: "secret", name: `${vault.name}/${LAUNCH_GATE_SECRET}` },
      async () => void (await client.setSecret(LAUNCH_GATE_SECRET, "none", { tags: { vmId: "none" } })),
      undefined,
    );
  await ensureGrants(
    ctx,
    secretGrants().map((grant) => ({
      scope: `${vault.id}/secrets/${grant.secret}`,
      role: grant.role,
      principalId: identities[grant.who].principalId,
      who: grant.who,
      what: `secret ${grant.secret}`,
    })),
  );
}
