/**
 * The whole AWS publish against moto: snapshot upload through the EBS direct API, AMI registration, a
 * republish that does nothing, an interrupted upload that leaves nothing, copies to more regions, sharing,
 * and the preflight errors. moto ignores ParentSnapshotId: the content of child snapshots is checked
 * against the strict model in blocks.test.ts; here the blocks sent are counted.
 */
import { GetSnapshotBlockCommand, type EBSClient } from "@aws-sdk/client-ebs";
import {
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
} from "@aws-sdk/client-ec2";
import { readFileSync } from "node:fs";
import { ExitCode, KubebakeError } from "../../../src/errors";
import { BLOCK_SIZE, type BlockDigests } from "../../../src/publish/blocks";
import { publishAws, publishClients, type PublishClients } from "../../../src/publish/aws";
import type { AwsPublishOptions } from "../../../src/publish/aws";
import { IMAGE_ID_TAG } from "../../../src/launch/aws/desired";
import { silentProgress } from "../../../src/util/progress";
import { tempDir } from "../../helpers";
import { credentials, REGION } from "../../aws/fixture";
import { startMoto, type Moto } from "../../aws/moto";
import { manifestFor, sparseDisk } from "./fixture";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
beforeEach(() => moto.reset());
const dir = tempDir("publish-moto");

interface Seen {
  call: string;
  input: Record<string, unknown>;
}

function clients(beforeCall?: (call: string, input: unknown) => void) {
  const seen: Seen[] = [];
  const made = publishClients({
    endpoint: moto.endpoint,
    credentials,
    beforeCall: (call, input) => {
      seen.push({ call, input: input as Record<string, unknown> });
      beforeCall?.(call, input);
    },
  });
  return { made, seen, count: (call: string) => seen.filter((s) => s.call === call).length };
}

async function publish(
  made: PublishClients,
  disk: string,
  version: string,
  extra: Partial<AwsPublishOptions> & { signal?: AbortSignal; recorded?: BlockDigests[] } = {},
) {
  const manifest = manifestFor(disk, version);
  const images = await publishAws(
    { disk, manifest, progress: silentProgress, signal: extra.signal },
    {
      clients: made,
      region: REGION,
      regions: [],
      shareWith: [],
      pollMs: 5,
      sleep: async () => {},
      knownDigests: extra.recorded,
      recordDigests: (d) => void extra.recorded?.push(d),
      ...extra,
    },
  );
  return { images, manifest };
}

async function amisOf(made: PublishClients, imageId: string, region = REGION) {
  const answer = await made.inRegion(region).ec2.send(
    new DescribeImagesCommand({
      Owners: ["self"],
      Filters: [{ Name: `tag:${IMAGE_ID_TAG}`, Values: [imageId] }],
    }),
  );
  return answer.Images ?? [];
}

async function snapshotsOf(made: PublishClients, imageId: string) {
  const answer = await made.inRegion(REGION).ec2.send(
    new DescribeSnapshotsCommand({
      OwnerIds: ["self"],
      Filters: [{ Name: `tag:${IMAGE_ID_TAG}`, Values: [imageId] }],
    }),
  );
  return answer.Snapshots ?? [];
}

const FILLED = { 0: "mbr", 1: "gpt", 10: "esp", 11: "esp2", 30: "root", 31: "root2", 60: "tail", 79: "last" };

