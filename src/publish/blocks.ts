/**
 * A raw disk as EBS sees it: 512 KiB blocks, each with a SHA-256, and which of them an upload must write.
 * The selection is pure (digests in, block indices out) so it can be checked exactly against a model of the
 * EBS direct API; reading the disk is the only effect here.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

/** The EBS direct API's block size: every PutSnapshotBlock carries exactly this many bytes. */
export const BLOCK_SIZE = 512 * 1024;
const GIB = 1024 ** 3;
export const BLOCKS_PER_GIB = GIB / BLOCK_SIZE;

export const BLOCK_DIGESTS_KIND = "kubebake.io/disk-blocks";

/**
 * The block digests of one disk, recorded by a publish so that a later one can upload only the blocks that
 * differ. Zero blocks are left out (a snapshot reads unwritten blocks as zeros), which keeps the record small
 * for sparse disks.
 */
export interface BlockDigests {
  kind: typeof BLOCK_DIGESTS_KIND;
  /** The whole disk's SHA-256 (hex): the snapshot holding this disk is tagged with it. */
  diskSha256: string;
  /** The disk's size in bytes. */
  size: number;
  blockSize: typeof BLOCK_SIZE;
  /** Block index → SHA-256 (hex), for every block that is not all zeros. */
  blocks: Record<string, string>;
}

/** The EBS volume size (GiB) a disk of `size` bytes needs: whole GiB, at least 1. */
export const volumeSizeGiB = (size: number) => Math.max(1, Math.ceil(size / GIB));

/** How many blocks a disk of `size` bytes spans (the last one padded with zeros). */
export const blockCount = (size: number) => Math.ceil(size / BLOCK_SIZE);

export interface DiskBlock {
  index: number;
  /** Exactly BLOCK_SIZE bytes (the disk's last block padded with zeros). */
  data: Buffer;
  /** SHA-256 of `data`, hex (our records) and base64 (the EBS API's Checksum). */
  sha256: string;
  sha256Base64: string;
  zero: boolean;
}

const ZEROS = Buffer.alloc(BLOCK_SIZE);
const ZERO_DIGEST = createHash("sha256").update(ZEROS).digest();

export function describeBlock(index: number, data: Buffer): DiskBlock {
  // A memcmp against zeros is far cheaper than hashing, and most of a sparse disk is zeros.
  const zero = data.length === BLOCK_SIZE && data.equals(ZEROS);
  const digest = zero ? ZERO_DIGEST : createHash("sha256").update(data).digest();
  return { index, data, sha256: digest.toString("hex"), sha256Base64: digest.toString("base64"), zero };
}

/** The blocks of a raw disk, in order, one at a time (a block's buffer is its own: it may be kept). */
export async function* readBlocks(path: string, signal?: AbortSignal): AsyncGenerator<DiskBlock> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    for (let index = 0; index < blockCount(size); index++) {
      signal?.throwIfAborted();
      const data = Buffer.alloc(BLOCK_SIZE); // zero-filled: the last block's tail stays zeros
      let filled = 0;
      while (filled < BLOCK_SIZE) {
        const { bytesRead } = await file.read(data, filled, BLOCK_SIZE - filled, index * BLOCK_SIZE + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      yield describeBlock(index, data);
    }
  } finally {
    await file.close();
  }
}

/**
 * What the parent snapshot holds, as far as the upload needs to know: its volume size and the digests of the
 * disk it was made from (undefined: no usable parent, the snapshot starts empty).
 */
export interface ParentContent {
  volumeSizeGiB: number;
  digests: BlockDigests;
}

/** What to do with one block index of the new snapshot. */
export type BlockAction = "skip" | "write" | "write-zeros";

/**
 * One block's action. A snapshot started from a parent reads every block it was not given from the parent,
 * and one started empty reads it as zeros; EBS has no way to "unwrite" a block. So a block is written when
 * its content differs from what the snapshot would read otherwise, and a block that became zeros where the
 * parent had data must be written as zeros explicitly.
 */
export function blockAction(current: string | undefined, parent: string | undefined): BlockAction {
  if (current === parent) return "skip"; // both zero (undefined), or the same digest
  return current === undefined ? "write-zeros" : "write";
}

/**
 * The block indices beyond the new disk's end that the parent still holds data for: inside the volume they
 * would read back as the parent's data, so they are written as zeros.
 */
export function trailingParentBlocks(size: number, parent: ParentContent | undefined): number[] {
  if (!parent) return [];
  const first = blockCount(size);
  return Object.keys(parent.digests.blocks)
    .map(Number)
    .filter((index) => index >= first)
    .sort((a, b) => a - b);
}

/**
 * Whether the earlier snapshot can be the parent: EBS requires the child's volume to be at least as large,
 * and the digests must describe the disk the snapshot holds.
 */
export function usableParent(
  size: number,
  parent: ParentContent | undefined,
  parentDiskSha256: string | undefined,
): ParentContent | undefined {
  if (!parent || parent.digests.diskSha256 !== parentDiskSha256) return undefined;
  if (parent.volumeSizeGiB > volumeSizeGiB(size)) return undefined;
  return parent;
}

/** The plan for a whole disk given its digests (pure; the upload makes the same choices block by block). */
export function planUpload(
  current: BlockDigests,
  parent: ParentContent | undefined,
): { write: number[]; writeZeros: number[]; changedBlocksCount: number } {
  const write: number[] = [];
  const writeZeros: number[] = [];
  const before = parent?.digests.blocks ?? {};
  for (let index = 0; index < blockCount(current.size); index++) {
    const action = blockAction(current.blocks[index], before[index]);
    if (action === "write") write.push(index);
    if (action === "write-zeros") writeZeros.push(index);
  }
  writeZeros.push(...trailingParentBlocks(current.size, parent));
  return { write, writeZeros, changedBlocksCount: write.length + writeZeros.length };
}

/** Checks a block-digest record read from a file; undefined when it is not one (then it is not used). */
export function parseBlockDigests(value: unknown): BlockDigests | undefined {
  const v = value as Partial<BlockDigests> | null;
  if (!v || v.kind !== BLOCK_DIGESTS_KIND || v.blockSize !== BLOCK_SIZE) return undefined;
  if (typeof v.diskSha256 !== "string" || typeof v.size !== "number" || typeof v.blocks !== "object")
    return undefined;
  const valid = Object.entries(v.blocks ?? {}).every(
    ([index, digest]) => /^\d+$/.test(index) && typeof digest === "string" && /^[0-9a-f]{64}$/.test(digest),
  );
  return valid ? (v as BlockDigests) : undefined;
}
