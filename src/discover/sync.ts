/**
 * `kubebake dns sync`: one reconciliation on demand, without undermining the function's serialization.
 * The deployed function runs with reserved concurrency 1, so invocations never overlap; a reconciliation
 * run from a laptop beside it would be a second, unserialized writer whose stale DELETE could land after
 * the function confirmed a record. So when the function exists, sync invokes it synchronously (queueing
 * behind a running invocation: Lambda answers TooManyRequests until the slot is free) and prints its
 * answer; only when no function is deployed — no other writer exists — does it reconcile from here.
 */
import { GetFunctionCommand, InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import { ExitCode, KubebakeError } from "../errors";
import { reconcile, ReconcileFailed, type DiscoveryPorts, type ReconcileOptions } from "./reconcile";

export interface SyncResult {
  via: "function" | "local";
  /** `etcd` is missing from the answer of a function deployed by an earlier kubebake (it keeps no such record). */
  desired: { masters: string[]; minions: string[]; etcd?: string[] };
  writes: { name: string; from: string[] | null; to: string[] | null }[];
  conflicts: number;
  throttles: number;
}

export interface SyncDeps {
  lambda: LambdaClient;
  functionName: string;
  ports: () => DiscoveryPorts;
  options: ReconcileOptions;
  sleep: (ms: number) => Promise<void>;
  /** How long to keep asking while the one allowed invocation is busy (the function's timeout is 60 s). */
  busyForMs?: number;
}

/** The event the function logs as its trigger. */
export const SYNC_EVENT = { source: "kubebake.cli", "detail-type": "kubebake dns sync", detail: {} };

export async function dnsSync(deps: SyncDeps): Promise<SyncResult> {
  const deployed = await deps.lambda
    .send(new GetFunctionCommand({ FunctionName: deps.functionName }))
    .then(() => true)
    .catch((error: Error) => {
      if (error.name === "ResourceNotFoundException") return false;
      throw error;
    });
  if (deployed) return invokeFunction(deps);
  try {
    return { via: "local", ...(await reconcile(deps.ports(), deps.options)) };
  } catch (error) {
    if (error instanceof ReconcileFailed) {
      throw new KubebakeError(`dns sync: ${error.message}`, ExitCode.cloudFailed);
    }
    throw error;
  }
}

async function invokeFunction(deps: SyncDeps): Promise<SyncResult> {
  const until = Date.now() + (deps.busyForMs ?? 90_000);
  for (let attempt = 1; ; attempt++) {
    let answer;
    try {
      answer = await deps.lambda.send(
        new InvokeCommand({
          FunctionName: deps.functionName,
          InvocationType: "RequestResponse",
          LogType: "Tail",
          Payload: new TextEncoder().encode(JSON.stringify(SYNC_EVENT)),
        }),
      );
    } catch (error) {
      // Reserved concurrency 1: another invocation holds the slot. Wait for it rather than run beside it.
      if ((error as Error).name !== "TooManyRequestsException" || Date.now() > until) throw error;
      await deps.sleep(Math.min(1000 * attempt, 5000));
      continue;
    }
    const payload = answer.Payload ? JSON.parse(new TextDecoder().decode(answer.Payload)) : null;
    if (answer.FunctionError) {
      const tail = answer.LogResult ? Buffer.from(answer.LogResult, "base64").toString("utf8").trim() : "";
      throw new KubebakeError(
        `dns sync: the function ${deps.functionName} failed: ${payload?.errorMessage ?? answer.FunctionError}${tail ? `\n${tail}` : ""}`,
        ExitCode.cloudFailed,
      );
    }
    return {
      via: "function",
      desired: payload.desired,
      writes: payload.written,
      conflicts: payload.conflicts,
      throttles: payload.throttles,
    };
  }
}
