import { GoogleAuth } from "google-auth-library";
import { ExitCode, KubebakeError } from "../../errors";

/** What the publish needs of credentials: headers for its own calls, fetch for @google-cloud/compute's. */
export interface GceAuthClient {
  getRequestHeaders(url?: string): Promise<Headers | Record<string, string>>;
  fetch(url: string | URL, init?: RequestInit): Promise<unknown>;
}

const SCOPES = ["https://www.googleapis.com/auth/cloud-platform"];

/**
 * Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default login, or
 * the metadata server), with a token fetched now: missing or broken credentials end the publish with one
 * line before anything is archived or uploaded.
 */
export async function applicationDefaultCredentials(): Promise<GceAuthClient> {
  try {
    const client = await new GoogleAuth({ scopes: SCOPES }).getClient();
    await client.getRequestHeaders();
    return client as unknown as GceAuthClient;
  } catch (error) {
    const reason = ((error as Error).message ?? String(error)).split("\n")[0];
    throw new KubebakeError(
      `GCE credentials: ${reason} (set up Application Default Credentials: gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)`,
      ExitCode.cloudFailed,
    );
  }
}

export async function headersOf(client: GceAuthClient): Promise<Headers> {
  return new Headers(await client.getRequestHeaders());
}
