import type { ChangeRecorder } from "../changes";
import { waitFor } from "../wait";

export { waitFor };
import { awsErrorCode, type AwsClients } from "./clients";
import { CLUSTER_TAG, NAME_TAG, OWNER_TAG, type Inputs } from "./desired";

/** What a command starts with: the clients, the derived inputs, the recorder and the clock. */
export interface BaseContext {
  clients: AwsClients;
  inputs: Inputs;
  rec: ChangeRecorder;
  /** Poll interval for waits (rollouts, deletions); tests shorten it. */
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

/** What every reconcile step gets: also the cluster id, which marks what is ours. */
export interface Context extends BaseContext {
  clusterId: string;
}

/** Filters for this cluster's tagged resources: its name, its owner id, and optionally one part. */
export const tagFilters = (cluster: string, clusterId: string, logicalName?: string) => [
  { Name: `tag:${CLUSTER_TAG}`, Values: [cluster] },
  { Name: `tag:${OWNER_TAG}`, Values: [clusterId] },
  ...(logicalName ? [{ Name: `tag:${NAME_TAG}`, Values: [logicalName] }] : []),
];

/** Finds, among same-kind resources, the one with this `kubebake:name` tag. */
export const named =
  (logicalName: string) =>
  (resource: { Tags?: { Key?: string; Value?: string }[] }): boolean =>
    resource.Tags?.some((t) => t.Key === "kubebake:name" && t.Value === logicalName) ?? false;

/** Runs `call` again while it fails with the AWS error `code` (a dependency AWS has yet to release). */
export async function retryWhile<T>(
  ctx: Pick<Context, "sleep" | "pollMs">,
  code: string,
  timeoutMs: number,
  call: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (awsErrorCode(error) !== code || Date.now() > deadline) throw error;
      await ctx.sleep(Math.max(ctx.pollMs, 1000));
    }
  }
}
