/**
 * A raw disk into a new EBS snapshot through the EBS direct API: StartSnapshot, PutSnapshotBlock for each
 * block the snapshot would otherwise read wrong (several in flight), CompleteSnapshot with their count.
 * Reads the disk once; the block digests it computes are the record a later publish diffs against.
 */
import {
  CompleteSnapshotCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  type Tag,
} from "@aws-sdk/client-ebs";
import { randomUUID } from "node:crypto";
import { stat } from "node:fs/promises";
import {
  BLOCK_DIGESTS_KIND,
  BLOCK_SIZE,
  blockAction,
  describeBlock,
  readBlocks,
  trailingParentBlocks,
  volumeSizeGiB,
  type BlockDigests,
  type ParentContent,
} from "../blocks";

/** The EBS client surface used here (an EBSClient, or a model of it in tests). */
export interface EbsSender {
  send(
    command: StartSnapshotCommand | PutSnapshotBlockCommand | CompleteSnapshotCommand,
    options?: { abortSignal?: AbortSignal },
  ): Promise<unknown>;
}

export interface UploadOptions {
  ebs: EbsSender;
  disk: string;
  diskSha256: string;
  tags: Record<string, string>;
  description: string;
  /** The snapshot to start from, with the digests of the disk it holds. */
  parent?: ParentContent & { snapshotId: string };
  /** Explicit encryption; undefined leaves it to the account's default (and the parent's). */
  encrypted?: boolean;
  /** PutSnapshotBlock requests in flight at once. */
  concurrency?: number;
  signal?: AbortSignal;
  /** Told the snapshot id as soon as it exists, so a failure after that point can delete it. */
  onStarted(snapshotId: string): void;
  /** Called after each block is decided (and, if written, acknowledged). */
  onBlock?(stats: UploadStats): void;
}

export interface UploadStats {
  blocks: number;
  done: number;
  written: number;
  skipped: number;
  bytesWritten: number;
}

export interface UploadResult {
  snapshotId: string;
  volumeSizeGiB: number;
  changedBlocksCount: number;
  stats: UploadStats;
  digests: BlockDigests;
}

export async function uploadSnapshot(options: UploadOptions): Promise<UploadResult> {
  const { ebs, signal, parent } = options;
  const { size } = await stat(options.disk);
  const volume = volumeSizeGiB(size);
  const started = (await ebs.send(
    new StartSnapshotCommand({
      VolumeSize: volume,
      ParentSnapshotId: parent?.snapshotId,
      Encrypted: options.encrypted,
      Description: options.description,
      Tags: Object.entries(options.tags).map(([Key, Value]): Tag => ({ Key, Value })),
      // One token per attempt: the SDK's own retries of this call then return the same snapshot.
      ClientToken: randomUUID(),
      Timeout: 60,
    }),
    { abortSignal: signal },
  )) as { SnapshotId?: string };
  const snapshotId = started.SnapshotId!;
  options.onStarted(snapshotId);

  const before = parent?.digests.blocks ?? {};
  const stats: UploadStats = {
    blocks: Math.ceil(size / BLOCK_SIZE),
    done: 0,
    written: 0,
    skipped: 0,
    bytesWritten: 0,
  };
  const digests: BlockDigests = {
    kind: BLOCK_DIGESTS_KIND,
    diskSha256: options.diskSha256,
    size,
    blockSize: BLOCK_SIZE,
    blocks: {},
  };
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  const put = (index: number, data: Buffer, checksum: string) => {
    const request = ebs
      .send(
        new PutSnapshotBlockCommand({
          SnapshotId: snapshotId,
          BlockIndex: index,
          BlockData: data,
          DataLength: BLOCK_SIZE,
          Checksum: checksum,
          ChecksumAlgorithm: "SHA256",
        }),
        { abortSignal: signal },
      )
      .then(() => {
        stats.written++;
        stats.bytesWritten += BLOCK_SIZE;
        stats.done++;
        options.onBlock?.(stats);
      })
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
  };
  const limit = options.concurrency ?? 8;
  const settleRoom = async () => {
    while (inFlight.size >= limit) await Promise.race(inFlight);
    if (failure !== undefined) throw failure;
  };

  for await (const block of readBlocks(options.disk, signal)) {
    if (!block.zero) digests.blocks[block.index] = block.sha256;
    const action = blockAction(block.zero ? undefined : block.sha256, before[block.index]);
    if (action === "skip") {
      stats.skipped++;
      stats.done++;
      options.onBlock?.(stats);
      continue;
    }
    await settleRoom();
    put(block.index, block.data, block.sha256Base64); // a zero block's data is zeros already
  }
  // Past the new disk's end, inside the volume, the parent's data would still show through.
  const trailing = trailingParentBlocks(size, parent);
  if (trailing.length > 0) {
    const zeros = describeBlock(0, Buffer.alloc(BLOCK_SIZE));
    stats.blocks += trailing.length;
    for (const index of trailing) {
      await settleRoom();
      put(index, zeros.data, zeros.sha256Base64);
    }
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  signal?.throwIfAborted();

  const changedBlocksCount = stats.written;
  await ebs.send(
    new CompleteSnapshotCommand({ SnapshotId: snapshotId, ChangedBlocksCount: changedBlocksCount }),
    { abortSignal: signal },
  );
  return { snapshotId, volumeSizeGiB: volume, changedBlocksCount, stats, digests };
}
