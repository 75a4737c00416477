/**
 * azurite-blob (the official Azure Storage emulator) for a publish test file: plain http, in-memory storage,
 * the emulator's development account and key.
 */
import { spawnAzurite } from "../../azurite-process";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";

/** The emulator's fixed, publicly documented development account (not a secret). */
const ACCOUNT = "devstoreaccount1";
export const ACCOUNT_KEY =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface Azurite {
  /** The account's blob URL, e.g. http://127.0.0.1:PORT/devstoreaccount1 */
  blobUrl: string;
  account: string;
  key: StorageSharedKeyCredential;
  service: BlobServiceClient;
  stop(): Promise<void>;
}

export async function startAzurite(): Promise<Azurite> {
  const azurite = await spawnAzurite(() => ["--inMemoryPersistence", "--silent"]);
  const blobUrl = `http://127.0.0.1:${azurite.port}/${ACCOUNT}`;
  const key = new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY);
  return {
    blobUrl,
    account: ACCOUNT,
    key,
    service: new BlobServiceClient(blobUrl, key),
    stop: azurite.stop,
  };
}
