/**
 * The cluster PKI in SSM Parameter Store: generated once, stored as SecureString under /kubebake/<cluster>/,
 * read by the nodes at boot with their instance role. Never in user data, never in the image.
 */
import {
  DeleteParametersCommand,
  DescribeParametersCommand,
  GetParameterCommand,
  PutParameterCommand,
  type ParameterMetadata,
} from "@aws-sdk/client-ssm";
import { KubebakeError, ExitCode } from "../../errors";
import { isPlanned } from "../changes";
import type { Context } from "./context";
import { asTagList, clusterIdParameter, keyAlias, OWNER_TAG, secretPrefix, tagsFor } from "./desired";
import { namesKey, type ClusterKey } from "./key";
import { foreign } from "./owner";
import { PKI_FILE_NAMES, RETIRED_PKI_FILE_NAMES } from "../pki-files";

export { PKI_FILE_NAMES, RETIRED_PKI_FILE_NAMES };

/**
 * Files added to the PKI after clusters existed, with how each is made: stored on its own under a running
 * cluster (it replaces nothing).
 */
const ADDABLE: Record<string, () => Promise<string>> = {
  "encryption-config.yaml": async () => {
    const { encryptionConfig, newKey } = await import("../../pki/encryption");
    return encryptionConfig([newKey(new Date())]);
  },
};

/** The names of the parameters under `/kubebake/<cluster>/`; with a cluster id, only those tagged with it. */
export async function storedParameterNames(
  ctx: Pick<Context, "clients">,
  cluster: string,
  clusterId?: string,
): Promise<Set<string>> {
  return new Set((await storedParameters(ctx, cluster, clusterId)).keys());
}

