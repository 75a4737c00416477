/**
 * Publishes a baked raw disk to Azure as a managed image: a fixed VHD written into a page blob (only its
 * non-zero pages), a managed image made from the blob, then the blob removed. Republishing an image id
 * that already has an image in the resource group does nothing; a failure removes what was made.
 */
import { existsSync } from "node:fs";
import type { TokenCredential } from "@azure/identity";
import { StorageSharedKeyCredential, BlobServiceClient } from "@azure/storage-blob";
import { ExitCode, KubebakeError, invalidInput } from "../../errors";
import type { PublishedImage, PublishRequest } from "../types";
import { azureError, Images } from "./images";
import { azureImagePlan, imageBody, IMAGE_ID_TAG } from "./plan";
import { uploadVhd } from "./upload";

export interface AzurePublishOptions {
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  storageAccount: string;
  container: string;
  /** Azure AD credential for ARM and the blob service; DefaultAzureCredential when absent. */
  credential?: TokenCredential;
  /** Overrides for sovereign clouds and tests. */
  endpoints?: {
    /** ARM's base URL (https://management.azure.com). */
    resourceManager?: string;
    /** The storage account's blob URL (https://<account>.blob.core.windows.net). */
    blob?: string;
    /** A CA certificate to trust for resourceManager. */
    ca?: string;
  };
  /** A shared key for the blob service instead of the credential (the azurite emulator has no Azure AD). */
  storageKey?: StorageSharedKeyCredential;
  /** Keep the VHD blob after the image is made. */
  keepBlob?: boolean;
  /** Put Page calls in flight (default 4). */
  concurrency?: number;
  /** Poll interval of long-running ARM calls when ARM sends no Retry-After (default 5 s). */
  pollIntervalMs?: number;
}

const ARM = "https://management.azure.com";

export async function publishAzure(
  request: PublishRequest,
  options: AzurePublishOptions,
): Promise<PublishedImage[]> {
  const { manifest, progress, signal } = request;
  const diskSha256 = manifest.disk?.sha256;
  if (!diskSha256)
    throw invalidInput(`the manifest of ${manifest.imageId} has no disk: bake with --target raw`);
  if (!existsSync(request.disk)) throw invalidInput(`disk: ${request.disk} does not exist`);
  const plan = azureImagePlan(manifest);
  const armEndpoint = (options.endpoints?.resourceManager ?? ARM).replace(/\/$/, "");
  const credential = options.credential ?? (await defaultCredential());
  await checkCredential(credential, armEndpoint);

  const images = new Images({
    subscriptionId: options.subscriptionId,
    resourceGroup: options.resourceGroup,
    credential,
    endpoint: armEndpoint,
    ca: options.endpoints?.ca,
    pollIntervalMs: options.pollIntervalMs ?? 5000,
  });
  const published = (image: { id?: string }): PublishedImage[] => [
    {
      builder_type: "azure-arm",
      artifact_id: image.id ?? "",
      build_time: Math.floor(Date.now() / 1000),
      custom_data: {
        imageId: manifest.imageId,
        diskSha256,
        location: options.location,
        resourceGroup: options.resourceGroup,
        imageName: plan.imageName,
      },
    },
  ];

  const existing = await images.findByImageId(manifest.imageId, signal);
  if (existing?.provisioningState === "Succeeded") {
    progress.step(`${manifest.imageId} is already published as ${existing.id}: nothing to upload`);
    return published(existing);
  }
  // A leftover of an interrupted publish (Creating or Failed) is replaced, never reused.
  if (existing?.name) await images.delete(existing.name);

  const blobUrl = (
    options.endpoints?.blob ?? `https://${options.storageAccount}.blob.core.windows.net`
  ).replace(/\/$/, "");
  const service = new BlobServiceClient(blobUrl, options.storageKey ?? credential);
  const container = service.getContainerClient(options.container);
  const blob = container.getPageBlobClient(plan.blobName);
  let blobMade = false;
  try {
    await storage(`creating container ${options.container}`, () =>
      container.createIfNotExists({ abortSignal: signal }),
    );
    progress.step(`uploading ${request.disk} as ${plan.blobName} (fixed VHD, non-zero pages only)`);
    blobMade = true;
    await storage(`uploading ${plan.blobName}`, () =>
      uploadVhd({
        disk: request.disk,
        imageId: manifest.imageId,
        blob,
        concurrency: options.concurrency ?? 4,
        progress,
        signal,
      }),
    );
    progress.step(`creating managed image ${plan.imageName} in ${options.resourceGroup}`);
    const image = await createImage(
      images,
      plan.imageName,
      imageBody(plan, options.location, blob.url),
      signal,
    );
    progress.step(`published ${manifest.imageId} as ${image.id}`);
    return published(image);
  } finally {
    if (blobMade && !options.keepBlob) await blob.deleteIfExists().catch(() => undefined);
  }
}

/** Creates the image; if that fails, a Failed image left in the resource group is removed too. */
async function createImage(
  images: Images,
  name: string,
  body: ReturnType<typeof imageBody>,
  signal?: AbortSignal,
) {
  try {
    return await images.create(name, body, signal);
  } catch (error) {
    const mine = await images.findByImageId(body.tags[IMAGE_ID_TAG]!).catch(() => undefined);
    if (mine?.name === name) await images.delete(name).catch(() => undefined);
    throw error;
  }
}

async function storage<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    throw azureError(what, error);
  }
}

export async function defaultCredential(): Promise<TokenCredential> {
  const { DefaultAzureCredential } = await import("@azure/identity");
  return new DefaultAzureCredential();
}

/** A token before anything else, so missing credentials cost one line and no half-made upload. */
export async function checkCredential(credential: TokenCredential, armEndpoint: string): Promise<void> {
  try {
    const token = await credential.getToken(`${armEndpoint}/.default`);
    if (!token) throw new Error("no token");
  } catch (error) {
    const reason = String((error as Error).message ?? error).split("\n")[0];
    throw new KubebakeError(
      `Azure: no usable credentials (${reason}); sign in with 'az login', or set AZURE_TENANT_ID, ` +
        `AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run with a managed identity`,
      ExitCode.cloudFailed,
    );
  }
}
