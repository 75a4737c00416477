/**
 * The Azure launcher behind the commands (src/launch/provider.ts). Being built (issue 17): the cluster
 * spec is checked in full (`cluster validate`), and the reconcilers in this folder are tested one by one
 * against the ARM fake; until the scale sets and discovery are in, plan, apply, destroy and dns say so
 * (exit 2) rather than create half a cluster.
 */
import type { AzureClusterSpec } from "../../cluster/schema";
import { invalidInput } from "../../errors";
import type { LaunchProvider, LaunchTiming } from "../provider";

export async function azureProvider(
  spec: AzureClusterSpec,
  specPath: string,
  _timing: LaunchTiming,
): Promise<LaunchProvider> {
  const unavailable = async (): Promise<never> => {
    throw invalidInput(
      `${specPath}: cloud: azure clusters can be validated but not yet planned, applied or destroyed by this kubebake (the Azure launcher is being built); cluster ${spec.name} was not touched`,
    );
  };
  return {
    apply: unavailable,
    destroy: unavailable,
    deployDiscovery: unavailable,
    syncDiscovery: unavailable,
    failure: () => undefined,
  };
}
