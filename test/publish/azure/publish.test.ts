import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Manifest } from "../../../src/bake/manifest";
import { ExitCode, KubebakeError } from "../../../src/errors";
import { publishAzure, type AzurePublishOptions } from "../../../src/publish/azure";
import { azureImagePlan, IMAGE_ID_TAG } from "../../../src/publish/azure/plan";
import { vhdFooter } from "../../../src/publish/azure/vhd";
import { silentProgress } from "../../../src/util/progress";
import { startComputeFake, type ComputeFake } from "../../fakes/azure/compute";
import { startAzurite, type Azurite } from "./azurite";

const MiB = 1024 * 1024;
const SUBSCRIPTION = "00000000-1111-2222-3333-444444444444";
const RG = "rg-images";
const credential = {
  getToken: async () => ({ token: "test-token", expiresOnTimestamp: Date.now() + 3600_000 }),
};

/** Non-zero regions of the synthetic disk: a boot sector, a run across a 4 MiB boundary, a 9 MiB run
 * (more than one Put Page), a lone sector, and a last partial sector (the disk is not a whole MiB). */
const RAW_SIZE = 40 * MiB + 1000;
const REGIONS: [number, number][] = [
  [0, 1024],
  [4 * MiB - 1536, 4 * MiB + 2048],
  [10 * MiB + 512, 19 * MiB + 512],
  [30 * MiB + 4096, 30 * MiB + 4608],
  [40 * MiB + 512, RAW_SIZE],
];

let azurite: Azurite;
let compute: ComputeFake;
let dir: string;
let disk: string;
let container: string;
let runs = 0;

function syntheticDisk(path: string): Buffer {
  truncateSync(openAndClose(path), RAW_SIZE);
  const fd = openSync(path, "r+");
  for (const [start, end] of REGIONS) {
    const data = Buffer.alloc(end - start);
    for (let i = 0; i < data.length; i++) data[i] = ((start + i) * 31 + 7) % 251 || 1;
    writeSync(fd, data, 0, data.length, start);
  }
  closeSync(fd);
  return readFileSync(path);
}
const openAndClose = (path: string) => (closeSync(openSync(path, "w")), path);

const manifest = (imageId: string): Manifest =>
  ({
    imageId,
    name: "kubebake-node",
    arch: "amd64",
    disk: { format: "raw", file: "disk.raw", sha256: "d".repeat(64), size: RAW_SIZE, baseLayer: "x" },
  }) as Manifest;

const options = (extra: Partial<AzurePublishOptions> = {}): AzurePublishOptions => ({
  subscriptionId: SUBSCRIPTION,
  resourceGroup: RG,
  location: "westeurope",
  storageAccount: azurite.account,
  container,
  credential,
  endpoints: { resourceManager: compute.fake.endpoint, blob: azurite.blobUrl, ca: compute.fake.ca },
  storageKey: azurite.key,
  pollIntervalMs: 10,
  ...extra,
});

const publish = (imageId: string, extra?: Partial<AzurePublishOptions>) =>
  publishAzure({ disk, manifest: manifest(imageId), progress: silentProgress }, options(extra));

const blobNames = async (name = container) => {
  const client = azurite.service.getContainerClient(name);
  if (!(await client.exists())) return undefined;
  const names: string[] = [];
  for await (const blob of client.listBlobsFlat()) names.push(blob.name);
  return names;
};

/** Adjacent ranges as one: Put Page calls split at 4 MiB, the service may or may not join them. */
const merged = (ranges: number[][]) =>
  ranges.reduce<number[][]>((out, [start, end]) => {
    const last = out[out.length - 1];
    if (last && last[1] === start) last[1] = end!;
    else out.push([start!, end!]);
    return out;
  }, []);

const imageWrites = () => compute.fake.log.filter((r) => r.method !== "GET");

let raw: Buffer;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kubebake-azure-publish-"));
  disk = join(dir, "disk.raw");
  raw = syntheticDisk(disk);
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  compute = await startComputeFake();
  container = `vhds${++runs}`;
});
afterEach(async () => {
  expect(compute.fake.violations).toEqual([]);
  await compute.fake.stop();
});

const imageId = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

test("the VHD blob is the padded disk plus the footer, byte for byte, written only where the disk is not zero", async () => {
  const id = imageId(1);
  const [published] = await publish(id, { keepBlob: true });
  const plan = azureImagePlan(manifest(id));
  const blob = azurite.service.getContainerClient(container).getPageBlobClient(plan.blobName);
  const vhd = await blob.downloadToBuffer();
  const dataSize = 41 * MiB;
  expect(vhd.length).toBe(dataSize + 512);
  const expected = Buffer.concat([raw, Buffer.alloc(dataSize - raw.length), vhdFooter(dataSize, id)]);
  expect(vhd.equals(expected)).toBe(true);

  // Get Page Ranges: the written ranges are exactly the non-zero sectors (merged) and the footer.
  const ranges = (await blob.getPageRanges()).pageRange ?? [];
  // The SDK reports the service's inclusive end as count = end - start.
  const written = merged(ranges.map((r) => [r.offset, r.offset + r.count! + 1]));
  const sector = (n: number) => Math.floor(n / 512) * 512;
  const up = (n: number) => Math.ceil(n / 512) * 512;
  const expectedRanges = [...REGIONS.map(([s, e]) => [sector(s), up(e)]), [dataSize, dataSize + 512]];
  expect(written).toEqual(expectedRanges);
  expect(published!.custom_data).toMatchObject({ imageId: id, diskSha256: "d".repeat(64) });
});

