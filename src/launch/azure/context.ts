/** What every Azure reconcile step gets: the clients, the spec's decided inputs, the recorder, the clock. */
import type { AzureClusterSpec } from "../../cluster/schema";
import type { ChangeRecorder } from "../changes";
import type { AzureClients } from "./clients";

export interface AzureInputs {
  spec: AzureClusterSpec;
  subscription: string;
  /** The Entra ID tenant of the subscription (the vault trusts its tokens). */
  tenant: string;
  /** The managed image's resource id. */
  image: string;
  discoveryDomain: string;
}

export interface AzureBaseContext {
  clients: AzureClients;
  inputs: AzureInputs;
  rec: ChangeRecorder;
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

export interface AzureContext extends AzureBaseContext {
  clusterId: string;
}

/** ARM's answer status of a failed call (the clients throw RestError with statusCode). */
export const statusOf = (error: unknown): number | undefined =>
  (error as { statusCode?: unknown } | null)?.statusCode as number | undefined;

/** The call's answer, or undefined when ARM says the resource does not exist (404). */
export async function ifFound<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw error;
  }
}
