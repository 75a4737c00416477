/** What every GCE reconcile step gets: the clients, the inputs, the recorder, the clock, the cluster id. */
import type { ChangeRecorder } from "../changes";
import { waitFor } from "../wait";

export { waitFor };
import type { GceClients } from "./clients";
import type { GceInputs } from "./desired";

export interface GceBaseContext {
  clients: GceClients;
  inputs: GceInputs;
  rec: ChangeRecorder;
  /** Poll interval of waits (operations, rollouts); tests shorten it. */
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

export interface GceContext extends GceBaseContext {
  clusterId: string;
}

/** A Compute operation as the client answers it (the fields a wait reads). */
interface ComputeOperation {
  name?: string | null;
  status?: unknown;
  error?: { errors?: { code?: string | null; message?: string | null }[] | null } | null;
}

/** A Compute operation that ended in error: its first error's code and message, and what was being done. */
export class OperationFailed extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "OperationFailed";
  }
}

/**
 * Waits for what a Compute insert, patch or delete started: `wait` returns when the operation is DONE or
 * after a while (two minutes on GCE), so it is asked again until DONE; an error in it is thrown.
 */
export async function completed(
  ctx: Pick<GceBaseContext, "clients">,
  started: [{ latestResponse?: unknown }, ...unknown[]],
  what: string,
): Promise<void> {
  const { clients } = ctx;
  let operation = started[0].latestResponse as ComputeOperation;
  const regional = /\/regions\//.test(String((operation as { selfLink?: string }).selfLink ?? ""));
  while (String(operation.status) !== "DONE") {
    const name = operation.name!;
    [operation] = regional
      ? await clients.regionOperations.wait({
          project: clients.project,
          region: clients.region,
          operation: name,
        })
      : await clients.globalOperations.wait({ project: clients.project, operation: name });
  }
  const first = operation.error?.errors?.[0];
  if (first) throw new OperationFailed(first.code ?? "UNKNOWN", `${what}: ${first.code}: ${first.message}`);
}

/** Compute's full URL of a resource path (`projects/p/global/networks/n`), as its answers carry them. */
export const computeUrl = (path: string) => `https://www.googleapis.com/compute/v1/${path}`;
/** The path of a Compute URL or path, to compare references however they were written. */
export const resourcePath = (link: string | null | undefined) =>
  (link ?? "").replace(/^https?:\/\/[^/]+\/compute\/(v1|beta|alpha)\//, "");

/** A google.longrunning operation (Cloud Functions, Eventarc) as its API answers it. */
export interface LongRunning {
  name: string;
  done?: boolean;
  error?: { code?: number; message?: string };
  response?: unknown;
}

/** Polls a long-running operation of Eventarc (REST) until done; its error is thrown, its response returned. */
export async function finished(
  ctx: Pick<GceBaseContext, "clients" | "pollMs" | "sleep">,
  started: LongRunning,
  what: string,
): Promise<unknown> {
  let operation = started;
  while (!operation.done) {
    await ctx.sleep(ctx.pollMs);
    operation = await ctx.clients.rest<LongRunning>("eventarc", "GET", `v1/${operation.name}`);
  }
  if (operation.error)
    throw new Error(`${what}: ${operation.error.message ?? `error ${operation.error.code}`}`);
  return operation.response;
}
