/**
 * The pages of a page blob worth writing: a new page blob reads as zeros, so only the 512-byte sectors
 * that hold something are uploaded. The raw disk is read in 4 MiB chunks (Put Page's limit); each run of
 * non-zero sectors inside a chunk becomes one Put Page call.
 */
import { open } from "node:fs/promises";
import { SECTOR } from "./vhd";

/** Put Page accepts at most 4 MiB per call. */
export const MAX_PAGE = 4 * 1024 * 1024;

export interface Page {
  offset: number;
  data: Buffer;
}

/** Runs of non-zero sectors in `chunk` (whose length is a multiple of 512), as [start, end) byte offsets. */
export function nonZeroRuns(chunk: Buffer): [number, number][] {
  const runs: [number, number][] = [];
  // Most of a disk is holes: one native comparison of the whole chunk settles those.
  if (chunk.length === MAX_PAGE && chunk.equals(ZERO_CHUNK)) return runs;
  let start = -1;
  for (let at = 0; at < chunk.length; at += SECTOR) {
    const zero = isZeroSector(chunk, at);
    if (!zero && start < 0) start = at;
    if (zero && start >= 0) {
      runs.push([start, at]);
      start = -1;
    }
  }
  if (start >= 0) runs.push([start, chunk.length]);
  return runs;
}

const ZERO_CHUNK = Buffer.alloc(MAX_PAGE);
const ZERO_SECTOR = Buffer.alloc(SECTOR);

/** A native comparison (memcmp) with a zero sector: a byte loop in JavaScript scans at a tenth the speed. */
const isZeroSector = (chunk: Buffer, at: number): boolean =>
  chunk.compare(ZERO_SECTOR, 0, SECTOR, at, at + SECTOR) === 0;

/**
 * The non-zero pages of the file at `path`, in order. A last partial sector is padded with zeros, as it
 * will be in the VHD. Each page's buffer is its own copy, so pages can be uploaded while reading goes on.
 */
export async function* nonZeroPages(path: string, signal?: AbortSignal): AsyncGenerator<Page> {
  const file = await open(path, "r");
  try {
    const chunk = Buffer.alloc(MAX_PAGE);
    for (let offset = 0; ; offset += MAX_PAGE) {
      signal?.throwIfAborted();
      const { bytesRead } = await file.read(chunk, 0, MAX_PAGE, offset);
      if (bytesRead === 0) return;
      const used = Math.ceil(bytesRead / SECTOR) * SECTOR;
      chunk.fill(0, bytesRead, used);
      for (const [start, end] of nonZeroRuns(chunk.subarray(0, used)))
        yield { offset: offset + start, data: Buffer.from(chunk.subarray(start, end)) };
      if (bytesRead < MAX_PAGE) return;
    }
  } finally {
    await file.close();
  }
}
