import type { ChangeRecorder } from "../changes";
import type { AwsClients } from "./clients";
import type { Inputs } from "./desired";

/** What every reconcile step gets: the clients, the derived inputs, the recorder and the clock. */
export interface Context {
  clients: AwsClients;
  inputs: Inputs;
  rec: ChangeRecorder;
  /** Poll interval for waits (rollouts, deletions); tests shorten it. */
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

export const tagFilters = (cluster: string, logicalName?: string) => [
  { Name: "tag:KubernetesCluster", Values: [cluster] },
  ...(logicalName ? [{ Name: "tag:kubebake:name", Values: [logicalName] }] : []),
];

/** Finds, among same-kind resources, the one with this `kubebake:name` tag. */
export const named =
  (logicalName: string) =>
  (resource: { Tags?: { Key?: string; Value?: string }[] }): boolean =>
    resource.Tags?.some((t) => t.Key === "kubebake:name" && t.Value === logicalName) ?? false;

/** Polls until `done` or the timeout; the message says what was awaited. */
export async function waitFor(
  ctx: Pick<Context, "sleep" | "pollMs">,
  what: string,
  timeoutMs: number,
  done: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await ctx.sleep(ctx.pollMs);
  }
}
