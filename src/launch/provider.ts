/**
 * The one interface every cloud's launcher offers the commands (src/cli/cluster.ts): `cluster plan|apply|
 * destroy`, `dns deploy|sync`. Each cloud implements it in src/launch/<cloud>/index.ts over its own
 * reconcilers, which share the recorder (changes.ts) and the discovery core (src/discover/reconcile.ts).
 * Plan is apply with a dry-run recorder: one code path, so the printed plan is what apply does.
 */
import type { ClusterSpec } from "../cluster/schema";
import type { SyncResult } from "../discover/sync";
import type { KubebakeError } from "../errors";
import type { ChangeRecorder } from "./changes";

export interface LaunchProvider {
  /** Converges the cluster to its spec; with a dry-run recorder, records the plan and changes nothing. */
  apply(rec: ChangeRecorder): Promise<object>;
  /** Deletes everything the cluster owns (and nothing it does not). */
  destroy(rec: ChangeRecorder): Promise<void>;
  /** Converges only the discovery function, its triggers and permissions; deletes nothing. */
  deployDiscovery(rec: ChangeRecorder): Promise<void>;
  /** One discovery reconciliation, through the deployed function when there is one. */
  syncDiscovery(log: (entry: object) => void): Promise<SyncResult>;
  /** Starts the masters' etcd over from a snapshot (its result goes into --json); clouds without snapshots leave it out. */
  restore?(rec: ChangeRecorder, snapshot: string): Promise<object>;
  /** This cloud's API failure as one line with its exit code; undefined when `error` is not one. */
  failure(error: unknown): KubebakeError | undefined;
}

export interface LaunchTiming {
  /** Poll interval of waits (rollouts, operations); tests shorten it. */
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

/** The launcher of the spec's cloud, loaded on demand (a command on AWS never loads Google's clients). */
export async function launchProvider(
  spec: ClusterSpec,
  specPath: string,
  timing: LaunchTiming,
): Promise<LaunchProvider> {
  switch (spec.cloud) {
    case "aws":
      return (await import("./aws/index")).awsProvider(spec, specPath, timing);
    case "gce":
      return (await import("./gce/index")).gceProvider(spec, specPath, timing);
    case "azure":
      return (await import("./azure/index")).azureProvider(spec, specPath, timing);
  }
}