test("a sparse disk becomes a snapshot of its non-zero blocks and a UEFI/ENA/gp3 AMI tagged with the image id", async () => {
  const { made, seen, count } = clients();
  const disk = sparseDisk(dir, "first.raw", 40, FILLED);
  const { images, manifest } = await publish(made, disk, "v1", { encrypted: true });

  expect(count("EBS:PutSnapshotBlock")).toBe(Object.keys(FILLED).length);
  expect(seen.find((s) => s.call === "EBS:StartSnapshot")!.input.Encrypted).toBe(true);
  const complete = seen.find((s) => s.call === "EBS:CompleteSnapshot")!.input;
  expect(complete.ChangedBlocksCount).toBe(Object.keys(FILLED).length);

  const amis = await amisOf(made, manifest.imageId);
  expect(amis).toHaveLength(1);
  expect(images).toEqual([
    {
      builder_type: "kubebake-aws-ebs",
      artifact_id: `${REGION}:${amis[0]!.ImageId}`,
      build_time: expect.any(Number),
      custom_data: expect.objectContaining({ imageId: manifest.imageId, diskSha256: manifest.disk!.sha256 }),
    },
  ]);
  const register = seen.find((s) => s.call === "EC2:RegisterImage" && !s.input.DryRun)!.input;
  const snapshotId = images[0]!.custom_data.snapshotId!;
  expect(register).toMatchObject({
    Architecture: "x86_64",
    BootMode: "uefi",
    EnaSupport: true,
    BlockDeviceMappings: [{ Ebs: { SnapshotId: snapshotId, VolumeType: "gp3", VolumeSize: 1 } }],
  });
  expect(JSON.stringify(register.TagSpecifications)).toContain(manifest.imageId);

  // Every block moto stored is the disk's.
  const content = readFileSync(disk);
  for (const index of Object.keys(FILLED).map(Number)) {
    const ebs = made.inRegion(REGION).ebs as EBSClient;
    const block = await ebs.send(
      new GetSnapshotBlockCommand({ SnapshotId: snapshotId, BlockIndex: index, BlockToken: "any" }),
    );
    const bytes = Buffer.from(await block.BlockData!.transformToByteArray());
    expect(bytes.equals(content.subarray(index * BLOCK_SIZE, (index + 1) * BLOCK_SIZE))).toBe(true);
  }
});

test("republishing the same image id uploads nothing and registers nothing; a small change uploads only its blocks", async () => {
  const recorded: BlockDigests[] = [];
  const disk = sparseDisk(dir, "v1.raw", 40, FILLED);
  const first = await publish(clients().made, disk, "v1", { recorded });

  const again = clients();
  const second = await publish(again.made, disk, "v1", { recorded });
  expect(again.seen.filter((s) => s.call.startsWith("EBS:"))).toEqual([]);
  expect(again.count("EC2:RegisterImage")).toBe(1); // the preflight's DryRun only
  expect(second.images[0]!.artifact_id).toBe(first.images[0]!.artifact_id);
  expect(await amisOf(again.made, first.manifest.imageId)).toHaveLength(1);

  const changed = sparseDisk(dir, "v2.raw", 40, { ...FILLED, 30: "root-v2", 45: "new" });
  const next = clients();
  const third = await publish(next.made, changed, "v2", { recorded });
  expect(next.count("EBS:PutSnapshotBlock")).toBe(2);
  const start = next.seen.find((s) => s.call === "EBS:StartSnapshot")!.input;
  expect(start.ParentSnapshotId).toBe(first.images[0]!.custom_data.snapshotId);
  expect("Encrypted" in start && start.Encrypted !== undefined).toBe(false); // the account's default
  expect(third.images[0]!.artifact_id).not.toBe(first.images[0]!.artifact_id);
});

test.each([
  ["interrupted (AbortSignal)", "abort"],
  ["a failed block", "fail"],
])("an upload %s half way leaves no snapshot and no AMI, and the rerun completes", async (_, how) => {
  const disk = sparseDisk(dir, "cut.raw", 40, FILLED);
  const controller = new AbortController();
  let blocks = 0;
  const cut = clients((call) => {
    if (call !== "EBS:PutSnapshotBlock" || ++blocks !== 4) return;
    if (how === "abort") controller.abort();
    else throw Object.assign(new Error("simulated"), { name: "InternalServerException", $metadata: {} });
  });
  const attempt = publish(cut.made, disk, "v1", { signal: controller.signal, concurrency: 2 });
  await expect(attempt).rejects.toThrow();
  const imageId = manifestFor(disk, "v1").imageId;
  expect(cut.count("EC2:DeleteSnapshot")).toBe(1);
  expect(await snapshotsOf(cut.made, imageId)).toEqual([]);
  expect(await amisOf(cut.made, imageId)).toEqual([]);
  if (how === "fail") await expect(attempt).rejects.toThrow(/EBS:PutSnapshotBlock@eu-west-1 failed/);

  const rerun = clients();
  await publish(rerun.made, disk, "v1");
  expect(rerun.count("EBS:PutSnapshotBlock")).toBe(Object.keys(FILLED).length);
  expect(await amisOf(rerun.made, imageId)).toHaveLength(1);
  expect(await snapshotsOf(rerun.made, imageId)).toHaveLength(1);
});

