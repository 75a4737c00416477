/** The Azure launcher behind the commands (src/launch/provider.ts): each method is one reconciler's entry. */
import { readFileSync } from "node:fs";
import type { TokenCredential } from "@azure/core-auth";
import type { AzureClusterSpec } from "../../cluster/schema";
import { ExitCode, KubebakeError } from "../../errors";
import type { LaunchProvider, LaunchTiming } from "../provider";
import { azureClients, type AzureClients, type AzureEndpoints } from "./clients";
import type { AzureInputs } from "./context";
import { subscriptionOf } from "./inputs";

/**
 * Test hook: KUBEBAKE_AZURE_ENDPOINT=https://127.0.0.1:PORT points Resource Manager at a local fake whose
 * certificate KUBEBAKE_AZURE_CA (a PEM file) signs, with unsigned tokens instead of real credentials: the
 * fakes check no signature, only (azurite) the audience, issuer and tenant a real token would carry.
 */
function testSetup(): { endpoints: AzureEndpoints; credential: TokenCredential } | undefined {
  const endpoint = process.env.KUBEBAKE_AZURE_ENDPOINT;
  if (!endpoint) return undefined;
  const ca = process.env.KUBEBAKE_AZURE_CA;
  const tenant = process.env.AZURE_TENANT_ID ?? "00000000-0000-0000-0000-000000000000";
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return {
    endpoints: { resourceManager: endpoint, ...(ca ? { ca: readFileSync(ca, "utf8") } : {}) },
    credential: {
      getToken: async (scopes) => {
        const now = Math.floor(Date.now() / 1000);
        const aud = [scopes].flat()[0]!.replace(/\/\.default$/, "");
        const claims = {
          aud,
          iss: `https://sts.windows.net/${tenant}/`,
          tid: tenant,
          iat: now,
          nbf: now,
          exp: now + 3600,
        };
        return {
          token: `${part({ alg: "none" })}.${part(claims)}.unsigned`,
          expiresOnTimestamp: (now + 3600) * 1000,
        };
      },
    },
  };
}

export async function azureProvider(
  spec: AzureClusterSpec,
  specPath: string,
  timing: LaunchTiming,
): Promise<LaunchProvider> {
  const subscription = subscriptionOf(spec, specPath);
  const test = testSetup();
  const credential = test?.credential ?? new (await import("@azure/identity")).DefaultAzureCredential();
  const clients = azureClients(credential, subscription, test?.endpoints);
  let inputs: Promise<AzureInputs> | undefined;
  const resolved = async () => {
    const { resolveAzureInputs } = await import("./inputs");
    return (inputs ??= resolveAzureInputs(clients, spec, specPath));
  };
  return {
    async apply(rec) {
      const { applyAzureCluster } = await import("./cluster");
      return applyAzureCluster({ clients, inputs: await resolved(), rec, ...timing });
    },
    async destroy(rec) {
      const { destroyAzureCluster } = await import("./destroy");
      await destroyAzureCluster({ clients, rec, inputs: { spec, subscription }, ...timing });
    },
    async deployDiscovery(rec) {
      const { deployAzureDiscovery } = await import("./discovery");
      await deployAzureDiscovery({ clients, inputs: await resolved(), rec, ...timing });
    },
    async syncDiscovery(log) {
      const { syncAzureDiscovery } = await import("./discovery");
      return syncAzureDiscovery(clients, await resolved(), log);
    },
    failure: (error) => azureFailure(clients, error),
  };
}

/** Errors of @azure/identity: no credential found, or one that did not authenticate. */
const CREDENTIAL_ERRORS = new Set([
  "AggregateAuthenticationError",
  "AuthenticationError",
  "CredentialUnavailableError",
]);

/** A Resource Manager or Key Vault failure (RestError), no credential, or Azure out of reach: exit 7 naming the call. */
function azureFailure(clients: AzureClients, error: unknown): KubebakeError | undefined {
  const e = error as Error & { name?: string; statusCode?: number; code?: string };
  if (CREDENTIAL_ERRORS.has(e?.name ?? ""))
    return new KubebakeError(
      `Azure credentials: none of DefaultAzureCredential's sources signed in (az login, or AZURE_CLIENT_ID with AZURE_TENANT_ID and a secret or federated token, or a managed identity); ${e.message.split("\n")[0]}`,
      ExitCode.cloudFailed,
    );
  if (e?.name !== "RestError") return undefined;
  const call = clients.calls.at(-1) ?? "Azure";
  const status = e.statusCode
    ? ` (${e.statusCode}${e.code ? ` ${e.code}` : ""})`
    : e.code
      ? ` (${e.code})`
      : "";
  return new KubebakeError(`${call} failed${status}: ${e.message.split("\n")[0]}`, ExitCode.cloudFailed);
}