/** The parameters under `/kubebake/<cluster>/` by name (with their type and key); with an id, only its. */
export async function storedParameters(
  ctx: Pick<Context, "clients">,
  cluster: string,
  clusterId?: string,
): Promise<Map<string, ParameterMetadata>> {
  const found = new Map<string, ParameterMetadata>();
  if (clusterId !== undefined && isPlanned(clusterId)) return found;
  let NextToken: string | undefined;
  do {
    const page = await ctx.clients.ssm.send(
      new DescribeParametersCommand({
        ParameterFilters: [
          { Key: "Path", Option: "Recursive", Values: [secretPrefix(cluster)] },
          ...(clusterId !== undefined ? [{ Key: `tag:${OWNER_TAG}`, Values: [clusterId] }] : []),
        ],
        MaxResults: 50,
        NextToken,
      }),
    );
    for (const p of page.Parameters ?? []) if (p.Name) found.set(p.Name, p);
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/**
 * The PKI as SecureStrings under the cluster key. A complete PKI whose parameters (some of them) are
 * under another key — the account's default aws/ssm, from before the cluster had a key — is rewritten
 * with the same values under the cluster key, never regenerated.
 */
export async function ensurePki(ctx: Context, clusterRunning: boolean, key: ClusterKey): Promise<void> {
  const { spec } = ctx.inputs;
  const prefix = secretPrefix(spec.name);
  const metadata = await storedParameters(ctx, spec.name, ctx.clusterId);
  const stored = new Set(metadata.keys());
  const all = await storedParameterNames(ctx, spec.name);
  const alien = [...all].filter((name) => !stored.has(name) && name !== clusterIdParameter(spec.name));
  if (alien.length > 0) throw foreign("ssm-parameter", alien.sort()[0]!, null);
  const missing = PKI_FILE_NAMES.filter((name) => !stored.has(`${prefix}/${name}`));
  const complete =
    missing.length === 0 || (missing.length < PKI_FILE_NAMES.length && missing.every((n) => n in ADDABLE));
  if (complete) {
    if (missing.length > 0) await addSecrets(ctx, key, missing);
    await retire(ctx, stored);
    for (const name of RETIRED_PKI_FILE_NAMES) metadata.delete(`${prefix}/${name}`);
    await reencrypt(ctx, key, metadata);
    return;
  }
  if (missing.length < PKI_FILE_NAMES.length && clusterRunning) {
    throw new KubebakeError(
      `${prefix}: ${missing.length} of the cluster's secrets are missing (${missing.slice(0, 3).join(", ")}…) while ` +
        "its groups exist; regenerating would replace the PKI under running nodes. Restore them, or destroy the cluster.",
      ExitCode.unsafeState,
    );
  }
  await ctx.rec.make(
    {
      action: missing.length === PKI_FILE_NAMES.length ? "create" : "replace",
      kind: "pki",
      name: prefix,
      detail: `${PKI_FILE_NAMES.length} SecureString parameters`,
    },
    async () => {
      const { generateClusterPki } = await import("../../pki/pki");
      const files = await generateClusterPki({
        cluster: spec.name,
        discoveryDomain: ctx.inputs.discoveryDomain,
      });
      for (const file of files) {
        const Name = `${prefix}/${file.name}`;
        const common = {
          Name,
          Value: file.content,
          Type: "SecureString" as const,
          KeyId: key.arn,
          Tier: tier(file.content),
        };
        // An earlier apply that stopped half-way left some: a fresh PKI replaces them all (no node used them).
        await ctx.clients.ssm.send(
          new PutParameterCommand(
            stored.has(Name)
              ? { ...common, Overwrite: true }
              : { ...common, Tags: asTagList(tagsFor(spec, "pki", ctx.clusterId)) },
          ),
        );
      }
    },
    undefined,
  );
}

/** Stores secrets a newer PKI has and this cluster's lacks; only ADDABLE ones, which replace nothing. */
async function addSecrets(ctx: Context, key: ClusterKey, names: string[]) {
  const { spec } = ctx.inputs;
  const prefix = secretPrefix(spec.name);
  await ctx.rec.make(
    { action: "update", kind: "pki", name: prefix, detail: `add ${names.join(", ")}` },
    async () => {
      for (const name of names) {
        const Value = await ADDABLE[name]!();
        await ctx.clients.ssm.send(
          new PutParameterCommand({
            Name: `${prefix}/${name}`,
            Value,
            Type: "SecureString",
            KeyId: key.arn,
            Tier: tier(Value),
            Tags: asTagList(tagsFor(spec, "pki", ctx.clusterId)),
          }),
        );
      }
    },
    undefined,
  );
}

/** Deletes the certificates and keys of an older PKI that no node reads any more. */
async function retire(ctx: Context, stored: Set<string>) {
  const prefix = secretPrefix(ctx.inputs.spec.name);
  const names = RETIRED_PKI_FILE_NAMES.map((name) => `${prefix}/${name}`).filter((name) => stored.has(name));
  if (names.length === 0) return;
  await ctx.rec.make(
    {
      action: "delete",
      kind: "pki",
      name: prefix,
      detail: `${names.length} certificate file(s) masters now issue themselves`,
    },
    async () => {
      for (let i = 0; i < names.length; i += 10)
        await ctx.clients.ssm.send(new DeleteParametersCommand({ Names: names.slice(i, i + 10) }));
    },
    undefined,
  );
}

/** Rewrites (same value, new version) every parameter whose KeyId does not name the cluster key. */
async function reencrypt(ctx: Context, key: ClusterKey, stored: Map<string, ParameterMetadata>) {
  const alias = keyAlias(ctx.inputs.spec.name);
  const prefix = secretPrefix(ctx.inputs.spec.name);
  // Every parameter of the cluster but its id (a plain String), whatever files the PKI holds.
  const others = [...stored.keys()]
    .filter((name) => name !== clusterIdParameter(ctx.inputs.spec.name))
    .filter((name) => !namesKey(stored.get(name)?.KeyId, key, alias))
    .sort();
  if (others.length === 0) return;
  const keys = [...new Set(others.map((name) => stored.get(name)?.KeyId ?? "no key"))].sort();
  await ctx.rec.make(
    {
      action: "update",
      kind: "pki",
      name: prefix,
      detail: `${others.length} parameter(s) under ${keys.join(", ")} rewritten under ${alias}`,
    },
    async () => {
      for (const Name of others) {
        const Value = (await ctx.clients.ssm.send(new GetParameterCommand({ Name, WithDecryption: true })))
          .Parameter!.Value!;
        await ctx.clients.ssm.send(
          new PutParameterCommand({
            Name,
            Value,
            Type: "SecureString",
            KeyId: key.arn,
            Tier: tier(Value),
            Overwrite: true,
          }),
        );
      }
    },
    undefined,
  );
}

const tier = (value: string) =>
  Buffer.byteLength(value) > 4096 ? ("Advanced" as const) : ("Standard" as const);
