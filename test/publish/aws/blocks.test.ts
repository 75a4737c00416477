/**
 * The block selection against a strict model of the EBS direct API: every block of every snapshot, read
 * back through the model (own blocks, else the parent's, else zeros), must equal the disk it was made from.
 */
import { createHash } from "node:crypto";
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CompleteSnapshotCommand, PutSnapshotBlockCommand, StartSnapshotCommand } from "@aws-sdk/client-ebs";
import {
  BLOCK_SIZE,
  BLOCKS_PER_GIB,
  planUpload,
  readBlocks,
  type BlockDigests,
} from "../../../src/publish/blocks";
import { uploadSnapshot, type UploadResult } from "../../../src/publish/aws/upload";
import { EbsModel } from "../../fakes/aws/ebs-model";
import { tempDir } from "../../helpers";

const dir = tempDir("publish-blocks");
const sha = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** A sparse disk of `blocks` blocks: data (derived from `seed`) in the listed blocks, zeros elsewhere. */
function writeDisk(name: string, blocks: number, filled: Record<number, string>, tail = 0): string {
  const path = join(dir, name);
  writeFileSync(path, "");
  truncateSync(path, blocks * BLOCK_SIZE - tail);
  const buffer = readFileSync(path);
  for (const [index, seed] of Object.entries(filled)) {
    const block = Buffer.alloc(BLOCK_SIZE, 0);
    for (let i = 0; i < BLOCK_SIZE; i += 64) block.write(`${seed}:${i};`, i);
    block.copy(
      buffer,
      Number(index) * BLOCK_SIZE,
      0,
      Math.min(BLOCK_SIZE, buffer.length - Number(index) * BLOCK_SIZE),
    );
  }
  writeFileSync(path, buffer);
  return path;
}

async function upload(model: EbsModel, disk: string, parent?: { result: UploadResult }) {
  return uploadSnapshot({
    ebs: model,
    disk,
    diskSha256: sha(readFileSync(disk)),
    tags: { "kubebake:image-id": "test" },
    description: "test",
    parent: parent && {
      snapshotId: parent.result.snapshotId,
      volumeSizeGiB: parent.result.volumeSizeGiB,
      digests: parent.result.digests,
    },
    concurrency: 3,
    onStarted: () => {},
  });
}

/** Every block of the snapshot's volume equals the disk's block (zeros past the disk's end). */
function expectSnapshotHolds(model: EbsModel, result: UploadResult, disk: string) {
  const content = readFileSync(disk);
  for (let index = 0; index < result.volumeSizeGiB * BLOCKS_PER_GIB; index++) {
    const expected = Buffer.alloc(BLOCK_SIZE);
    const start = index * BLOCK_SIZE;
    if (start < content.length)
      content.copy(expected, 0, start, Math.min(content.length, start + BLOCK_SIZE));
    const actual = model.read(result.snapshotId, index);
    if (!actual.equals(expected))
      throw new Error(`block ${index} of ${result.snapshotId} differs from ${disk}`);
  }
}

const writtenIndices = (model: EbsModel, snapshotId: string) =>
  model.log
    .filter((e) => e.op === "PutSnapshotBlock" && e.snapshotId === snapshotId)
    .map((e) => e.blockIndex!)
    .sort((a, b) => a - b);

test("a fresh snapshot gets only the non-zero blocks; a child from it only the changed ones, zeros where data went", async () => {
  const model = new EbsModel();
  // 20 blocks, the last one partial (the disk is not a multiple of 512 KiB).
  const first = writeDisk("first.raw", 20, { 0: "a", 1: "b", 5: "c", 6: "d", 12: "e", 19: "f" }, 4096);
  const parent = await upload(model, first);
  expect(writtenIndices(model, parent.snapshotId)).toEqual([0, 1, 5, 6, 12, 19]);
  expect(parent.changedBlocksCount).toBe(6);
  expect(parent.stats.skipped).toBe(14);
  expectSnapshotHolds(model, parent, first);

  // Change block 1, zero block 5, add block 9, keep the rest.
  const second = writeDisk("second.raw", 20, { 0: "a", 1: "B", 6: "d", 9: "g", 12: "e", 19: "f" }, 4096);
  const child = await upload(model, second, { result: parent });
  expect(writtenIndices(model, child.snapshotId)).toEqual([1, 5, 9]);
  expect(child.changedBlocksCount).toBe(3);
  expectSnapshotHolds(model, child, second);

  // The pure plan agrees with what the upload did.
  const plan = planUpload(child.digests, { volumeSizeGiB: parent.volumeSizeGiB, digests: parent.digests });
  expect(plan).toEqual({ write: [1, 9], writeZeros: [5], changedBlocksCount: 3 });
});

