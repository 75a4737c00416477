/**
 * What publishing a bake to Azure creates, as plain data: names, the blob, the managed image's body.
 * Printable and testable without any cloud.
 */
import type { Manifest } from "../../bake/manifest";

/** The tag that finds a managed image from a bake manifest's imageId (the same key as the AWS AMI tag). */
export const IMAGE_ID_TAG = "kubebake:image-id";

export interface AzureImagePlan {
  imageName: string;
  blobName: string;
  tags: Record<string, string>;
}

/** Azure image names: 1–80 letters, digits, '-', '_', '.'; the bake's name plus the image id's first hex. */
export function azureImagePlan(manifest: Manifest): AzureImagePlan {
  const hex = manifest.imageId.replace(/^sha256:/, "").slice(0, 16);
  const imageName = `${manifest.name}-${hex}`.replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 80);
  return {
    imageName,
    blobName: `${imageName}.vhd`,
    tags: {
      [IMAGE_ID_TAG]: manifest.imageId,
      "kubebake:name": manifest.name,
      "kubebake:arch": manifest.arch,
    },
  };
}

/** The managed image: a generalized Linux OS disk from the VHD blob, booted with UEFI (Hyper-V gen 2). */
export function imageBody(plan: AzureImagePlan, location: string, blobUri: string) {
  return {
    location,
    tags: plan.tags,
    hyperVGeneration: "V2" as const,
    storageProfile: {
      osDisk: {
        osType: "Linux" as const,
        osState: "Generalized" as const,
        blobUri,
        caching: "ReadWrite" as const,
      },
    },
  };
}
