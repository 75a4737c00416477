#!/usr/bin/env node
// Azure VHD conversion figures for a synthetic 3 GiB sparse raw disk. Prints figures; asserts nothing.
//   node bench/publish-azure.mjs [--json] [--data-mib N]
// Measured: the scan for non-zero pages that the page-blob upload sends (the conversion the upload does
// on the fly), and writing the fixed VHD as a local sparse file (non-zero pages plus the footer).
// The disk is made by the bench (never a real bake): N MiB of data (default 300) in runs across the disk.
import { closeSync, mkdtempSync, openSync, rmSync, statSync, truncateSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { build } from "esbuild";

const repo = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const json = process.argv.includes("--json");
const dataMiB = Number(process.argv[process.argv.indexOf("--data-mib") + 1]) || 300;
const say = (line) => json || process.stderr.write(`${line}\n`);
const MiB = 1024 * 1024;
const RAW_SIZE = 3 * 1024 * MiB;

const work = mkdtempSync(join(tmpdir(), "kubebake-bench-azure-"));
try {
  // The TypeScript modules measured, bundled for plain node.
  const bundle = join(work, "vhd.js");
  await build({
    stdin: {
      contents: `export * from "./src/publish/azure/vhd"; export * from "./src/publish/azure/pages";`,
      resolveDir: repo,
      loader: "ts",
    },
    bundle: true,
    platform: "node",
    format: "cjs",
    outfile: bundle,
    logLevel: "silent",
  });
  const { nonZeroPages, vhdDataSize, vhdFooter } = createRequire(bundle)(bundle);

  // A disk shaped like a bake: a full first MiB (GPT, ESP start), then runs of 1–8 MiB spread evenly.
  const disk = join(work, "disk.raw");
  closeSync(openSync(disk, "w"));
  truncateSync(disk, RAW_SIZE);
  const fd = openSync(disk, "r+");
  const block = Buffer.alloc(MiB);
  for (let i = 0; i < MiB; i++) block[i] = (i * 131 + 17) % 253 || 1;
  let written = 0;
  for (let n = 0; written < dataMiB * MiB; n++) {
    const run = 1 + (n % 8);
    const at = n === 0 ? 0 : Math.floor((n * 7919 * MiB) % (RAW_SIZE - 8 * MiB));
    for (let k = 0; k < run && written < dataMiB * MiB; k++, written += MiB)
      writeSync(fd, block, 0, MiB, at + k * MiB);
  }
  closeSync(fd);

  const imageId = "sha256:" + "b".repeat(64);
  let started = performance.now();
  let pages = 0;
  let pageBytes = 0;
  for await (const page of nonZeroPages(disk)) {
    pages++;
    pageBytes += page.data.length;
  }
  const footer = vhdFooter(vhdDataSize(RAW_SIZE), imageId);
  const scanSeconds = (performance.now() - started) / 1000;

  started = performance.now();
  const vhd = join(work, "disk.vhd");
  const out = openSync(vhd, "w");
  for await (const page of nonZeroPages(disk)) writeSync(out, page.data, 0, page.data.length, page.offset);
  writeSync(out, footer, 0, footer.length, vhdDataSize(RAW_SIZE));
  closeSync(out);
  const fileSeconds = (performance.now() - started) / 1000;

  const figures = {
    rawBytes: RAW_SIZE,
    vhdBytes: statSync(vhd).size,
    dataBytes: pageBytes,
    pages,
    skippedBytes: vhdDataSize(RAW_SIZE) - pageBytes,
    scanSeconds: +scanSeconds.toFixed(2),
    scanMiBPerSecond: +(RAW_SIZE / MiB / scanSeconds).toFixed(0),
    vhdFileSeconds: +fileSeconds.toFixed(2),
  };
  say(`synthetic 3 GiB sparse disk, ${(pageBytes / MiB).toFixed(0)} MiB of data`);
  say(
    `  non-zero page scan (what the upload sends): ${figures.scanSeconds} s, ${figures.scanMiBPerSecond} MiB/s`,
  );
  say(
    `  ${pages} Put Page calls of at most 4 MiB, ${(figures.skippedBytes / MiB).toFixed(0)} MiB of zeros skipped`,
  );
  say(`  fixed VHD written as a local sparse file: ${figures.vhdFileSeconds} s (${figures.vhdBytes} bytes)`);
  if (json) process.stdout.write(`${JSON.stringify(figures)}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
