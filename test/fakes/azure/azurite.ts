/**
 * azurite-blob (the official Azure Storage emulator, a dev dependency) as Azure's blob data plane for the
 * launch tests: HTTPS with the ARM fake's certificate (one CA for both), Entra ID tokens (`--oauth basic`,
 * which azurite refuses over plain http), and the storage accounts the test names (AZURITE_ACCOUNTS), so a
 * client holding only a TokenCredential works as it does against Azure.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TokenCredential } from "@azure/core-auth";
import { BlobServiceClient, type StoragePipelineOptions } from "@azure/storage-blob";
import { FAKE_TENANT_ID } from "./arm-models";
import { spawnAzurite } from "../../azurite-process";
import { localCertificate } from "./tls";

export interface Azurite {
  /** https://127.0.0.1:<port>; an account's blob endpoint is `<origin>/<account>/` (path style). */
  origin: string;
  /** The CA a client must trust (the ARM fake's too). */
  ca: string;
  blobEndpoint(account: string): string;
  /** A blob service client of an account, authenticated as `tokenCredential` is. */
  service(account: string): BlobServiceClient;
  stop(): Promise<void>;
}

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

/**
 * Tokens azurite's basic OAuth accepts: a JWT from an Entra ID issuer for the scope's audience, valid
 * now (it checks no signature). The ARM fake only wants a bearer token, so one credential serves both.
 */
export const tokenCredential: TokenCredential = {
  getToken: async (scopes) => {
    const scope = [scopes].flat()[0] ?? "https://management.azure.com/.default";
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      aud: scope.replace(/\/\.default$/, ""),
      iss: `https://sts.windows.net/${FAKE_TENANT_ID}/`,
      tid: FAKE_TENANT_ID,
      iat: now - 60,
      nbf: now - 60,
      exp: now + 3600,
    };
    return {
      token: `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.unsigned`,
      expiresOnTimestamp: (now + 3600) * 1000,
    };
  },
};

/** Starts azurite-blob with the given storage accounts (each with a random key nobody uses). */
export async function startAzurite(options: { accounts?: string[] } = {}): Promise<Azurite> {
  const { key, cert } = localCertificate();
  const accounts = ["devstoreaccount1", ...(options.accounts ?? [])]
    .map((name) => `${name}:${randomBytes(64).toString("base64")}`)
    .join(";");
  const azurite = await spawnAzurite(
    (dir) => {
      writeFileSync(join(dir, "key.pem"), key, { mode: 0o600 });
      writeFileSync(join(dir, "cert.pem"), cert);
      return [
        ...["--cert", join(dir, "cert.pem"), "--key", join(dir, "key.pem"), "--oauth", "basic"],
        ...["--inMemoryPersistence", "--silent"],
      ];
    },
    { AZURITE_ACCOUNTS: accounts },
  );
  const origin = `https://127.0.0.1:${azurite.port}`;
  // tlsOptions is passed through to the core pipeline (StoragePipelineOptions does not declare it).
  const clientOptions: StoragePipelineOptions & { tlsOptions: { ca: string } } = { tlsOptions: { ca: cert } };
  return {
    origin,
    ca: cert,
    blobEndpoint: (account) => `${origin}/${account}/`,
    service: (account) => new BlobServiceClient(`${origin}/${account}`, tokenCredential, clientOptions),
    stop: azurite.stop,
  };
}
