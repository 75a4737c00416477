/** The GCE launcher behind the commands (src/launch/provider.ts): each method is one reconciler's entry. */
import type { GceClusterSpec } from "../../cluster/schema";
import { resolveGceSpec } from "./defaults";
import { ExitCode, KubebakeError } from "../../errors";
import type { GceAuthClient } from "../../publish/gce/auth";
import type { LaunchProvider, LaunchTiming } from "../provider";
import { gceClients, type GceClients, type GceEndpoints } from "./clients";
import { OperationFailed } from "./context";
import type { GceInputs } from "./desired";

/**
 * Test hook: KUBEBAKE_GCE_ENDPOINT=http://127.0.0.1:PORT points every Google API at one local fake, with
 * the fixed bearer token KUBEBAKE_GCE_TEST_TOKEN instead of real credentials.
 */
function testSetup(): { endpoints: GceEndpoints; auth: GceAuthClient } | undefined {
  const endpoint = process.env.KUBEBAKE_GCE_ENDPOINT;
  if (!endpoint) return undefined;
  const url = new URL(endpoint);
  const token = process.env.KUBEBAKE_GCE_TEST_TOKEN ?? "test-token";
  const authorize = (headers?: ConstructorParameters<typeof Headers>[0]) => {
    const all = new Headers(headers);
    all.set("authorization", `Bearer ${token}`);
    return all;
  };
  return {
    endpoints: {
      rest: endpoint.replace(/\/$/, ""),
      compute: {
        host: url.hostname,
        port: Number(url.port),
        protocol: url.protocol === "https:" ? "https" : "http",
      },
    },
    auth: {
      getRequestHeaders: async () => authorize(),
      fetch: (u, init) => fetch(u, { ...init, headers: authorize(init?.headers) }),
    },
  };
}

export async function gceProvider(
  fileSpec: GceClusterSpec,
  specPath: string,
  timing: LaunchTiming,
): Promise<LaunchProvider> {
  const spec = resolveGceSpec(fileSpec, specPath);
  const { project } = spec;
  const test = testSetup();
  const auth = test?.auth ?? (await (await import("../../publish/gce/auth")).applicationDefaultCredentials());
  const clients = gceClients(auth, project, spec.region, test?.endpoints);
  let inputs: Promise<GceInputs> | undefined;
  const resolved = async () => {
    const { resolveGceInputs } = await import("./inputs");
    return (inputs ??= resolveGceInputs(clients, spec, specPath));
  };
  return {
    async apply(rec) {
      const { applyGceCluster } = await import("./cluster");
      return applyGceCluster({ clients, inputs: await resolved(), rec, ...timing });
    },
    async destroy(rec) {
      const { destroyGceCluster } = await import("./destroy");
      await destroyGceCluster({ clients, rec, cluster: spec.name, ...timing });
    },
    async deployDiscovery(rec) {
      const { deployGceDiscovery } = await import("./deploy-discovery");
      await deployGceDiscovery({ clients, inputs: await resolved(), rec, ...timing });
    },
    async syncDiscovery(log) {
      const { syncGceDiscovery } = await import("./discovery");
      return syncGceDiscovery(clients, await resolved(), log);
    },
    failure: (error) => gceFailure(clients, error),
  };
}

/** A Google API failure, or an operation that ended in error, as exit 7 naming the call. */
function gceFailure(clients: GceClients, error: unknown): KubebakeError | undefined {
  const e = error as Error & { code?: unknown; reason?: string; statusDetails?: unknown };
  if (error instanceof OperationFailed) return new KubebakeError(error.message, ExitCode.cloudFailed);
  const call = clients.calls.at(-1) ?? "Google API";
  // fetch's own failure (no route, refused, DNS): Google was not reached.
  if (e instanceof TypeError && e.message === "fetch failed") {
    const cause = (e.cause as { code?: string; message?: string } | undefined) ?? {};
    return new KubebakeError(
      `${call} failed: ${cause.code ?? cause.message ?? "the network"}`,
      ExitCode.cloudFailed,
    );
  }
  const isGoogle =
    e?.name === "GoogleApiError" || typeof e?.code === "number" || e?.statusDetails !== undefined;
  if (!isGoogle) return undefined;
  const status = typeof e.code === "number" ? ` (${e.code})` : "";
  return new KubebakeError(`${call} failed${status}: ${e.message.split("\n")[0]}`, ExitCode.cloudFailed);
}
