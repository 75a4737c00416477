#!/usr/bin/env node
// AWS publish figures against moto. Prints figures; asserts nothing.
//   node bench/publish.mjs [--json] [--disk-mib N] [--data-mib N] [--change-percent P]
// A synthetic sparse raw disk the size of the fixture's (no bake: that needs root and minutes): its data
// blocks spread over the disk. Measured: the first upload (time, blocks written and skipped), a no-change
// republish (target: 0 blocks), and a republish after a small change (target: only the changed blocks).
// The publisher is bundled from src/ with esbuild (as the CLI is), so this measures the shipped code.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startMoto } from "./moto.mjs";

const repo = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const require = createRequire(join(repo, "package.json"));
const json = process.argv.includes("--json");
const arg = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const diskMib = arg("--disk-mib", 1536);
const dataMib = arg("--data-mib", 128);
const changePercent = arg("--change-percent", 2);
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const say = (line) => json || process.stderr.write(`${line}\n`);

const work = mkdtempSync(join(tmpdir(), "kubebake-bench-publish-"));
const bundle = join(work, "publish.cjs");
await require("esbuild").build({
  entryPoints: [join(repo, "src/publish/aws/index.ts")],
  bundle: true,
  platform: "node",
  format: "cjs",
  outfile: bundle,
  logLevel: "error",
});
const { publishAws, publishClients } = require(bundle);

const BLOCK = 512 * 1024;
const { endpoint, moto } = await startMoto(work);

/** Data blocks at evenly spread indices, each block's bytes derived from (index, generation). */
function writeDisk(path, dataBlocks, generationOf) {
  const fd = openSync(path, "w");
  const total = (diskMib * 1024 * 1024) / BLOCK;
  const step = Math.max(1, Math.floor(total / dataBlocks.length));
  for (const [n] of dataBlocks.entries()) {
    const index = n * step;
    const seed = createHash("sha256")
      .update(`${index}:${generationOf(n)}`)
      .digest();
    const block = Buffer.alloc(BLOCK);
    for (let i = 0; i < BLOCK; i += seed.length) seed.copy(block, i);
    writeSync(fd, block, 0, BLOCK, index * BLOCK);
  }
  // The disk's full size, sparse past the last data block.
  writeSync(fd, Buffer.alloc(1), 0, 1, diskMib * 1024 * 1024 - 1);
  closeSync(fd);
  const content = require("node:fs").readFileSync(path);
  return { path, sha256: createHash("sha256").update(content).digest("hex"), size: content.length };
}

const manifestOf = (disk, version) => ({
  kind: "kubebake.io/image-manifest",
  manifestVersion: 1,
  imageId: `sha256:${createHash("sha256").update(version).digest("hex")}`,
  name: "bench",
  arch: "amd64",
  target: "raw",
  rootfs: "rootfs",
  inputs: version,
  spec: { path: "bench", sha256: "0".repeat(64) },
  components: [],
  files: [],
  disk: { format: "raw", file: "disk.raw", sha256: disk.sha256, size: disk.size, baseLayer: "bench" },
});

const recorded = [];
async function publish(disk, version) {
  const calls = [];
  const clients = publishClients({
    endpoint,
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
    beforeCall: (call) => calls.push(call),
  });
  const started = Date.now();
  await publishAws(
    { disk: disk.path, manifest: manifestOf(disk, version), progress: { step() {}, info() {} } },
    {
      clients,
      region: "eu-west-1",
      regions: [],
      shareWith: [],
      pollMs: 10,
      knownDigests: recorded,
      recordDigests: (d) => recorded.push(d),
    },
  );
  return {
    seconds: (Date.now() - started) / 1000,
    blocksWritten: calls.filter((c) => c === "EBS:PutSnapshotBlock").length,
  };
}

try {
  const dataBlocks = Array.from({ length: (dataMib * 1024 * 1024) / BLOCK });
  const changed = Math.max(1, Math.round((dataBlocks.length * changePercent) / 100));
  say(`${diskMib} MiB sparse disk, ${dataMib} MiB of data (${dataBlocks.length} blocks)…`);
  const first = writeDisk(join(work, "v1.raw"), dataBlocks, () => 1);
  const upload = await publish(first, "v1");
  const same = await publish(first, "v1");
  const second = writeDisk(join(work, "v2.raw"), dataBlocks, (n) => (n < changed ? 2 : 1));
  const incremental = await publish(second, "v2");
  const totalBlocks = (diskMib * 1024 * 1024) / BLOCK;
  const figures = {
    diskMib,
    dataMib,
    totalBlocks,
    firstUpload: { ...upload, mibPerSecond: Number((upload.blocksWritten / 2 / upload.seconds).toFixed(1)) },
    noChangeRepublish: same,
    changedBlocks: changed,
    republishAfterChange: incremental,
  };
  if (json) process.stdout.write(JSON.stringify(figures, null, 2) + "\n");
  else {
    say(
      `first upload: ${upload.blocksWritten} of ${totalBlocks} blocks written in ${upload.seconds.toFixed(1)} s (${figures.firstUpload.mibPerSecond} MiB/s to moto)`,
    );
    say(`republish, same image id: ${same.blocksWritten} blocks, ${same.seconds.toFixed(1)} s (target: 0)`);
    say(
      `republish after changing ${changed} blocks (${changePercent}% of the data): ${incremental.blocksWritten} blocks written, ${incremental.seconds.toFixed(1)} s`,
    );
  }
} finally {
  moto.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
}
