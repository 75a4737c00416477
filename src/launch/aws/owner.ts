/**
 * The cluster id: generated once per cluster and region on the first apply, kept in the SSM parameter
 * `/kubebake/<cluster>/cluster-id`, and carried as the `kubebake:owner` tag by everything kubebake
 * creates. Only what carries it is updated or deleted; a look-alike without it is refused (exit 8).
 */
import { GetParameterCommand, PutParameterCommand } from "@aws-sdk/client-ssm";
import { randomBytes } from "node:crypto";
import { ExitCode, KubebakeError } from "../../errors";
import { plannedId } from "../changes";
import { awsErrorCode, ifExists, type AwsClients } from "./clients";
import type { BaseContext } from "./context";
import { asTagList, clusterIdParameter, CLUSTER_TAG, OWNER_TAG } from "./desired";

/** The stored cluster id, or undefined before the first apply (and after a destroy). */
export async function readClusterId(clients: AwsClients, cluster: string): Promise<string | undefined> {
  const answer = await ifExists(() =>
    clients.ssm.send(new GetParameterCommand({ Name: clusterIdParameter(cluster) })),
  );
  return answer?.Parameter?.Value;
}

/**
 * The cluster id, created when absent. Created without overwrite, so that a retry after a lost answer,
 * or a concurrent apply, reads the one id that was stored instead of making a second.
 */
export async function ensureClusterId(ctx: BaseContext, stored: string | undefined): Promise<string> {
  const { spec } = ctx.inputs;
  if (stored) return stored;
  const Name = clusterIdParameter(spec.name);
  return ctx.rec.make(
    { action: "create", kind: "cluster-id", name: Name },
    async () => {
      const id = `kb-${randomBytes(8).toString("hex")}`;
      try {
        await ctx.clients.ssm.send(
          new PutParameterCommand({
            Name,
            Value: id,
            Type: "String",
            Description: `kubebake cluster ${spec.name} in ${spec.region}: the owner id of its resources`,
            Tags: asTagList({ [CLUSTER_TAG]: spec.name, [OWNER_TAG]: id }),
          }),
        );
        return id;
      } catch (error) {
        if (awsErrorCode(error) !== "ParameterAlreadyExists") throw error;
        const raced = await readClusterId(ctx.clients, spec.name);
        if (!raced) throw error;
        return raced;
      }
    },
    plannedId("cluster-id"),
  );
}

/**
 * A resource with this cluster's name that does not carry its id: never adopted, updated or deleted.
 * `owner` is its owner tag's value (undefined: none; null: not read).
 */
export function foreign(kind: string, name: string, owner: string | undefined | null): KubebakeError {
  const tag =
    owner === null ? "does not match" : owner === undefined ? "is absent" : `is ${JSON.stringify(owner)}`;
  return new KubebakeError(
    `${kind} ${name} exists but was not created by this cluster (its ${OWNER_TAG} tag ${tag}, ` +
      "not this cluster's id); kubebake neither adopts nor deletes it. " +
      "Delete or rename it if it is a leftover, or give this cluster another name.",
    ExitCode.unsafeState,
  );
}

/** The owner tag's value of a tag list or map. */
export const ownerOf = (tags: { Key?: string; Value?: string }[] | Record<string, string> | undefined) =>
  Array.isArray(tags) ? tags.find((t) => t.Key === OWNER_TAG)?.Value : tags?.[OWNER_TAG];

export const ownedBy = (
  tags: { Key?: string; Value?: string }[] | Record<string, string> | undefined,
  clusterId: string,
) => ownerOf(tags) === clusterId;

/** Throws `foreign(…)` unless the tags carry this cluster id. */
export function assertOwned(
  kind: string,
  name: string,
  tags: { Key?: string; Value?: string }[] | Record<string, string> | undefined,
  clusterId: string,
): void {
  const owner = ownerOf(tags);
  if (owner !== clusterId) throw foreign(kind, name, owner);
}
