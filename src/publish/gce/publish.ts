import { GlobalOperationsClient, ImagesClient } from "@google-cloud/compute";
import { mkdtemp, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ExitCode, invalidInput, KubebakeError } from "../../errors";
import { removeOnExit } from "../../util/cleanup";
import type { PublishedImage, PublishRequest } from "../types";
import { applicationDefaultCredentials, headersOf, type GceAuthClient } from "./auth";
import { digestLabel, IMAGE_ID_LABEL, planImage, type ImagePlan } from "./names";
import { checkBucket, deleteObject, uploadResumable, type StorageClient } from "./storage";
import { writeGceTarball } from "./tarball";

export interface GcePublishOptions {
  project: string;
  /** The bucket the archive is uploaded to for the import, and deleted from afterwards. */
  bucket: string;
  /** The image family; the manifest's image name when absent. */
  family?: string;
  /** Credentials; Application Default Credentials when absent. */
  authClient?: GceAuthClient;
  /** Local endpoints (tests): Compute Engine's host and port over http, Cloud Storage's base URL. */
  endpoints?: { compute: { host: string; port: number }; storage: string };
  /** Upload chunk size, a multiple of 256 KiB. */
  chunkSize?: number;
  /** Wait before retry n of a chunk (ms). */
  backoff?: (attempt: number) => number;
  /** Where the archive is written while it uploads (the disk's folder when absent). */
  workDir?: string;
}

/**
 * Publishes the raw disk as a Compute Engine image: a sparse gzip'd tar in Cloud Storage, imported by
 * images.insert, the archive deleted afterwards whatever happens. An image already labelled with this
 * image id means nothing to do.
 */
export async function publishGce(
  request: PublishRequest,
  options: GcePublishOptions,
): Promise<PublishedImage[]> {
  const { manifest, progress, signal } = request;
  if (!manifest.disk)
    throw invalidInput(`the manifest of ${manifest.imageId} has no disk: bake with --target raw`);
  if (!options.project) throw invalidInput("GCE publish: a project is needed (--project)");
  if (!options.bucket) throw invalidInput("GCE publish: a Cloud Storage bucket is needed (--bucket)");
  const plan = planImage(manifest, options);
  const auth = options.authClient ?? (await applicationDefaultCredentials());
  const compute = computeClients(auth, options);
  const storage: StorageClient = {
    baseUrl: options.endpoints?.storage ?? "https://storage.googleapis.com",
    headers: () => headersOf(auth),
    signal,
  };

  // Everything that can be refused is asked before the upload: the bucket, then the project's images.
  await checkBucket(storage, plan.bucket);
  const existing = await findImage(compute.images, options.project, manifest.imageId);
  if (existing) {
    progress.step(`GCE image ${existing.name} already holds ${manifest.imageId}: nothing to publish`);
    return [
      published(plan, options.project, manifest.imageId, manifest.disk.sha256, existing.creationTimestamp),
    ];
  }

  const work = await mkdtemp(join(options.workDir ?? dirname(request.disk), ".kubebake-gce-"));
  const forgetWork = removeOnExit(work);
  let uploaded = false;
  try {
    progress.step(`GCE: archiving ${request.disk} as disk.raw (sparse GNU tar, gzip)`);
    const archive = join(work, "disk.tar.gz");
    const size = await writeGceTarball(request.disk, archive, signal);
    progress.step(`GCE: uploading ${mib(size)} to gs://${plan.bucket}/${plan.object}`);
    uploaded = true; // from here an object may exist, even if the upload fails half way
    await uploadResumable(storage, {
      bucket: plan.bucket,
      object: plan.object,
      file: archive,
      contentType: "application/gzip",
      chunkSize: options.chunkSize,
      backoff: options.backoff,
      onProgress: percentSteps(progress.info, size),
    });
    progress.step(`GCE: creating image ${plan.name} (family ${plan.family})`);
    await createImage(compute, options.project, plan);
    return [published(plan, options.project, manifest.imageId, manifest.disk.sha256)];
  } finally {
    await rm(work, { recursive: true, force: true });
    forgetWork();
    // The archive is only the import's input: gone on success and on failure (with a signal of its own,
    // so an interrupted publish still cleans up).
    if (uploaded) await deleteObject({ ...storage, signal: undefined }, plan.bucket, plan.object);
  }
}

interface ComputeClients {
  images: ImagesClient;
  operations: GlobalOperationsClient;
}

function computeClients(auth: GceAuthClient, options: GcePublishOptions): ComputeClients {
  const endpoint = options.endpoints?.compute;
  const settings = {
    authClient: auth as never,
    ...(endpoint ? { apiEndpoint: endpoint.host, port: endpoint.port, protocol: "http" } : {}),
  };
  return { images: new ImagesClient(settings), operations: new GlobalOperationsClient(settings) };
}

async function findImage(images: ImagesClient, project: string, imageId: string) {
  const filter = `labels.${IMAGE_ID_LABEL} = "${digestLabel(imageId)}"`;
  const [found] = await images
    .list({ project, filter })
    .catch(cloudFailure(`images.list in project ${project}`));
  return found.find((image) => String(image.status) === "READY");
}

async function createImage(compute: ComputeClients, project: string, plan: ImagePlan): Promise<void> {
  const what = `images.insert ${plan.name}`;
  const [started] = await compute.images
    .insert({ project, imageResource: plan.resource })
    .catch(cloudFailure(what));
  let operation = started.latestResponse as { name?: string | null; status?: unknown };
  // wait returns when the operation is DONE or after a while (two minutes on GCE): ask again until DONE.
  while (String(operation.status) !== "DONE") {
    [operation] = await compute.operations
      .wait({ project, operation: operation.name! })
      .catch(cloudFailure(`globalOperations.wait ${operation.name}`));
  }
  const errors = (operation as { error?: { errors?: { code?: string | null; message?: string | null }[] } })
    .error?.errors;
  if (errors?.length)
    throw new KubebakeError(
      `Compute Engine ${what} failed: ${errors.map((e) => `${e.code}: ${e.message}`).join("; ")}`,
      ExitCode.cloudFailed,
    );
}

const cloudFailure = (what: string) => (error: Error) => {
  throw new KubebakeError(
    `Compute Engine ${what} failed: ${error.message.split("\n")[0]}`,
    ExitCode.cloudFailed,
  );
};

function published(
  plan: ImagePlan,
  project: string,
  imageId: string,
  diskSha256: string,
  created?: string | null,
): PublishedImage {
  const time = created ? Date.parse(created) : Date.now();
  return {
    builder_type: "googlecompute",
    artifact_id: plan.name,
    build_time: Math.floor(time / 1000),
    custom_data: {
      imageId,
      diskSha256,
      project,
      family: plan.family,
      image: `projects/${project}/global/images/${plan.name}`,
    },
  };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** Upload progress in tenths, so a terminal gets ten lines, not one per chunk. */
function percentSteps(info: (message: string) => void, total: number) {
  let shown = -1;
  return (sent: number) => {
    const tenth = Math.floor((sent / Math.max(total, 1)) * 10);
    if (tenth === shown) return;
    shown = tenth;
    info(`uploaded ${mib(sent)} of ${mib(total)} (${tenth * 10}%)`);
  };
}