test("a snapshot left by a killed publish is deleted by the next one", async () => {
  const disk = sparseDisk(dir, "killed.raw", 40, FILLED);
  const imageId = manifestFor(disk, "v1").imageId;
  // The process died before it could clean up: its snapshot survives, pending.
  const killed = clients((call) => {
    if (call === "EC2:DeleteSnapshot") throw Object.assign(new Error("killed"), { name: "Killed" });
    if (call === "EBS:PutSnapshotBlock")
      throw Object.assign(new Error("cut"), { name: "Cut", $metadata: {} });
  });
  await expect(publish(killed.made, disk, "v1")).rejects.toThrow();
  expect(await snapshotsOf(killed.made, imageId)).toHaveLength(1);
  const rerun = clients();
  await publish(rerun.made, disk, "v1");
  expect(rerun.count("EC2:DeleteSnapshot")).toBe(1);
  expect(await snapshotsOf(rerun.made, imageId)).toHaveLength(1);
});

test("--regions copies the AMI with its tags, --share-with grants launch permission; both idempotent", async () => {
  const disk = sparseDisk(dir, "regions.raw", 40, FILLED);
  const options = { regions: ["eu-west-2", "us-east-1"], shareWith: ["111122223333"] };
  const { made } = clients();
  const { images, manifest } = await publish(made, disk, "v1", options);
  expect(images.map((i) => i.artifact_id.split(":")[0])).toEqual([REGION, "eu-west-2", "us-east-1"]);
  for (const image of images) {
    const [region, ami] = image.artifact_id.split(":") as [string, string];
    expect((await amisOf(made, manifest.imageId, region)).map((i) => i.ImageId)).toEqual([ami]);
    const permission = await made
      .inRegion(region)
      .ec2.send(new DescribeImageAttributeCommand({ ImageId: ami, Attribute: "launchPermission" }));
    expect(permission.LaunchPermissions).toEqual([{ UserId: "111122223333" }]);
  }
  const again = clients();
  const second = await publish(again.made, disk, "v1", options);
  expect(second.images.map((i) => i.artifact_id)).toEqual(images.map((i) => i.artifact_id));
  expect(again.count("EC2:CopyImage") + again.count("EBS:StartSnapshot")).toBe(0);
});

describe("preflight: one line and the cloud-error exit code, before any upload", () => {
  const expectCloudError = async (run: Promise<unknown>, message: RegExp, seen: Seen[]) => {
    const error = (await run.catch((e: unknown) => e)) as KubebakeError;
    expect(error).toBeInstanceOf(KubebakeError);
    expect(error.exitCode).toBe(ExitCode.cloudFailed);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain("\n");
    expect(seen.filter((s) => s.call.startsWith("EBS:"))).toEqual([]);
  };
  const disk = () => sparseDisk(dir, "preflight.raw", 8, { 0: "x" });

  test("a region that does not exist", async () => {
    const { made, seen } = clients();
    await expectCloudError(
      publish(made, disk(), "v1", { region: "eu-wset-1" }),
      /--region eu-wset-1: .*did you mean "eu-west-1"/,
      seen,
    );
    await expectCloudError(publish(made, disk(), "v1", { regions: ["mars-1"] }), /--regions mars-1/, seen);
  });

  test("no credentials", async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_SHARED_CREDENTIALS_FILE: `${dir}/none`,
      AWS_CONFIG_FILE: `${dir}/none`,
      AWS_EC2_METADATA_DISABLED: "true",
    });
    for (const key of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"])
      delete process.env[key];
    try {
      const seen: Seen[] = [];
      const made = publishClients({
        endpoint: moto.endpoint,
        beforeCall: (call, input) => seen.push({ call, input: input as Record<string, unknown> }),
      });
      await expectCloudError(publish(made, disk(), "v1"), /^no AWS credentials/, seen);
    } finally {
      process.env = saved;
    }
  });

  test("an account that may not register images", async () => {
    const { made, seen } = clients((call, input) => {
      if (call === "EC2:RegisterImage" && (input as { DryRun?: boolean }).DryRun)
        throw Object.assign(new Error("You are not authorized to perform this operation."), {
          name: "UnauthorizedOperation",
          $metadata: { httpStatusCode: 403 },
        });
    });
    await expectCloudError(
      publish(made, disk(), "v1"),
      /may not register AMIs .*UnauthorizedOperation/,
      seen,
    );
  });
});