test("a shorter disk on the same volume: the parent's blocks past its end are written as zeros", async () => {
  const model = new EbsModel();
  const long = writeDisk("long.raw", 30, { 2: "x", 25: "y", 29: "z" });
  const parent = await upload(model, long);
  const short = writeDisk("short.raw", 24, { 2: "x", 20: "w" });
  const child = await upload(model, short, { result: parent });
  expect(writtenIndices(model, child.snapshotId)).toEqual([20, 25, 29]);
  expectSnapshotHolds(model, child, short);
});

test("an unchanged disk makes an empty child; a disk identical but for one block makes one write", async () => {
  const model = new EbsModel();
  const disk = writeDisk("same.raw", 16, { 3: "p", 4: "q", 15: "r" });
  const parent = await upload(model, disk);
  const same = await upload(model, disk, { result: parent });
  expect(same.changedBlocksCount).toBe(0);
  expectSnapshotHolds(model, same, disk);
  const one = writeDisk("one.raw", 16, { 3: "p", 4: "Q", 15: "r" });
  const child = await upload(model, one, { result: same });
  expect(writtenIndices(model, child.snapshotId)).toEqual([4]);
  expectSnapshotHolds(model, child, one);
});

test("the digests a publish records are those of the disk's blocks, zero blocks left out", async () => {
  const disk = writeDisk("digests.raw", 8, { 1: "m", 7: "n" }, 1000);
  const blocks: BlockDigests["blocks"] = {};
  for await (const block of readBlocks(disk)) if (!block.zero) blocks[block.index] = block.sha256;
  const result = await upload(new EbsModel(), disk);
  expect(result.digests.blocks).toEqual(blocks);
  expect(Object.keys(blocks)).toEqual(["1", "7"]);
  // The last block is padded with zeros to the full block size.
  const content = readFileSync(disk);
  const last = Buffer.alloc(BLOCK_SIZE);
  content.copy(last, 0, 7 * BLOCK_SIZE);
  expect(blocks[7]).toBe(sha(last));
});

describe("the model is strict", () => {
  const started = async (model: EbsModel, VolumeSize = 1) =>
    ((await model.send(new StartSnapshotCommand({ VolumeSize }))) as { SnapshotId: string }).SnapshotId;
  const block = Buffer.alloc(BLOCK_SIZE, 7);
  const put = (
    SnapshotId: string,
    BlockIndex: number,
    Checksum = createHash("sha256").update(block).digest("base64"),
  ) =>
    new PutSnapshotBlockCommand({
      SnapshotId,
      BlockIndex,
      BlockData: block,
      DataLength: BLOCK_SIZE,
      Checksum,
      ChecksumAlgorithm: "SHA256",
    });

  test("wrong checksum, index out of range, a block twice, a wrong ChangedBlocksCount are refused", async () => {
    const model = new EbsModel();
    const id = await started(model);
    await expect(model.send(put(id, 0, "AAAA"))).rejects.toThrow(/checksum/);
    await expect(model.send(put(id, BLOCKS_PER_GIB))).rejects.toThrow(/outside the volume/);
    await model.send(put(id, BLOCKS_PER_GIB - 1));
    await expect(model.send(put(id, BLOCKS_PER_GIB - 1))).rejects.toThrow(/twice/);
    await expect(
      model.send(new CompleteSnapshotCommand({ SnapshotId: id, ChangedBlocksCount: 2 })),
    ).rejects.toThrow(/ChangedBlocksCount/);
  });

  test("a child reads its parent's blocks, and must not be smaller than it", async () => {
    const model = new EbsModel();
    const parent = await started(model, 2);
    await model.send(put(parent, 3));
    await model.send(new CompleteSnapshotCommand({ SnapshotId: parent, ChangedBlocksCount: 1 }));
    await expect(
      model.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: parent })),
    ).rejects.toThrow(/smaller/);
    const child = (
      (await model.send(new StartSnapshotCommand({ VolumeSize: 2, ParentSnapshotId: parent }))) as {
        SnapshotId: string;
      }
    ).SnapshotId;
    await model.send(new CompleteSnapshotCommand({ SnapshotId: child, ChangedBlocksCount: 0 }));
    expect(model.read(child, 3).equals(block)).toBe(true);
    expect(model.read(child, 4).equals(Buffer.alloc(BLOCK_SIZE))).toBe(true);
  });
});
