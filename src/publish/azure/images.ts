/** The managed-image calls of Azure Resource Manager (@azure/arm-compute), each failure as one clear line. */
import type { TokenCredential } from "@azure/identity";
import { ComputeManagementClient, type Image } from "@azure/arm-compute";
import { ExitCode, KubebakeError } from "../../errors";
import { IMAGE_ID_TAG } from "./plan";

/**
 * The Compute API version @azure/arm-compute 22.1.0 speaks (pinned exactly in package.json: later majors
 * moved to 2025/2026 versions); the reference descriptions and the test fake are of this version too.
 */
export const COMPUTE_API_VERSION = "2024-07-01";

export interface ArmTarget {
  subscriptionId: string;
  resourceGroup: string;
  credential: TokenCredential;
  /** https://management.azure.com unless a sovereign cloud or a test says otherwise. */
  endpoint: string;
  /** A CA to trust for the endpoint (tests: the fake's self-signed certificate). */
  ca?: string;
  /** How long to wait between polls when ARM gives no Retry-After. */
  pollIntervalMs: number;
}

export class Images {
  private readonly client: ComputeManagementClient;

  constructor(private readonly target: ArmTarget) {
    this.client = new ComputeManagementClient(target.credential, target.subscriptionId, {
      endpoint: target.endpoint,
      ...(target.ca ? { tlsOptions: { ca: target.ca } } : {}),
    });
  }

  /** The image of the resource group tagged with this image id, if there is one. */
  async findByImageId(imageId: string, signal?: AbortSignal): Promise<Image | undefined> {
    return this.call("listing images", async () => {
      for await (const image of this.client.images.listByResourceGroup(this.target.resourceGroup, {
        abortSignal: signal,
      }))
        if (image.tags?.[IMAGE_ID_TAG] === imageId) return image;
      return undefined;
    });
  }

  /** Creates the image; If-None-Match: * so an unrelated image of the same name is never replaced. */
  async create(name: string, body: Image, signal?: AbortSignal): Promise<Image> {
    try {
      return await this.client.images.beginCreateOrUpdateAndWait(this.target.resourceGroup, name, body, {
        abortSignal: signal,
        updateIntervalInMs: this.target.pollIntervalMs,
        requestOptions: { customHeaders: { "If-None-Match": "*" } },
      });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 412)
        throw new KubebakeError(
          `Azure: an image named ${name} already exists in resource group ${this.target.resourceGroup} ` +
            `without this image id's ${IMAGE_ID_TAG} tag; kubebake does not replace it: remove or rename it`,
          ExitCode.unsafeState,
        );
      throw azureError(`creating image ${name} in resource group ${this.target.resourceGroup}`, error);
    }
  }

  async delete(name: string): Promise<void> {
    await this.call(`deleting image ${name}`, () =>
      this.client.images.beginDeleteAndWait(this.target.resourceGroup, name, {
        updateIntervalInMs: this.target.pollIntervalMs,
      }),
    );
  }

  private async call<T>(what: string, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (error) {
      throw azureError(`${what} in resource group ${this.target.resourceGroup}`, error);
    }
  }
}

/** One line from an Azure SDK error: what was being done, ARM's error code and the first line of its message. */
export function azureError(what: string, error: unknown): KubebakeError {
  if (error instanceof KubebakeError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string; name?: string };
  if (e.name === "AbortError") return new KubebakeError(`Azure: ${what}: interrupted`, ExitCode.cloudFailed);
  const code = e.code ?? (e.statusCode ? `HTTP ${e.statusCode}` : undefined);
  const message = String(e.message ?? error).split("\n")[0];
  return new KubebakeError(
    `Azure: ${what} failed: ${code ? `${code}: ` : ""}${message}`,
    ExitCode.cloudFailed,
  );
}
