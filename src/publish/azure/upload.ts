/**
 * Writes a raw disk as a fixed VHD into a page blob: the blob is created at its final size (all zeros),
 * then only the non-zero pages and the footer are written, several calls in flight.
 */
import { stat } from "node:fs/promises";
import type { PageBlobClient } from "@azure/storage-blob";
import type { Progress } from "../../util/progress";
import { nonZeroPages, type Page } from "./pages";
import { FOOTER_SIZE, MiB, vhdDataSize, vhdFooter } from "./vhd";

export interface UploadResult {
  /** The blob's size: the padded disk plus the footer. */
  blobSize: number;
  pages: number;
  bytesWritten: number;
  bytesSkipped: number;
}

export interface UploadOptions {
  disk: string;
  imageId: string;
  blob: PageBlobClient;
  concurrency: number;
  progress: Progress;
  signal?: AbortSignal;
}

export async function uploadVhd(options: UploadOptions): Promise<UploadResult> {
  const { blob, progress, signal } = options;
  const rawSize = (await stat(options.disk)).size;
  const dataSize = vhdDataSize(rawSize);
  await blob.create(dataSize + FOOTER_SIZE, { abortSignal: signal });
  const counts = { pages: 0, bytesWritten: 0 };
  const report = reporter(progress, dataSize);
  const pages = nonZeroPages(options.disk, signal);
  // Workers pull from one generator; its next() calls queue, so each page is taken once.
  const worker = async () => {
    for (let next = await pages.next(); !next.done; next = await pages.next()) {
      await writePage(blob, next.value, signal);
      counts.pages++;
      counts.bytesWritten += next.value.data.length;
      report(next.value.offset + next.value.data.length, counts.bytesWritten);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  await writePage(blob, { offset: dataSize, data: vhdFooter(dataSize, options.imageId) }, signal);
  const result = {
    blobSize: dataSize + FOOTER_SIZE,
    pages: counts.pages + 1,
    bytesWritten: counts.bytesWritten + FOOTER_SIZE,
    bytesSkipped: dataSize - counts.bytesWritten,
  };
  progress.info(
    `VHD of ${mib(dataSize)} MiB: ${mib(counts.bytesWritten)} MiB written in ${result.pages} pages, ` +
      `${mib(result.bytesSkipped)} MiB of zeros skipped`,
  );
  return result;
}

const writePage = (blob: PageBlobClient, page: Page, signal?: AbortSignal) =>
  blob.uploadPages(page.data, page.offset, page.data.length, { abortSignal: signal });

const mib = (bytes: number) => (bytes / MiB).toFixed(1);

/** A progress line at each tenth of the disk scanned: bytes, rate, zeros skipped. */
function reporter(progress: Progress, total: number): (scanned: number, written: number) => void {
  const started = Date.now();
  let lastTenth = 0;
  return (scanned, written) => {
    const tenth = Math.floor((scanned / total) * 10);
    if (tenth <= lastTenth) return;
    lastTenth = tenth;
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    progress.info(
      `${tenth * 10}% of the disk: ${mib(written)} MiB written (${mib(written / seconds)} MiB/s), ` +
        `${mib(scanned - written)} MiB of zeros skipped`,
    );
  };
}
