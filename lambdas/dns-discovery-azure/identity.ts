/**
 * The function's access token for ARM, from the Functions host's managed-identity endpoint: IDENTITY_ENDPOINT
 * with the secret IDENTITY_HEADER (as X-IDENTITY-HEADER), api-version 2019-08-01, for the user-assigned
 * identity AZURE_CLIENT_ID. A token is kept until five minutes before it expires: a reconciliation makes a
 * dozen calls, and a warm instance runs every minute.
 */
import type { Fetch } from "../../src/discover/azure-rest";

export const ARM_RESOURCE = "https://management.azure.com/";
const MARGIN_MS = 5 * 60_000;

export function managedIdentityHeaders(
  env: NodeJS.ProcessEnv = process.env,
  send: Fetch = (url, init) => fetch(url, init),
  now: () => number = Date.now,
): () => Promise<Headers> {
  let cached: { token: string; expiresAt: number } | undefined;
  return async () => {
    if (!cached || now() >= cached.expiresAt - MARGIN_MS) {
      const endpoint = env.IDENTITY_ENDPOINT;
      const secret = env.IDENTITY_HEADER;
      const clientId = env.AZURE_CLIENT_ID;
      if (!endpoint || !secret || !clientId)
        throw new Error(
          "IDENTITY_ENDPOINT, IDENTITY_HEADER and AZURE_CLIENT_ID must be set (a managed identity)",
        );
      const url = new URL(endpoint);
      url.searchParams.set("resource", ARM_RESOURCE);
      url.searchParams.set("api-version", "2019-08-01");
      url.searchParams.set("client_id", clientId);
      const answer = await send(url.href, {
        method: "GET",
        headers: new Headers({ "X-IDENTITY-HEADER": secret }),
      });
      if (!answer.ok) throw new Error(`the managed-identity endpoint gave no token (${answer.status})`);
      // expires_on: seconds since the epoch, as a string.
      const body = (await answer.json()) as { access_token?: string; expires_on?: string | number };
      if (!body.access_token) throw new Error("the managed-identity endpoint answered no access_token");
      const expiresOn = Number(body.expires_on);
      cached = {
        token: body.access_token,
        expiresAt: Number.isFinite(expiresOn) && expiresOn > 0 ? expiresOn * 1000 : now() + MARGIN_MS,
      };
    }
    return new Headers({ authorization: `Bearer ${cached.token}` });
  };
}
