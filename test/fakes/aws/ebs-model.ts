/**
 * A strict in-process model of the EBS direct API (StartSnapshot, PutSnapshotBlock, CompleteSnapshot and
 * reading blocks back), standing in for an EBSClient (`send`). It follows the API reference where moto is
 * lenient: a block's checksum is checked, an index outside the volume is refused, CompleteSnapshot's
 * ChangedBlocksCount must equal the blocks written, and a snapshot started from a parent reads every block
 * it was not given from that parent (moto ignores ParentSnapshotId). Writing a block twice is refused too:
 * EBS would accept it, but it means the upload counted wrong or wasted a request.
 */
import { createHash } from "node:crypto";

export const EBS_BLOCK_SIZE = 524288;
const BLOCKS_PER_GIB = 2048;

export class EbsModelError extends Error {
  constructor(
    override readonly name: string,
    message: string,
    readonly $metadata = { httpStatusCode: 400 },
  ) {
    super(message);
  }
}

interface Snapshot {
  id: string;
  status: "pending" | "completed" | "error";
  volumeSizeGiB: number;
  parent?: Snapshot;
  blocks: Map<number, Buffer>;
  clientToken?: string;
  tags: { Key?: string; Value?: string }[];
  encrypted?: boolean;
}

type Handler = (input: Record<string, unknown>) => unknown;

export class EbsModel {
  readonly snapshots = new Map<string, Snapshot>();
  /** Every operation received, in order, with its snapshot id and block index (when it has them). */
  readonly log: { op: string; snapshotId?: string; blockIndex?: number }[] = [];
  private next = 1;
  /** Called before each operation; may throw (to cut an upload half way). */
  beforeOperation?: (op: string) => void;

  private readonly handlers: Record<string, Handler> = {
    StartSnapshot: (input) => this.startSnapshot(input),
    PutSnapshotBlock: (input) => this.putSnapshotBlock(input),
    CompleteSnapshot: (input) => this.completeSnapshot(input),
  };

  /** The EBSClient surface the publisher uses: the command's class name says the operation. */
  async send(command: { input: object; constructor: { name: string } }): Promise<unknown> {
    const op = command.constructor.name.replace(/Command$/, "");
    const handler = this.handlers[op];
    if (!handler) throw new Error(`EbsModel: ${op} is not modelled`);
    const input = command.input as Record<string, unknown>;
    this.log.push({
      op,
      snapshotId: input.SnapshotId as string | undefined,
      blockIndex: input.BlockIndex as number | undefined,
    });
    this.beforeOperation?.(op);
    await Promise.resolve(); // answer asynchronously, as a network call would
    return handler(input);
  }

  private startSnapshot(input: Record<string, unknown>) {
    const volumeSize = input.VolumeSize;
    if (!Number.isInteger(volumeSize) || (volumeSize as number) < 1 || (volumeSize as number) > 65536)
      throw new EbsModelError("ValidationException", `VolumeSize ${String(volumeSize)} is not 1..65536`);
    const token = input.ClientToken as string | undefined;
    if (token) {
      const earlier = [...this.snapshots.values()].find((s) => s.clientToken === token);
      if (earlier) {
        if (earlier.volumeSizeGiB !== volumeSize || earlier.parent?.id !== input.ParentSnapshotId)
          throw new EbsModelError("ConflictException", "ClientToken reused with other parameters");
        return this.describe(earlier);
      }
    }
    let parent: Snapshot | undefined;
    if (input.ParentSnapshotId !== undefined) {
      parent = this.snapshots.get(input.ParentSnapshotId as string);
      if (!parent) throw new EbsModelError("ResourceNotFoundException", "parent snapshot not found");
      if (parent.status !== "completed")
        throw new EbsModelError("ValidationException", "parent snapshot is not completed");
      if (parent.volumeSizeGiB > (volumeSize as number))
        throw new EbsModelError("ValidationException", "VolumeSize is smaller than the parent's");
      if (parent.encrypted && input.Encrypted === false)
        throw new EbsModelError("ValidationException", "the parent is encrypted");
    }
    const snapshot: Snapshot = {
      id: `snap-${String(this.next++).padStart(17, "0")}`,
      status: "pending",
      volumeSizeGiB: volumeSize as number,
      parent,
      blocks: new Map(),
      clientToken: token,
      tags: (input.Tags as Snapshot["tags"]) ?? [],
      encrypted: (input.Encrypted as boolean | undefined) ?? parent?.encrypted,
    };
    this.snapshots.set(snapshot.id, snapshot);
    return this.describe(snapshot);
  }

