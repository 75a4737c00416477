/**
 * `--target azure`: the options and a token checked before the bake; the VHD upload and the managed image
 * after it.
 */
import { readFileSync } from "node:fs";
import type { TokenCredential } from "@azure/identity";
import { invalidInput } from "../errors";
import type { AzurePublishOptions } from "../publish/azure";
import { publishStep, required, type PublishStep } from "./publish";

export interface AzurePublishArgs {
  subscription?: string;
  resourceGroup?: string;
  location?: string;
  storageAccount?: string;
  container: string;
  keepBlob?: boolean;
}

export async function prepareAzure(args: AzurePublishArgs): Promise<PublishStep> {
  const subscriptionId = required(args.subscription, "subscription", "azure", ["AZURE_SUBSCRIPTION_ID"]);
  const resourceGroup = required(args.resourceGroup, "resource-group", "azure");
  const location = required(args.location, "location", "azure");
  const storageAccount = required(args.storageAccount, "storage-account", "azure");
  const { publishAzure, checkCredential, defaultCredential } = await import("../publish/azure");
  const endpoints = testEndpoints();
  const credential = (endpoints && testCredential()) || (await defaultCredential());
  await checkCredential(credential, endpoints?.resourceManager ?? "https://management.azure.com");
  const options: AzurePublishOptions = {
    subscriptionId,
    resourceGroup,
    location,
    storageAccount,
    container: args.container,
    keepBlob: args.keepBlob,
    credential,
    endpoints,
    storageKey: await sharedKey(storageAccount),
    pollIntervalMs: Number(process.env.KUBEBAKE_POLL_MS) || undefined,
  };
  return publishStep((request) => publishAzure(request, options));
}

/** AZURE_STORAGE_KEY (as the az CLI reads it): the account's key for the upload, instead of Azure AD. */
async function sharedKey(account: string) {
  const key = process.env.AZURE_STORAGE_KEY;
  if (!key) return undefined;
  const { StorageSharedKeyCredential } = await import("@azure/storage-blob");
  return new StorageSharedKeyCredential(account, key);
}

/**
 * Test hook: KUBEBAKE_AZURE_ENDPOINTS='{"resourceManager":"https://…","blob":"http://…","caFile":"…"}'
 * points the publish at a local ARM fake (its CA in caFile) and azurite.
 */
function testEndpoints(): AzurePublishOptions["endpoints"] {
  const raw = process.env.KUBEBAKE_AZURE_ENDPOINTS;
  if (!raw) return undefined;
  try {
    const { resourceManager, blob, caFile } = JSON.parse(raw) as Record<string, string>;
    return {
      resourceManager: String(new URL(resourceManager!)).replace(/\/$/, ""),
      blob: String(new URL(blob!)).replace(/\/$/, ""),
      ca: caFile ? readFileSync(caFile, "utf8") : undefined,
    };
  } catch {
    throw invalidInput(
      'KUBEBAKE_AZURE_ENDPOINTS: expected {"resourceManager":"https://HOST:PORT","blob":"http://HOST:PORT/ACCOUNT","caFile":"PATH"}',
    );
  }
}

/** Test hook, honoured only with KUBEBAKE_AZURE_ENDPOINTS: a fixed bearer token instead of real credentials. */
function testCredential(): TokenCredential | undefined {
  const token = process.env.KUBEBAKE_AZURE_TEST_TOKEN;
  if (!token) return undefined;
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }) };
}