test("the managed image is made from the blob: Hyper-V gen 2, Linux, generalized, tagged; the blob removed", async () => {
  const id = imageId(2);
  const [published] = await publish(id);
  const plan = azureImagePlan(manifest(id));
  const imagePath = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.Compute/images/${plan.imageName}`;
  expect(published).toMatchObject({ builder_type: "azure-arm", artifact_id: imagePath });
  const image = compute.store.get(imagePath)!.resource;
  expect(image).toMatchObject({
    location: "westeurope",
    tags: { [IMAGE_ID_TAG]: id },
    properties: {
      provisioningState: "Succeeded",
      hyperVGeneration: "V2",
      storageProfile: {
        osDisk: {
          osType: "Linux",
          osState: "Generalized",
          blobUri: `${azurite.blobUrl}/${container}/${plan.blobName}`,
        },
      },
    },
  });
  expect(await blobNames()).toEqual([]);
  expect(imageWrites().map((r) => r.operationId)).toEqual(["Images_CreateOrUpdate"]);
});

test("republishing the same image id uploads nothing and changes nothing", async () => {
  const id = imageId(3);
  const [first] = await publish(id);
  const logged = compute.fake.log.length;
  container = `vhds${++runs}`; // a container the second run would have to create to upload anything
  const [second] = await publish(id);
  expect(second!.artifact_id).toBe(first!.artifact_id);
  expect(await blobNames()).toBeUndefined();
  expect(compute.fake.log.slice(logged).map((r) => r.operationId)).toEqual(["Images_ListByResourceGroup"]);
});

test("a failure while creating the image removes the blob and the failed image; one clear line", async () => {
  compute.images.checkCreate = () => ({
    status: "Failed",
    error: { code: "InvalidParameter", message: "The blob is not a valid VHD." },
  });
  const error = await publish(imageId(4)).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(KubebakeError);
  expect((error as KubebakeError).exitCode).toBe(ExitCode.cloudFailed);
  expect((error as KubebakeError).message).toBe(
    `Azure: creating image ${azureImagePlan(manifest(imageId(4))).imageName} in resource group ${RG} failed: ` +
      "The long-running operation has failed. InvalidParameter. The blob is not a valid VHD.",
  );
  expect((error as KubebakeError).message).not.toContain("\n");
  expect(await blobNames()).toEqual([]);
  expect(compute.store.all()).toEqual([]);
});

test("an unrelated image with the same name is never replaced (If-None-Match), and the blob is removed", async () => {
  const id = imageId(5);
  const plan = azureImagePlan(manifest(id));
  const imagePath = `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RG}/providers/Microsoft.Compute/images/${plan.imageName}`;
  compute.store.put({
    id: imagePath,
    name: plan.imageName,
    location: "westeurope",
    properties: { provisioningState: "Succeeded" },
  });
  const error = (await publish(id).catch((e: unknown) => e)) as KubebakeError;
  expect(error.exitCode).toBe(ExitCode.unsafeState);
  expect(error.message).toBe(
    `Azure: an image named ${plan.imageName} already exists in resource group ${RG} without this image id's ` +
      `${IMAGE_ID_TAG} tag; kubebake does not replace it: remove or rename it`,
  );
  expect(compute.store.get(imagePath)!.resource.tags).toBeUndefined();
  expect(await blobNames()).toEqual([]);
});

test("missing credentials: one line with the cloud-error code, before any call or upload", async () => {
  const failing = {
    getToken: async () => {
      throw new Error(
        "DefaultAzureCredential failed to retrieve a token.\n- EnvironmentCredential is unavailable.",
      );
    },
  };
  const error = (await publish(imageId(6), { credential: failing }).catch(
    (e: unknown) => e,
  )) as KubebakeError;
  expect(error).toBeInstanceOf(KubebakeError);
  expect(error.exitCode).toBe(ExitCode.cloudFailed);
  expect(error.message).toMatch(
    /^Azure: no usable credentials \(DefaultAzureCredential failed to retrieve a token\.\); sign in/,
  );
  expect(compute.fake.log).toEqual([]);
  expect(await blobNames()).toBeUndefined();
});

test("throttled ARM calls are retried after Retry-After", async () => {
  compute.fake.throttle("Images_ListByResourceGroup", 1, 1);
  compute.fake.throttle("Images_CreateOrUpdate", 1, 1);
  await publish(imageId(7));
  const statuses = compute.fake.log.filter((r) => r.operationId).map((r) => `${r.operationId} ${r.status}`);
  expect(statuses.slice(0, 2)).toEqual(["Images_ListByResourceGroup 429", "Images_ListByResourceGroup 200"]);
  expect(statuses).toEqual(
    expect.arrayContaining(["Images_CreateOrUpdate 429", "Images_CreateOrUpdate 201"]),
  );
  expect(compute.store.all()).toHaveLength(1);
});