  private describe(s: Snapshot) {
    return {
      SnapshotId: s.id,
      Status: s.status,
      VolumeSize: s.volumeSizeGiB,
      BlockSize: EBS_BLOCK_SIZE,
      ParentSnapshotId: s.parent?.id,
      Tags: s.tags,
    };
  }

  private pending(id: unknown): Snapshot {
    const snapshot = this.snapshots.get(id as string);
    if (!snapshot) throw new EbsModelError("ResourceNotFoundException", `snapshot ${String(id)} not found`);
    if (snapshot.status !== "pending")
      throw new EbsModelError("ValidationException", `snapshot ${snapshot.id} is ${snapshot.status}`);
    return snapshot;
  }

  private putSnapshotBlock(input: Record<string, unknown>) {
    const snapshot = this.pending(input.SnapshotId);
    const index = input.BlockIndex as number;
    if (!Number.isInteger(index) || index < 0 || index >= snapshot.volumeSizeGiB * BLOCKS_PER_GIB)
      throw new EbsModelError("ValidationException", `BlockIndex ${index} is outside the volume`);
    const data = input.BlockData;
    if (!Buffer.isBuffer(data)) throw new EbsModelError("ValidationException", "BlockData is not bytes");
    if (input.DataLength !== EBS_BLOCK_SIZE || data.length !== EBS_BLOCK_SIZE)
      throw new EbsModelError("ValidationException", `DataLength must be ${EBS_BLOCK_SIZE}`);
    if (input.ChecksumAlgorithm !== "SHA256")
      throw new EbsModelError("ValidationException", "ChecksumAlgorithm must be SHA256");
    const checksum = createHash("sha256").update(data).digest("base64");
    if (input.Checksum !== checksum)
      throw new EbsModelError("ValidationException", `block ${index}: checksum does not match the data`);
    if (snapshot.blocks.has(index))
      throw new EbsModelError("ValidationException", `block ${index} written twice`);
    snapshot.blocks.set(index, Buffer.from(data));
    return { Checksum: checksum, ChecksumAlgorithm: "SHA256" };
  }

  private completeSnapshot(input: Record<string, unknown>) {
    const snapshot = this.pending(input.SnapshotId);
    if (input.ChangedBlocksCount !== snapshot.blocks.size) {
      snapshot.status = "error";
      throw new EbsModelError(
        "ValidationException",
        `ChangedBlocksCount ${String(input.ChangedBlocksCount)} but ${snapshot.blocks.size} blocks were written`,
      );
    }
    snapshot.status = "completed";
    return { Status: "completed" };
  }

  /** A completed snapshot's block as a volume made from it would read it: own, else the parent's, else zeros. */
  read(snapshotId: string, index: number): Buffer {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot || snapshot.status !== "completed") throw new Error(`${snapshotId} is not completed`);
    if (index < 0 || index >= snapshot.volumeSizeGiB * BLOCKS_PER_GIB) throw new Error(`index ${index}`);
    for (let s: Snapshot | undefined = snapshot; s; s = s.parent) {
      const block = s.blocks.get(index);
      if (block) return block;
    }
    return Buffer.alloc(EBS_BLOCK_SIZE);
  }

  delete(snapshotId: string): void {
    this.snapshots.delete(snapshotId);
  }
}
