/**
 * The cluster PKI in SSM Parameter Store: generated once, stored as SecureString under /kubebake/<cluster>/,
 * read by the nodes at boot with their instance role. Never in user data, never in the image.
 */
import { DescribeParametersCommand, PutParameterCommand } from "@aws-sdk/client-ssm";
import { KubebakeError, ExitCode } from "../../errors";
import { isPlanned } from "../changes";
import type { Context } from "./context";
import { asTagList, clusterIdParameter, OWNER_TAG, secretPrefix, tagsFor } from "./desired";
import { foreign } from "./owner";

/** The files of generateClusterPki, which the node scripts fetch by these names. */
export const PKI_FILE_NAMES = [
  ...["admin", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "ca", "controller-manager"],
  ...["etcd-ca", "front-proxy-ca", "front-proxy-client", "scheduler"],
]
  .flatMap((base) => [`${base}.crt`, `${base}.key`])
  .concat(["admin.kubeconfig", "bootstrap-token", "sa.key", "sa.pub"])
  .sort();

/** The parameters under `/kubebake/<cluster>/`; with a cluster id, only those tagged with it. */
export async function storedParameterNames(
  ctx: Pick<Context, "clients">,
  cluster: string,
  clusterId?: string,
): Promise<Set<string>> {
  const names = new Set<string>();
  if (clusterId !== undefined && isPlanned(clusterId)) return names;
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
    for (const p of page.Parameters ?? []) if (p.Name) names.add(p.Name);
    NextToken = page.NextToken;
  } while (NextToken);
  return names;
}

export async function ensurePki(ctx: Context, clusterRunning: boolean): Promise<void> {
  const { spec } = ctx.inputs;
  const prefix = secretPrefix(spec.name);
  const stored = await storedParameterNames(ctx, spec.name, ctx.clusterId);
  const all = await storedParameterNames(ctx, spec.name);
  const alien = [...all].filter((name) => !stored.has(name) && name !== clusterIdParameter(spec.name));
  if (alien.length > 0) throw foreign("ssm-parameter", alien.sort()[0]!, null);
  const missing = PKI_FILE_NAMES.filter((name) => !stored.has(`${prefix}/${name}`));
  if (missing.length === 0) return;
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
        clusterDomain: ctx.inputs.clusterDomain,
        serviceCIDR: ctx.inputs.serviceCIDR,
        discoveryDomain: ctx.inputs.discoveryDomain,
      });
      for (const file of files) {
        const Name = `${prefix}/${file.name}`;
        const common = { Name, Value: file.content, Type: "SecureString" as const, Tier: tier(file.content) };
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

const tier = (value: string) =>
  Buffer.byteLength(value) > 4096 ? ("Advanced" as const) : ("Standard" as const);
