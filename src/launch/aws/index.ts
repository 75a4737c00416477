/** The AWS launcher behind the commands (src/launch/provider.ts): each method is one reconciler's entry. */
import type { AwsClusterSpec } from "../../cluster/schema";
import { ExitCode, KubebakeError } from "../../errors";
import type { ChangeRecorder } from "../changes";
import type { LaunchProvider, LaunchTiming } from "../provider";
import { awsClients, type AwsClients } from "./clients";
import type { Context } from "./context";
import type { Inputs } from "./desired";

export function awsProvider(spec: AwsClusterSpec, specPath: string, timing: LaunchTiming): LaunchProvider {
  // AWS_ENDPOINT_URL points every service at one endpoint (an emulator).
  const clients = awsClients({ region: spec.region, endpoint: process.env.AWS_ENDPOINT_URL || undefined });
  let inputs: Promise<Inputs> | undefined;
  const resolved = async () => {
    const { resolveInputs } = await import("./inputs");
    return (inputs ??= resolveInputs(clients, spec, specPath));
  };
  return {
    async apply(rec) {
      const { applyCluster } = await import("./cluster");
      return applyCluster({ clients, inputs: await resolved(), rec, ...timing });
    },
    async destroy(rec) {
      const { destroyCluster } = await import("./destroy");
      await destroyCluster({ clients, rec, cluster: spec.name, ...timing, timeoutMs: 20 * 60_000 });
    },
    async restore(rec, snapshot) {
      const { restoreCluster } = await import("./restore");
      return restoreCluster({ clients, inputs: await resolved(), rec, ...timing }, snapshot);
    },
    async deployDiscovery(rec) {
      const { ensureDiscovery } = await import("./discovery");
      const { ctx, zoneId } = await discoveryContext(clients, await resolved(), rec, timing);
      await ensureDiscovery(ctx, zoneId);
    },
    async syncDiscovery(log) {
      const { ctx, zoneId } = await discoveryContext(clients, await resolved(), undefined, timing);
      // Through the deployed function when there is one, so that writers stay serialized (src/discover/sync.ts).
      const { dnsSync } = await import("../../discover/sync");
      const { awsDiscoveryPorts } = await import("../../discover/aws");
      const { discoveryConfig, discoveryFunctionName } = await import("./desired");
      return dnsSync({
        lambda: clients.lambda,
        functionName: discoveryFunctionName(spec.name),
        ports: () => awsDiscoveryPorts(clients),
        options: { ...discoveryConfig(ctx.inputs, zoneId), log },
        sleep: timing.sleep,
      });
    },
    failure: (error) => awsFailure(clients, error),
  };
}

/** The cluster's own private zone, found by the cluster id of this region (its owner tag), never by name. */
async function discoveryContext(
  clients: AwsClients,
  inputs: Inputs,
  rec: ChangeRecorder | undefined,
  timing: LaunchTiming,
): Promise<{ ctx: Context; zoneId: string }> {
  const { clusterZoneName } = await import("./desired");
  const { ownedZones } = await import("./zone");
  const { readClusterId } = await import("./owner");
  const { spec } = inputs;
  const clusterId = await readClusterId(clients, spec.name);
  const zones = clusterId ? await ownedZones({ clients }, clusterZoneName(inputs), clusterId) : [];
  if (!clusterId || zones.length !== 1) {
    throw new KubebakeError(
      `cluster ${spec.name}: expected one private zone ${clusterZoneName(inputs)} owned by the cluster in ${spec.region}, found ${zones.length}; run 'kubebake cluster apply' first`,
      ExitCode.unsafeState,
    );
  }
  return { ctx: { clients, inputs, rec: rec!, clusterId, ...timing }, zoneId: zones[0]!.id };
}

/** An AWS SDK failure as a documented exit code, naming the call that failed. */
function awsFailure(clients: AwsClients, error: unknown): KubebakeError | undefined {
  const e = error as Error & { $metadata?: unknown; Code?: string };
  if (e?.$metadata === undefined && e?.name !== "CredentialsProviderError") return undefined;
  const call = clients.calls.at(-1) ?? "AWS";
  return new KubebakeError(`${call} failed: ${e.Code ?? e.name}: ${e.message}`, ExitCode.cloudFailed);
}
